"""The semantic end-of-turn decider (pipeline/turn_end.py): complete sentences end a turn after a short
silence, trailing fragments wait; server_vad waits its one silence whatever was said. Then the decider in a
Conversation: a question with a 600 ms thinking pause inside stays one turn under semantic_vad, and becomes
two under server_vad."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from conversation_helpers import EventLog, ScriptedEngine, ScriptedLLM
from pipeline_helpers import silence, speak, to_pcm16, word_error_rate

from csmstream.errors import BadRequest
from csmstream.pipeline import events as ev
from csmstream.pipeline.conversation import Conversation
from csmstream.pipeline.end_of_turn_model import EndOfTurnModel, load_end_of_turn_model
from csmstream.pipeline.session import SessionConfig, TurnDetection
from csmstream.pipeline.stt import load_stt
from csmstream.pipeline.turn_end import TurnEndPolicy, completeness
from csmstream.pipeline.vad_model import SileroVadModel

QUESTIONS = [
    "What is the capital of Germany?",
    "Do you like jazz?",
    "Is it cold outside today?",
    "Where did you put my keys.",  # Whisper's full stop after a question: its opening says what it is
    "Do you know any good restaurants nearby.",
]
STATEMENTS = ["Tell me a joke.", "I think so.", "Thank you!", "Yes it is."]
FRAGMENTS = [
    "What is the capital of",
    "What is the capital of...",
    "I went to the shop and",
    "So um",
    "So.",
    "Well, um.",
    "Could you tell me about the",
    "I was thinking,",
    "What is the capital of.",  # Whisper's full stop after a word no sentence ends on
]


@pytest.mark.parametrize("text", QUESTIONS)
def test_questions_end_the_turn_after_a_short_silence(text):
    assert completeness(text) == "question"
    policy = TurnEndPolicy(type="semantic_vad")
    assert policy.wait_ms(text) <= 300
    assert policy.turn_ended(text, 300) and not policy.turn_ended(text, 100)


@pytest.mark.parametrize("text", STATEMENTS)
def test_statements_end_the_turn_once_a_thinking_pause_would_be_over(text):
    # Whisper tiny writes "I would like to order." for a sentence paused after "order": 600 ms must pass
    assert completeness(text) == "statement"
    policy = TurnEndPolicy(type="semantic_vad")
    assert 600 < policy.wait_ms(text) < policy.max_wait_ms
    assert policy.turn_ended(text, 800) and not policy.turn_ended(text, 600)


@pytest.mark.parametrize("text", FRAGMENTS)
def test_trailing_fragments_wait_long(text):
    assert completeness(text) == "fragment"
    policy = TurnEndPolicy(type="semantic_vad")
    assert 1000 <= policy.wait_ms(text) <= 1500
    assert not policy.turn_ended(text, 700)


def test_unknown_or_unpunctuated_waits_in_between_and_eagerness_scales():
    assert completeness("the weather today") == "unclear"
    low, medium, high = (TurnEndPolicy(type="semantic_vad", eagerness=e) for e in ("low", "medium", "high"))
    for text in ("Is it?", "Tell me a joke.", "the weather today", "and the"):
        assert high.wait_ms(text) < medium.wait_ms(text) < low.wait_ms(text)
    assert TurnEndPolicy(type="semantic_vad", eagerness="auto").wait_ms("x?") == medium.wait_ms("x?")
    assert medium.wait_ms(None) == medium.max_wait_ms  # nothing transcribed yet: wait as for a fragment


# ---- with the end-of-turn model's score (end_of_turn_model.py) and Whisper's confidence


def test_the_models_score_decides_what_punctuation_cannot():
    policy = TurnEndPolicy(type="semantic_vad")
    # Whisper's question mark after a paused "Can you remind me to call": the model reads a fragment
    assert completeness("Can you remind me to call?") == "question"
    assert completeness("Can you remind me to call?", end_probability=0.005) == "fragment"
    assert not policy.turn_ended("Can you remind me to call?", 700, end_probability=0.005)
    # a statement the model reads as finished ends as soon as a question does
    assert completeness("Tell me something interesting.", end_probability=0.1) == "complete"
    assert policy.wait_ms("Tell me something interesting.", 0.1) == policy.wait_ms("Is it?") <= 300
    # between the model's bounds, punctuation decides
    assert completeness("Where is it?", end_probability=0.02) == "question"
    assert completeness("Tell me more.", end_probability=0.02) == "statement"


def test_a_trailing_function_word_is_a_fragment_whatever_the_model_says():
    assert completeness("What is the capital of", end_probability=0.9) == "fragment"
    assert completeness("So, um.", end_probability=0.9) == "fragment"


def test_words_whisper_was_unsure_of_wait_as_unclear_ones():
    policy = TurnEndPolicy(type="semantic_vad")
    # tiny.en's guess at a paused "So um": "So, one." at a mean log-probability of about -1
    assert completeness("So, one.", end_probability=0.5, avg_logprob=-0.99) == "unclear"
    assert policy.wait_ms("So, one.", 0.5, -0.99) == policy.wait_ms("the weather today")
    assert completeness("Is it cold outside?", end_probability=0.8, avg_logprob=-0.1) == "complete"
    assert completeness("What is the capital of", avg_logprob=-2.0) == "fragment"


def test_server_vad_waits_its_silence_whatever_was_said():
    policy = TurnEndPolicy(type="server_vad", silence_duration_ms=500)
    assert policy.wait_ms("Tell me a joke.") == policy.wait_ms("and the") == policy.max_wait_ms == 500


def test_bad_settings_are_refused():
    with pytest.raises(BadRequest, match="eagerness"):
        TurnDetection(type="semantic_vad", eagerness="eager")  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="semantic_vad"):
        TurnDetection(type="push_to_talk")  # type: ignore[arg-type]
    # semantic_vad: the VAD's silence rule is the backstop of the longest wait
    assert TurnDetection(type="semantic_vad").vad_config().silence_duration_ms == 1200


# ---- in a conversation, with real speech, VAD and Whisper

QUESTION_HEAD = "What is the capital of"
QUESTION_TAIL = "Germany, do you know?"
CHUNK_SAMPLES = 480  # 20 ms


@pytest.fixture(scope="module")
def stt():
    return load_stt()


async def _speak_paced(conversation: Conversation, audio: np.ndarray) -> None:
    """At 1×: the turn-end decision races the speculative decode as it does with a live microphone."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for k, i in enumerate(range(0, len(audio), CHUNK_SAMPLES)):
        delay = start + k * CHUNK_SAMPLES / 24_000 - loop.time()
        await asyncio.sleep(max(delay, 0))
        conversation.append_audio(to_pcm16(audio[i : i + CHUNK_SAMPLES]))


