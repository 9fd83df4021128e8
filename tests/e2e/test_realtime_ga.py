"""`/v1/realtime` in both shapes of the OpenAI Realtime API, driven by the official `openai` client against a
real server (tiny CSM checkpoint, llama.cpp LLM server): `client.realtime.connect()` (GA: `session.type`,
`audio.input` / `audio.output`, `response.output_audio.delta`, `conversation.item.added`, ...) and
`client.beta.realtime.connect()` (beta, unchanged). How a connection's shape is chosen:
server/realtime_shapes.py."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
import pytest
from pipeline_helpers import silence, speak, to_pcm16
from realtime_client import RealtimeClient
from sdk_events import of_type as _of
from sdk_events import pcm_of as _pcm_of
from sdk_events import sdk_client as _client
from sdk_events import text_item as _text_item
from sdk_events import until as _until

openai = pytest.importorskip("openai")

QUESTION = "What is the capital of France?"
ANSWER_TOKENS = 4  # one unit of (noise) speech: enough to see every event, quick on a CPU
CHUNK_S = 0.1
ANSWER_TIMEOUT_S = 120
BETA_ONLY_NAMES = {"response.audio.delta", "response.audio_transcript.delta", "conversation.item.created"}


def test_ga_session_and_spoken_question(realtime_server):
    async def run() -> None:
        async with _client(realtime_server).realtime.connect(model="csm-1b") as connection:
            created = (await _until(connection, "session.created"))[-1]["session"]
            assert created["type"] == "realtime" and created["output_modalities"] == ["audio"], created
            assert created["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}, created
            assert created["audio"]["input"]["turn_detection"]["type"] == "server_vad", created
            assert "modalities" not in created and "input_audio_format" not in created

            await connection.session.update(
                session={
                    "type": "realtime",
                    "instructions": "Answer in one short sentence.",
                    "output_modalities": ["audio"],
                    "max_output_tokens": ANSWER_TOKENS,
                    "audio": {
                        "input": {
                            "format": {"type": "audio/pcm", "rate": 24000},
                            "transcription": {"model": "whisper-1"},
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
                        },
                        "output": {"format": {"type": "audio/pcm", "rate": 24000}},
                    },
                    "tracing": None,  # accepted, no effect
                    "truncation": "auto",
                }
            )
            updated = (await _until(connection, "session.updated"))[-1]["session"]
            assert updated["instructions"] == "Answer in one short sentence.", updated
            assert updated["max_output_tokens"] == ANSWER_TOKENS, updated
            assert updated["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 500, updated

            # the spoken question, sent faster than real time: the server's VAD ends the turn on the silence
            audio = np.concatenate([silence(0.3), speak(QUESTION), silence(1.2)])
            chunk = int(CHUNK_S * 24000)
            for start in range(0, len(audio), chunk):
                encoded = base64.b64encode(to_pcm16(audio[start : start + chunk])).decode("ascii")
                await connection.input_audio_buffer.append(audio=encoded)
            events = await _until(connection, "response.done", ANSWER_TIMEOUT_S)

        names = {e["type"] for e in events}
        assert not names & BETA_ONLY_NAMES, names
        for kind in ("input_audio_buffer.speech_started", "input_audio_buffer.committed"):
            assert kind in names, names
        transcript = _of(events, "conversation.item.input_audio_transcription.completed")
        assert transcript and "capital" in transcript[0]["transcript"].lower(), transcript
        added = _of(events, "conversation.item.added")
        assert [e["item"]["role"] for e in added] == ["user", "assistant"], added
        assert any(e["item"]["role"] == "user" for e in _of(events, "conversation.item.done"))

        assert len(_pcm_of(events, "response.output_audio.delta")) > 24000, "less than half a second of audio"
        text = "".join(e["delta"] for e in _of(events, "response.output_audio_transcript.delta"))
        assert text.strip(), names
        assert _of(events, "response.output_audio.done") and _of(
            events, "response.output_audio_transcript.done"
        )
        done = events[-1]["response"]
        assert done["status"] == "completed" and done["output_modalities"] == ["audio"], done
        assert done["output"][0]["content"][0]["type"] == "output_audio", done

    asyncio.run(run())


def test_ga_text_only_answer_and_clear_errors(realtime_server):
    async def run() -> None:
        async with _client(realtime_server).realtime.connect(model="csm-1b") as connection:
            await _until(connection, "session.created")
            # values this server cannot honour are errors naming the GA parameter; the session goes on
            bad = {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}}}}
            await connection.session.update(session=bad)
            error = (await _until(connection, "error"))[-1]["error"]
            assert error["code"] == "invalid_value" and error["param"] == "session.audio.input.format", error
            await connection.session.update(session={"type": "realtime", "modalities": ["text"]})
            error = (await _until(connection, "error"))[-1]["error"]
            assert error["code"] == "unknown_parameter" and error["param"] == "session.modalities", error
            voice = {"type": "realtime", "audio": {"output": {"voice": "no-such-voice"}}}
            await connection.session.update(session=voice)
            error = (await _until(connection, "error"))[-1]["error"]
            assert error["param"] == "session.audio.output.voice", error

            await connection.session.update(
                session={
                    "type": "realtime",
                    "output_modalities": ["text"],
                    "max_output_tokens": ANSWER_TOKENS,
                }
            )
            updated = (await _until(connection, "session.updated"))[-1]["session"]
            assert updated["output_modalities"] == ["text"], updated
            await connection.conversation.item.create(item=_text_item(QUESTION))
            await connection.response.create()
            events = await _until(connection, "response.done", ANSWER_TIMEOUT_S)

        names = {e["type"] for e in events}
        assert "response.output_audio.delta" not in names and not names & BETA_ONLY_NAMES, names
        text = "".join(e["delta"] for e in _of(events, "response.output_text.delta"))
        assert text.strip(), names
        assert _of(events, "response.output_text.done")[0]["text"].strip(), names
        done = events[-1]["response"]
        assert done["output_modalities"] == ["text"], done
        assert done["output"][0]["content"][0]["type"] == "output_text", done

    asyncio.run(run())


def test_beta_client_still_gets_the_beta_shape(realtime_server):
    async def run() -> None:
        async with _client(realtime_server).beta.realtime.connect(model="csm-1b") as connection:
            created = (await _until(connection, "session.created"))[-1]["session"]
            assert created["modalities"] == ["audio", "text"] and "type" not in created, created
            await connection.session.update(session={"max_response_output_tokens": ANSWER_TOKENS})
            await _until(connection, "session.updated")
            await connection.conversation.item.create(item=_text_item(QUESTION))
            await connection.response.create()
            events = await _until(connection, "response.done", ANSWER_TIMEOUT_S)

        names = {e["type"] for e in events}
        assert {
            "conversation.item.created",
            "response.audio.delta",
            "response.audio_transcript.delta",
        } <= names
        assert "response.output_audio.delta" not in names and "conversation.item.added" not in names, names
        assert _pcm_of(events, "response.audio.delta")

    asyncio.run(run())


def test_the_first_session_update_that_tells_settles_the_shape(realtime_server):
    # a client that is neither the official SDK nor beta-marked starts in beta; `session.type` makes it GA
    with RealtimeClient(realtime_server.realtime_url) as client:
        assert "modalities" in client.wait_for("session.created").event["session"]
        client.send("session.update", session={"type": "realtime", "instructions": "Be brief."})
        assert client.wait_for("session.updated").event["session"]["type"] == "realtime"
        mark = client.mark()
        client.send("conversation.item.create", item=_text_item("Hello there."))
        assert client.wait_for("conversation.item.done", after=mark).event["item"]["role"] == "user"
        assert not client.of_type("conversation.item.created")

    # the official SDK without the beta header starts in GA; a beta-shaped first update makes it beta
    async def run() -> None:
        async with _client(realtime_server).realtime.connect(model="csm-1b") as connection:
            assert (await _until(connection, "session.created"))[-1]["session"]["type"] == "realtime"
            await connection.send({"type": "session.update", "session": {"turn_detection": None}})
            updated = (await _until(connection, "session.updated"))[-1]["session"]
            assert updated["turn_detection"] is None and "type" not in updated, updated
            await connection.send({"type": "conversation.item.create", "item": _text_item("Hi.")})
            assert (await _until(connection, "conversation.item.created"))[-1]["item"]["role"] == "user"

    asyncio.run(run())
