"""A Conversation with real components: the user's voice (piper-spoken) through Silero VAD and Whisper,
the answer through the piper speech engine; the LLM is scripted (it is not what is under test here)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from conversation_helpers import EventLog, ManualClock, ScriptedEngine, ScriptedLLM, until
from pipeline_helpers import SAMPLE_RATE, silence, speak, to_pcm16, voiced_span_ms, word_error_rate

from csmstream.engine.piper_engine import PiperEngine
from csmstream.pipeline import events as ev
from csmstream.pipeline.conversation import Conversation
from csmstream.pipeline.history import AssistantTurn, UserTurn
from csmstream.pipeline.session import SessionConfig, TurnDetection
from csmstream.pipeline.stt import load_stt
from csmstream.pipeline.vad_model import SileroVadModel

QUESTION = "What time does the museum open tomorrow morning?"
CHUNK_SAMPLES = 480  # 20 ms, as a browser client sends


class EchoLLM(ScriptedLLM):
    """Answers by repeating what the user said."""

    def __init__(self) -> None:
        super().__init__([])

    async def stream_chat(self, messages, *, cancel=None):
        self.calls.append(messages)
        for word in f"You asked: {messages[-1]['content']} Let me check that for you.".split(" "):
            yield word + " "
            await asyncio.sleep(0)


@pytest.fixture(scope="module")
def stt():
    return load_stt()


@pytest.fixture(scope="module")
def vad_model():
    return SileroVadModel()


async def say(conversation: Conversation, audio: np.ndarray) -> None:
    for i in range(0, len(audio), CHUNK_SAMPLES):
        conversation.append_audio(to_pcm16(audio[i : i + CHUNK_SAMPLES]))
        await asyncio.sleep(0)  # let the conversation's tasks run, as between websocket messages


def test_spoken_question_gets_a_spoken_answer(stt, vad_model):
    speech = speak(QUESTION)
    lead_s = 0.4
    first_ms, last_ms = voiced_span_ms(speech)

    async def scenario():
        engine = PiperEngine()
        await engine.start()
        llm = EchoLLM()
        conversation = Conversation(engine, llm, stt, vad_model=vad_model)
        log = EventLog(conversation)
        await say(conversation, np.concatenate([silence(lead_s), speech, silence(1.0)]))
        done = await log.wait_for_type(ev.ResponseDone, timeout_s=60)
        await conversation.aclose()
        await engine.stop()
        return conversation, llm, log, done

    conversation, llm, log, done = asyncio.run(scenario())
    kinds = [type(e).__name__ for e in log.events]
    order = ["SpeechStarted", "SpeechStopped", "InputCommitted", "TranscriptionCompleted", "ResponseCreated"]
    assert [k for k in kinds if k in order] == order, kinds
    assert done.status == "completed", log.of_type(ev.Error)

    started, stopped = log.of_type(ev.SpeechStarted)[0], log.of_type(ev.SpeechStopped)[0]
    assert started.item_id == stopped.item_id
    assert abs(started.audio_start_ms - (lead_s * 1000 + first_ms)) <= 150
    assert abs(stopped.audio_end_ms - (lead_s * 1000 + last_ms)) <= 300

    transcript = log.of_type(ev.TranscriptionCompleted)[0].text
    assert word_error_rate(QUESTION, transcript) <= 0.2, transcript
    assert llm.calls[0][-1] == {"role": "user", "content": transcript}
    assert llm.calls[0][0]["role"] == "system" and "Maya" in llm.calls[0][0]["content"]

    user, assistant = conversation.history.turns
    assert isinstance(user, UserTurn) and user.text == transcript
    # the user's turn audio: the speech plus the prefix padding and a short tail, not the whole stream
    speech_s = (last_ms - first_ms) / 1000
    assert speech_s + 0.2 <= len(user.audio) / SAMPLE_RATE <= speech_s + 0.7, len(user.audio) / SAMPLE_RATE
    assert isinstance(assistant, AssistantTurn) and assistant.text.startswith("You asked:")
    audio_out = np.concatenate([a.pcm for a in log.of_type(ev.AudioDelta)])
    assert assistant.num_samples == len(audio_out) > SAMPLE_RATE  # over a second of real speech
    assert np.abs(audio_out).max() > 0.05


def test_user_speech_while_the_assistant_speaks_cuts_it_off(vad_model):
    """Barge-in through server VAD: a real voice starts while the assistant's audio is playing."""

    class FixedTranscriber:
        async def transcribe(self, pcm, sample_rate=24_000):
            return "stop please"

    async def scenario():
        engine = ScriptedEngine(frames_per_char=2.0)  # a long answer: several seconds of audio
        clock = ManualClock()
        never = asyncio.Event()
        llm = ScriptedLLM(
            ["Let me tell you a very long story about the sea. O", "nce upon a time."], {1: never}
        )
        detection = TurnDetection(create_response=False)
        conversation = Conversation(
            engine,
            llm,
            FixedTranscriber(),
            config=SessionConfig(turn_detection=detection),
            vad_model=vad_model,
            clock=clock,
        )
        log = EventLog(conversation)
        await say(conversation, silence(0.3))
        conversation.add_user_text("Tell me a story.")
        conversation.create_response()
        await log.wait_for_type(ev.AudioDelta)  # the client starts playing now
        await until(lambda: conversation.history.turns[1].units[0].finished)
        clock.now += 1.0  # it has played one second when the user speaks up
        assert conversation.assistant_audible()
        await say(conversation, np.concatenate([speak("Wait, stop please."), silence(0.8)]))
        await until(lambda: log.of_type(ev.TranscriptionCompleted))
        await conversation.aclose()
        return conversation, llm, log

    conversation, llm, log = asyncio.run(scenario())
    kinds = [type(e).__name__ for e in log.events]
    assert kinds.index("SpeechStarted") < kinds.index("ResponseDone")
    assert log.of_type(ev.ResponseDone)[0].status == "cancelled"
    assert llm.saw_cancel
    # the assistant's turn holds the second the client played (of the several seconds sent), and it is
    # followed by the user's interruption
    assistant, user = conversation.history.turns[1], conversation.history.turns[2]
    assert isinstance(assistant, AssistantTurn) and assistant.truncated
    assert sum(len(a.pcm) for a in log.of_type(ev.AudioDelta)) > 2 * SAMPLE_RATE
    assert assistant.num_samples == SAMPLE_RATE
    assert isinstance(user, UserTurn) and user.text == "stop please"
