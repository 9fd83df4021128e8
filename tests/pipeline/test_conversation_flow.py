"""A Conversation with a scripted LLM and a scripted speech engine (known audio lengths and codes): the
order of events, streaming of the first unit while the LLM still writes, barge-in and the history cut."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
from conversation_helpers import EventLog, ManualClock, ScriptedEngine, ScriptedLLM, until

from csmstream.engine.request import FRAME_SAMPLES
from csmstream.pipeline import events as ev
from csmstream.pipeline.conversation import Conversation
from csmstream.pipeline.history import AssistantTurn, ContextPolicy, UserTurn
from csmstream.pipeline.llm import LLMUnavailable
from csmstream.pipeline.session import SessionConfig

FIRST = "It is lovely to meet you."  # one clause: the first unit (first_unit.py) is all of it
SECOND = "The weather today is mild and sunny."
THIRD = "Would you like to hear about tomorrow as well?"
NAMES = ["one", "two", "three"]
TEXT_ONLY = SessionConfig(turn_detection=None, instructions="be kind")


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=60))


def test_first_unit_is_spoken_while_the_llm_still_writes():
    async def scenario():
        engine = ScriptedEngine()
        # The LLM may only finish its second sentence once the first was sent to the engine: if the
        # conversation waited for the whole answer, this would never finish. (The splitter releases a
        # sentence when the next one has begun, hence the "The" in the second delta.)
        llm = ScriptedLLM(
            [FIRST[:10], FIRST[10:] + " " + SECOND[:3], SECOND[3:]], gates={2: engine.submitted}
        )
        conversation = Conversation(engine, llm, None, config=TEXT_ONLY)
        log = EventLog(conversation)
        user_item = conversation.add_user_text("Hi, who are you?")
        response_id = conversation.create_response()
        done = await log.wait_for_type(ev.ResponseDone)
        await conversation.aclose()
        return engine, llm, conversation, log, user_item, response_id, done

    engine, llm, conversation, log, user_item, response_id, done = run(scenario())
    assert done.status == "completed" and done.response_id == response_id
    assert llm.finished
    assert [h.request.text for h in engine.handles] == [FIRST, SECOND]
    # the LLM saw the persona and the user's words
    assert llm.calls[0] == [
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": "Hi, who are you?"},
    ]
    # event order: created, then per unit a caption followed by its audio, then the closing events
    kinds = [type(e).__name__ for e in log.events]
    assert kinds[0] == "ResponseCreated"
    assert kinds[-3:] == ["AudioDone", "TranscriptDone", "ResponseDone"]
    captions = log.of_type(ev.TranscriptDelta)
    assert "".join(c.text for c in captions) == f"{FIRST} {SECOND}"
    assert kinds.index("TranscriptDelta") < kinds.index("AudioDelta")
    audio = np.concatenate([a.pcm for a in log.of_type(ev.AudioDelta)])
    expected_frames = sum(engine.frames_for(t) for t in (FIRST, SECOND))
    assert len(audio) == expected_frames * FRAME_SAMPLES
    assert log.of_type(ev.TranscriptDone)[0].text == f"{FIRST} {SECOND}"

    # history: the user turn, then the assistant turn with both units, their audio and codes
    user, assistant = conversation.history.turns
    assert isinstance(user, UserTurn) and user.item_id == user_item
    assert isinstance(assistant, AssistantTurn) and assistant.text == f"{FIRST} {SECOND}"
    assert assistant.num_samples == len(audio)
    assert [len(u.codes) for u in assistant.units] == [engine.frames_for(FIRST), engine.frames_for(SECOND)]
    # the second unit was conditioned on the first (same voice), as speaker 0 with its generated codes
    (context,) = engine.handles[1].request.context
    assert context.speaker == 0 and context.text == FIRST
    assert torch.equal(context.codes, torch.from_numpy(assistant.units[0].codes))
    assert engine.handles[1].request.speaker == 0


def test_interrupt_cuts_the_turn_to_what_was_played():
    async def scenario():
        engine = ScriptedEngine(chunk_frames=1)
        never = asyncio.Event()  # the third sentence never comes: the LLM is still writing at barge-in
        llm = ScriptedLLM(
            [FIRST + " " + SECOND[:1], SECOND[1:] + " " + THIRD[:1], THIRD[1:]], gates={2: never}
        )
        conversation = Conversation(engine, llm, None, config=TEXT_ONLY)
        log = EventLog(conversation)
        conversation.add_user_text("Tell me about the weather.")
        conversation.create_response()
        first_samples = engine.frames_for(FIRST) * FRAME_SAMPLES

        def second_unit_playing(event) -> bool:
            sent = sum(len(a.pcm) for a in log.of_type(ev.AudioDelta))
            return sent >= first_samples + 6 * FRAME_SAMPLES

        await log.wait_for(second_unit_playing)
        played = first_samples + 2 * FRAME_SAMPLES + 700  # the client heard 2.36 frames of the second unit
        audio_events_before = len(log.of_type(ev.AudioDelta))
        conversation.interrupt(played_samples=played)
        done = await log.wait_for_type(ev.ResponseDone)
        await asyncio.sleep(0.05)  # give a runaway synthesis the chance to leak audio
        audio_events_after = len(log.of_type(ev.AudioDelta))
        next_llm = ScriptedLLM(["Sure."])
        conversation.llm = next_llm
        conversation.add_user_text("Yes please.")
        conversation.create_response()
        await log.wait_for(lambda e: isinstance(e, ev.ResponseDone) and e is not done)
        await conversation.aclose()
        return engine, llm, next_llm, conversation, log, played, done, audio_events_before, audio_events_after

    engine, llm, next_llm, conversation, log, played, done, before, after = run(scenario())
    assert done.status == "cancelled"
    assert before == after, "audio was sent after the interrupt"
    assert llm.saw_cancel and not llm.finished, "the LLM stream was not cancelled"
    assert engine.handles[1].cancelled, "the synthesis in progress was not cancelled"
    assert engine.handles[1].sent_frames < engine.frames_for(SECOND)

    assistant = conversation.history.turns[1]
    assert isinstance(assistant, AssistantTurn) and assistant.truncated
    first, second = assistant.units
    assert first.text == FIRST and first.codes is not None and len(first.codes) == engine.frames_for(FIRST)
    assert assistant.num_samples == played
    assert len(second.audio) == played - len(first.audio)
    assert np.array_equal(second.audio, np.concatenate(second.chunks)[: len(second.audio)])
    assert second.codes is not None and len(second.codes) == 2, "only whole frames heard are kept"
    heard = second.heard_text
    assert heard and SECOND.startswith(heard) and len(heard) < len(SECOND)
    assert THIRD not in assistant.text
    assert log.of_type(ev.TranscriptDone)[0].text == assistant.text

    # the next answer is written and spoken knowing only what was heard
    assert next_llm.calls[0][2] == {"role": "assistant", "content": assistant.text}
    context = engine.handles[-1].request.context
    assistant_context = [s for s in context if s.speaker == 0]
    assert sum(len(s.audio) for s in assistant_context) == played
    assert assistant_context[-1].text == second.heard_spoken_text


def test_playback_estimate_drives_interrupt_without_a_client_figure():
    async def scenario():
        clock = ManualClock()
        engine = ScriptedEngine(frames_per_char=1.0)
        llm = ScriptedLLM([FIRST + " " + SECOND[:1], SECOND[1:]], gates={1: asyncio.Event()})
        conversation = Conversation(engine, llm, None, config=TEXT_ONLY, clock=clock)
        log = EventLog(conversation)
        conversation.add_user_text("Hi")
        conversation.create_response()
        await log.wait_for(lambda e: isinstance(e, ev.AudioDelta))  # playback starts at clock.now
        await until(lambda: conversation.history.turns[1].units[0].finished)
        clock.now += 0.5  # the client has played half a second
        assert conversation.assistant_audible()
        conversation.interrupt()
        await log.wait_for_type(ev.ResponseDone)
        await conversation.aclose()
        return conversation

    conversation = run(scenario())
    assert conversation.history.turns[1].num_samples == 12_000


def test_cancel_keeps_what_was_sent_and_truncate_cuts_further():
    async def scenario():
        engine = ScriptedEngine(chunk_frames=1)
        llm = ScriptedLLM([FIRST + " " + SECOND[:1], SECOND[1:]], gates={1: asyncio.Event()})
        conversation = Conversation(engine, llm, None, config=TEXT_ONLY)
        log = EventLog(conversation)
        conversation.add_user_text("Hi")
        conversation.create_response()
        await log.wait_for(lambda e: len(log.of_type(ev.AudioDelta)) >= 5)
        assert conversation.cancel_response()
        sent = sum(len(a.pcm) for a in log.of_type(ev.AudioDelta))
        turn = conversation.history.turns[1]
        kept_after_cancel = turn.num_samples
        conversation.truncate(turn.item_id, 2 * FRAME_SAMPLES)
        await conversation.aclose()
        return sent, kept_after_cancel, turn, conversation

    sent, kept_after_cancel, turn, conversation = run(scenario())
    assert kept_after_cancel == sent
    assert turn.num_samples == 2 * FRAME_SAMPLES
    assert not conversation.cancel_response(), "nothing is in progress any more"


def test_one_response_at_a_time():
    async def scenario():
        engine = ScriptedEngine()
        llm = ScriptedLLM([FIRST, SECOND], gates={1: asyncio.Event()})
        conversation = Conversation(engine, llm, None, config=TEXT_ONLY)
        log = EventLog(conversation)
        conversation.add_user_text("Hi")
        first = conversation.create_response()
        second = conversation.create_response()
        error = await log.wait_for_type(ev.Error)
        conversation.cancel_response()
        await conversation.aclose()
        return first, second, error

    first, second, error = run(scenario())
    assert first is not None and second is None
    assert error.code == "response_in_progress"


def test_llm_failure_fails_the_response_and_the_conversation_goes_on():
    class BrokenLLM(ScriptedLLM):
        async def stream_chat(self, messages, *, cancel=None):
            self.calls.append(messages)
            yield "Let me "
            raise LLMUnavailable("cannot reach the LLM at http://127.0.0.1:9/v1")

    async def scenario():
        engine = ScriptedEngine()
        conversation = Conversation(engine, BrokenLLM([]), None, config=TEXT_ONLY)
        log = EventLog(conversation)
        conversation.add_user_text("Hi")
        conversation.create_response()
        done = await log.wait_for_type(ev.ResponseDone)
        conversation.llm = ScriptedLLM([FIRST])
        conversation.create_response()
        second = await log.wait_for(lambda e: isinstance(e, ev.ResponseDone) and e is not done)
        await conversation.aclose()
        return log, done, second

    log, done, second = run(scenario())
    assert done.status == "failed" and "cannot reach" in (done.error or "")
    assert log.of_type(ev.Error)[0].code == "llm_unavailable"
    assert second.status == "completed"


@pytest.mark.parametrize("max_turns", [1, 3])
def test_context_follows_the_policy(max_turns):
    """Earlier turns go to the speech model newest first, at most `max_turns` of them."""

    async def scenario():
        engine = ScriptedEngine()
        config = SessionConfig(turn_detection=None, context=ContextPolicy(max_turns=max_turns))
        conversation = Conversation(engine, ScriptedLLM([FIRST]), None, config=config)
        log = EventLog(conversation)
        for i in range(3):
            conversation.add_user_text(f"question {i}")
            conversation.llm = ScriptedLLM([f"Answer {NAMES[i]} is here."])  # 4 words: one unit
            conversation.create_response()
            await log.wait_for(lambda e, n=i: len(log.of_type(ev.ResponseDone)) > n)
        await conversation.aclose()
        return engine

    engine = run(scenario())
    context = engine.handles[-1].request.context
    # typed user turns have no audio, so only assistant turns appear: the newest `max_turns` of them
    assert [s.text for s in context] == [f"Answer {NAMES[i]} is here." for i in range(2)][-max_turns:]
