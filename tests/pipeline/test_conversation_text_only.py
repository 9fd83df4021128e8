"""Text-only responses (the realtime `modalities: ["text"]`): the LLM's text goes out as it is written and
into the history, and the speech engine is never asked (scripted LLM and engine)."""

from __future__ import annotations

import asyncio
import dataclasses

from conversation_helpers import EventLog, ScriptedEngine, ScriptedLLM

from csmstream.pipeline import events as ev
from csmstream.pipeline.conversation import Conversation
from csmstream.pipeline.history import AssistantTurn
from csmstream.pipeline.session import SessionConfig

DELTAS = [" Paris is", " the capital", " of France."]
ANSWER = "Paris is the capital of France."
TYPED = SessionConfig(turn_detection=None, instructions="be brief")


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=60))


async def _answer(config: SessionConfig, deltas: list[str], **create: bool) -> tuple:
    engine, llm = ScriptedEngine(), ScriptedLLM(deltas)
    conversation = Conversation(engine, llm, None, config=config)
    log = EventLog(conversation)
    conversation.add_user_text("What is the capital of France?")
    conversation.create_response(**create)
    await log.wait_for_type(ev.ResponseDone)
    return engine, llm, conversation, log


def test_a_text_only_session_answers_in_text_without_the_engine():
    async def scenario():
        engine, _, conversation, log = await _answer(dataclasses.replace(TYPED, text_only=True), DELTAS)
        # the next answer, spoken, reads the written one as the LLM's history
        spoken_llm = ScriptedLLM(["Yes."])
        conversation.llm = spoken_llm
        conversation.add_user_text("Really?")
        conversation.create_response(text_only=False)
        await log.wait_for(
            lambda e: isinstance(e, ev.ResponseDone) and len(log.of_type(ev.ResponseDone)) == 2
        )
        await conversation.aclose()
        return engine, spoken_llm, conversation, log

    engine, spoken_llm, conversation, log = run(scenario())
    first = log.events[: log.events.index(log.of_type(ev.ResponseDone)[0]) + 1]
    assert [type(e).__name__ for e in first] == [
        "ResponseCreated",
        *["TranscriptDelta"] * 3,
        "TranscriptDone",
        "ResponseDone",
    ], "text events only: no audio, no AudioDone"
    assert first[0].text_only and "".join(e.text for e in first[1:4]) == ANSWER
    assert first[-2].text == ANSWER and first[-1].status == "completed"
    assert "llm_first_token" in first[-1].timings_ms and "first_audio_out" not in first[-1].timings_ms
    turn = conversation.history.turns[1]
    assert isinstance(turn, AssistantTurn) and turn.text_only and turn.text == ANSWER
    assert turn.num_samples == 0
    # only the spoken answer went to the engine, and its speech context holds no audio of the written one
    assert [h.request.text for h in engine.handles] == ["Yes."]
    assert engine.handles[0].request.context == ()
    assert spoken_llm.calls[0][2] == {"role": "assistant", "content": ANSWER}


def test_one_response_may_be_text_only_in_a_spoken_session():
    engine, _, conversation, log = run(_answer(TYPED, DELTAS, text_only=True))
    assert engine.handles == [] and not log.of_type(ev.AudioDelta) and not log.of_type(ev.AudioDone)
    assert conversation.history.turns[1].text == ANSWER
    spoken, _, _, spoken_log = run(_answer(TYPED, DELTAS))
    assert spoken.handles and spoken_log.of_type(ev.AudioDelta), "a spoken session still speaks"


def test_a_cancelled_text_answer_keeps_what_was_written():
    async def scenario():
        gate = asyncio.Event()
        llm = ScriptedLLM(DELTAS, gates={2: gate})
        engine = ScriptedEngine()
        conversation = Conversation(engine, llm, None, config=TYPED)
        log = EventLog(conversation)
        conversation.add_user_text("Hi")
        conversation.create_response(text_only=True)
        await log.wait_for(lambda e: len(log.of_type(ev.TranscriptDelta)) == 2)
        conversation.interrupt()  # barge-in: nothing was heard, but the text stays
        done = await log.wait_for_type(ev.ResponseDone)
        await conversation.aclose()
        return engine, conversation, done

    engine, conversation, done = run(scenario())
    assert done.status == "cancelled" and engine.handles == []
    assert conversation.history.turns[1].text == "Paris is the capital"
