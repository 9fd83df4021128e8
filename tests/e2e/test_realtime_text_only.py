"""Text-only answers over `/v1/realtime`, driven by the official `openai` client against a real server (tiny
CSM checkpoint, llama.cpp LLM server): GA `output_modalities: ["text"]` and beta `modalities: ["text"]`, for
the session or one `response.create`. The answer comes as text events only, and the speech engine is never
asked: the server's count of conversation syntheses in `/metrics` does not move (it does for a spoken answer
on the same connection, so the count can tell)."""

from __future__ import annotations

import asyncio

import pytest
from sdk_events import of_type, pcm_of, realtime_syntheses, sdk_client, text_item, until

pytest.importorskip("openai")

QUESTION = "What is the capital of France?"
ANSWER_TOKENS = 8
ANSWER_TIMEOUT_S = 120
AUDIO_KINDS = {
    "response.audio.delta",
    "response.audio.done",
    "response.audio_transcript.delta",
    "response.audio_transcript.done",
    "response.output_audio.delta",
    "response.output_audio.done",
    "response.output_audio_transcript.delta",
    "response.output_audio_transcript.done",
}


def _check_text_answer(events: list[dict], delta_kind: str, done_kind: str) -> dict:
    """The text events of one answer, none of audio; returns `response.done`'s response."""
    names = {e["type"] for e in events}
    assert not names & AUDIO_KINDS, names
    text = "".join(e["delta"] for e in of_type(events, delta_kind))
    assert text.strip(), names
    (done_text,) = of_type(events, done_kind)
    assert done_text["text"] == text, (done_text, text)
    parts = of_type(events, "response.content_part.added") + of_type(events, "response.content_part.done")
    assert [p["part"]["type"] for p in parts] == ["text", "text"], parts
    response = events[-1]["response"]
    assert response["status"] == "completed", response
    # what OpenAI reports for an answer: its per-stage timings (no audio stage: nothing was spoken)
    metadata = response.get("metadata") or {}
    assert "llm_first_token_ms" in metadata and "first_audio_out_ms" not in metadata, metadata
    return response


def test_ga_text_only_session_synthesizes_nothing(realtime_server):
    async def run() -> tuple[float, float, float]:
        async with sdk_client(realtime_server).realtime.connect(model="csm-1b") as connection:
            await until(connection, "session.created")
            session = {"type": "realtime", "output_modalities": ["text"], "max_output_tokens": ANSWER_TOKENS}
            await connection.session.update(session=session)
            assert (await until(connection, "session.updated"))[-1]["session"]["output_modalities"] == [
                "text"
            ]
            before = realtime_syntheses(realtime_server)
            await connection.conversation.item.create(item=text_item(QUESTION))
            await connection.response.create()
            events = await until(connection, "response.done", ANSWER_TIMEOUT_S)
            after_text = realtime_syntheses(realtime_server)
            response = _check_text_answer(events, "response.output_text.delta", "response.output_text.done")
            assert response["output_modalities"] == ["text"], response
            assert response["output"][0]["content"][0]["type"] == "output_text", response
            assert realtime_server.health()["active_sessions"] == 0

            # one spoken answer in the text session: the engine is asked, and the count shows it
            await connection.response.create(response={"output_modalities": ["audio"]})
            spoken = await until(connection, "response.done", ANSWER_TIMEOUT_S)
            assert pcm_of(spoken, "response.output_audio.delta"), {e["type"] for e in spoken}
            assert spoken[-1]["response"]["output_modalities"] == ["audio"], spoken[-1]
            return before, after_text, realtime_syntheses(realtime_server)

    before, after_text, after_spoken = asyncio.run(run())
    assert after_text == before, "a text-only answer submitted speech to the engine"
    assert after_spoken > after_text, "the spoken answer was not counted: the count cannot tell"


def test_beta_text_only_answers_synthesize_nothing(realtime_server):
    async def run() -> tuple[float, float]:
        async with sdk_client(realtime_server).beta.realtime.connect(model="csm-1b") as connection:
            await until(connection, "session.created")
            await connection.session.update(session={"max_response_output_tokens": ANSWER_TOKENS})
            await until(connection, "session.updated")
            before = realtime_syntheses(realtime_server)
            # one response in text, in a spoken session
            await connection.conversation.item.create(item=text_item(QUESTION))
            await connection.response.create(response={"modalities": ["text"]})
            events = await until(connection, "response.done", ANSWER_TIMEOUT_S)
            response = _check_text_answer(events, "response.text.delta", "response.text.done")
            assert response["modalities"] == ["text"], response
            assert response["output"][0]["content"][0]["type"] == "text", response

            # the whole session in text
            await connection.session.update(session={"modalities": ["text"]})
            assert (await until(connection, "session.updated"))[-1]["session"]["modalities"] == ["text"]
            await connection.conversation.item.create(item=text_item("And of Germany?"))
            await connection.response.create()
            events = await until(connection, "response.done", ANSWER_TIMEOUT_S)
            _check_text_answer(events, "response.text.delta", "response.text.done")
            return before, realtime_syntheses(realtime_server)

    before, after = asyncio.run(run())
    assert after == before, "a text-only answer submitted speech to the engine"