def _turns(
    stt,
    detection: TurnDetection,
    head: str = QUESTION_HEAD,
    tail: str = QUESTION_TAIL,
    end_of_turn_model: EndOfTurnModel | None = None,
) -> list[str]:
    audio = np.concatenate([silence(0.3), speak(head), silence(0.6), speak(tail), silence(1.6)])
    last_word = tail.split()[-1].strip("?.,").lower()

    async def scenario():
        conversation = Conversation(
            ScriptedEngine(),
            ScriptedLLM(["Berlin."]),
            stt,
            config=SessionConfig(turn_detection=detection),
            vad_model=SileroVadModel(),
            end_of_turn_model=end_of_turn_model,
        )
        log = EventLog(conversation)
        await _speak_paced(conversation, audio)
        await log.wait_for(
            lambda e: isinstance(e, ev.TranscriptionCompleted) and last_word in e.text.lower(), timeout_s=30
        )
        await conversation.aclose()
        return [e.text for e in log.of_type(ev.TranscriptionCompleted)]

    return asyncio.run(scenario())


def test_a_question_with_a_thinking_pause_stays_one_turn_with_semantic_vad(stt):
    texts = _turns(stt, TurnDetection(type="semantic_vad", interrupt_response=False))
    assert len(texts) == 1, texts
    assert word_error_rate(f"{QUESTION_HEAD} {QUESTION_TAIL}", texts[0]) <= 0.2, texts


def test_the_same_question_is_two_turns_with_server_vad(stt):
    texts = _turns(stt, TurnDetection(type="server_vad", silence_duration_ms=500, interrupt_response=False))
    assert len(texts) == 2, texts


# Whisper writes "Could you recommend?" for the paused head: a question to the rules, a fragment to the model
RECOMMEND_HEAD = "Could you recommend"
RECOMMEND_TAIL = "a good book for my holiday?"


@pytest.fixture(scope="module")
def end_of_turn_model():
    model = load_end_of_turn_model()
    if model is None:
        pytest.skip("the end-of-turn model needs the llm and llm-model extras")
    return model


def test_the_end_of_turn_model_keeps_a_paused_question_whole_where_punctuation_would_cut_it(
    stt, end_of_turn_model
):
    detection = TurnDetection(type="semantic_vad", interrupt_response=False)
    with_model = _turns(stt, detection, RECOMMEND_HEAD, RECOMMEND_TAIL, end_of_turn_model)
    assert len(with_model) == 1, with_model
    assert word_error_rate(f"{RECOMMEND_HEAD} {RECOMMEND_TAIL}", with_model[0]) <= 0.2, with_model
    rules_only = _turns(stt, detection, RECOMMEND_HEAD, RECOMMEND_TAIL)
    assert len(rules_only) == 2, rules_only
