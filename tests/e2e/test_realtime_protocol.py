"""`/v1/realtime` protocol behaviour on a real server without an LLM: every malformed event gets an `error`
event and the session goes on; sessions update all-or-nothing; turns committed by the client or by the
server's VAD are transcribed; asking for an answer without an LLM gives a clear error."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from pipeline_helpers import silence, speak, word_error_rate
from realtime_client import RealtimeClient, pcm16

NO_LLM = "no LLM configured: start the server with --llm-base-url/--llm-model or --llm-gguf"
SENTENCE = "Please remind me to buy fresh bread on the way home."


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _text_item(text) -> dict:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


# name → (the frame sent, the error code expected)
MALFORMED = {
    "invalid_json": ("{not json", "invalid_json"),
    "not_an_object": ("[1, 2, 3]", "invalid_event"),
    "no_type": ({"audio": "AAAA"}, "missing_required_parameter"),
    "type_not_a_string": ({"type": 7}, "invalid_type"),
    "event_id_not_a_string": ({"type": "input_audio_buffer.clear", "event_id": 5}, "invalid_type"),
    "unknown_type": ({"type": "response.sing"}, "unknown_event_type"),
    "append_without_audio": ({"type": "input_audio_buffer.append"}, "missing_required_parameter"),
    "append_audio_not_a_string": ({"type": "input_audio_buffer.append", "audio": 123}, "invalid_type"),
    "append_bad_base64": ({"type": "input_audio_buffer.append", "audio": "not base64!!"}, "invalid_value"),
    "append_odd_bytes": (
        {"type": "input_audio_buffer.append", "audio": _b64(b"\x01\x02\x03")},
        "invalid_value",
    ),
    "append_unknown_field": (
        {"type": "input_audio_buffer.append", "audio": "AAAA", "rate": 16000},
        "unknown_parameter",
    ),
    "update_without_session": ({"type": "session.update"}, "missing_required_parameter"),
    "update_session_not_an_object": ({"type": "session.update", "session": "fast"}, "invalid_type"),
    "update_unknown_field": (
        {"type": "session.update", "session": {"speed_of_light": 1}},
        "unknown_parameter",
    ),
    "update_instructions_not_a_string": (
        {"type": "session.update", "session": {"instructions": ["be", "nice"]}},
        "invalid_type",
    ),
    "update_threshold_out_of_range": (
        {"type": "session.update", "session": {"turn_detection": {"type": "server_vad", "threshold": 2}}},
        "invalid_value",
    ),
    "update_threshold_not_a_number": (
        {"type": "session.update", "session": {"turn_detection": {"threshold": "high"}}},
        "invalid_type",
    ),
    "update_silence_not_an_integer": (
        {"type": "session.update", "session": {"turn_detection": {"silence_duration_ms": 1.5}}},
        "invalid_type",
    ),
    "update_unknown_turn_detection": (
        {"type": "session.update", "session": {"turn_detection": {"type": "push_to_talk"}}},
        "invalid_value",
    ),
    "update_unknown_eagerness": (
        {
            "type": "session.update",
            "session": {"turn_detection": {"type": "semantic_vad", "eagerness": "eager"}},
        },
        "invalid_value",
    ),
    "update_turn_detection_not_an_object": (
        {"type": "session.update", "session": {"turn_detection": "on"}},
        "invalid_type",
    ),
    "update_g711": (
        {"type": "session.update", "session": {"input_audio_format": "g711_ulaw"}},
        "invalid_value",
    ),
    "update_unknown_voice": (
        {"type": "session.update", "session": {"voice": "no-such-voice"}},
        "unknown_voice",
    ),
    "update_zero_output_tokens": (
        {"type": "session.update", "session": {"max_response_output_tokens": 0}},
        "invalid_value",
    ),
    "item_without_item": ({"type": "conversation.item.create"}, "missing_required_parameter"),
    "item_from_the_assistant": (
        {"type": "conversation.item.create", "item": {**_text_item("hi"), "role": "assistant"}},
        "invalid_value",
    ),
    "item_without_content": (
        {"type": "conversation.item.create", "item": {**_text_item("hi"), "content": []}},
        "invalid_value",
    ),
    "item_text_not_a_string": ({"type": "conversation.item.create", "item": _text_item(5)}, "invalid_type"),
    "item_blank_text": ({"type": "conversation.item.create", "item": _text_item("   ")}, "invalid_value"),
    "item_not_at_the_end": (
        {"type": "conversation.item.create", "item": _text_item("hi"), "previous_item_id": "item_elsewhere"},
        "invalid_value",
    ),
    "item_audio_content": (
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_audio", "audio": "AAAA"}],
            },
        },
        "invalid_value",
    ),
    "truncate_without_item_id": (
        {"type": "conversation.item.truncate", "content_index": 0, "audio_end_ms": 10},
        "missing_required_parameter",
    ),
    "truncate_unknown_item": (
        {
            "type": "conversation.item.truncate",
            "item_id": "item_nope",
            "content_index": 0,
            "audio_end_ms": 10,
        },
        "invalid_value",
    ),
    "truncate_negative_end": (
        {
            "type": "conversation.item.truncate",
            "item_id": "item_nope",
            "content_index": 0,
            "audio_end_ms": -1,
        },
        "invalid_value",
    ),
    "retrieve_unknown_item": (
        {"type": "conversation.item.retrieve", "item_id": "item_nope"},
        "invalid_value",
    ),
    "cancel_without_response": ({"type": "response.cancel"}, "response_cancel_not_active"),
    "commit_empty_buffer": ({"type": "input_audio_buffer.commit"}, "input_audio_buffer_commit_empty"),
    "create_response_without_llm": ({"type": "response.create"}, "llm_unavailable"),
}


@pytest.fixture
def client(server_without_llm):
    with RealtimeClient(server_without_llm.realtime_url) as client:
        client.wait_for("session.created")
        yield client


def test_every_malformed_event_gets_an_error_and_the_session_goes_on(client):
    for name, (frame, code) in MALFORMED.items():
        if isinstance(frame, dict) and isinstance(frame.get("type"), str):
            frame = {**frame, "event_id": frame.get("event_id", f"evt_{name}")}
        mark = client.mark()
        client.send_raw(frame if isinstance(frame, str) else json.dumps(frame))
        reply = client.wait_next(mark).event
        assert reply["type"] == "error", (name, reply)
        error = reply["error"]
        assert error["code"] == code, (name, error)
        assert error["type"] == "invalid_request_error", (name, error)
        assert isinstance(error["message"], str) and error["message"], (name, error)
        assert reply["event_id"].startswith("event_"), reply
        if isinstance(frame, dict) and isinstance(frame.get("event_id"), str):
            assert error["event_id"] == frame["event_id"], (name, error)
        # the session goes on: a valid event right after works
        mark = client.mark()
        client.send("session.update", session={"instructions": f"after {name}"})
        updated = client.wait_next(mark).event
        assert updated["type"] == "session.updated", (name, updated)
        assert updated["session"]["instructions"] == f"after {name}"


def test_a_binary_frame_gets_an_error_and_the_session_goes_on(client):
    mark = client.mark()
    client.send_raw(pcm16(silence(0.04)))
    error = client.wait_next(mark).event
    assert error["type"] == "error" and error["error"]["code"] == "binary_not_supported", error
    mark = client.mark()
    client.send("input_audio_buffer.clear")
    assert client.wait_next(mark).type == "input_audio_buffer.cleared"


def test_session_created_then_updates_apply_whole_or_not_at_all(client):
    session = client.of_type("session.created")[0]["session"]
    assert session["input_audio_format"] == session["output_audio_format"] == "pcm16"
    assert session["turn_detection"]["type"] == "server_vad", session
    assert session["instructions"], "the default persona"

    new = {
        "instructions": "Be brief.",
        "turn_detection": {"type": "server_vad", "threshold": 0.6, "silence_duration_ms": 700},
        "max_response_output_tokens": 50,
    }
    mark = client.mark()
    client.send("session.update", session=new)
    updated = client.wait_next(mark).event["session"]
    assert updated["instructions"] == "Be brief."
    detection = updated["turn_detection"]
    assert (detection["threshold"], detection["silence_duration_ms"]) == (0.6, 700), detection
    assert detection["prefix_padding_ms"] == session["turn_detection"]["prefix_padding_ms"], "kept"
    assert updated["max_response_output_tokens"] == 50

    # one bad field: nothing of the update is applied
    mark = client.mark()
    client.send("session.update", session={"instructions": "Ramble.", "turn_detection": {"threshold": 7}})
    assert client.wait_next(mark).type == "error"
    mark = client.mark()
    client.send("session.update", session={})
    unchanged = client.wait_next(mark).event["session"]
    assert unchanged["instructions"] == "Be brief." and unchanged["turn_detection"] == detection

    mark = client.mark()
    client.send("session.update", session={"turn_detection": None})
    assert client.wait_next(mark).event["session"]["turn_detection"] is None


def test_client_committed_turn_is_transcribed_and_a_response_needs_an_llm(client):
    client.send("session.update", session={"turn_detection": None})  # the client decides turns
    client.wait_for("session.updated")
    audio = np.concatenate([silence(0.2), speak(SENTENCE), silence(0.3)])
    for start in range(0, len(audio), 24_000):  # no pacing needed without VAD
        client.append(audio[start : start + 24_000])
    client.send("input_audio_buffer.commit", event_id="evt_commit")
    committed = client.wait_for("input_audio_buffer.committed").event
    created = client.wait_for("conversation.item.created").event
    transcribed = client.wait_for("conversation.item.input_audio_transcription.completed", timeout_s=60).event
    assert created["item"]["id"] == committed["item_id"] == transcribed["item_id"]
    assert created["item"]["role"] == "user" and created["item"]["content"][0]["type"] == "input_audio"
    assert word_error_rate(SENTENCE, transcribed["transcript"]) <= 0.2, transcribed

    # the item keeps the audio it was made of
    mark = client.mark()
    client.send("conversation.item.retrieve", item_id=committed["item_id"])
    item = client.wait_next(mark).event["item"]
    assert item["content"][0]["transcript"] == transcribed["transcript"]
    kept = np.frombuffer(base64.b64decode(item["content"][0]["audio"]), "<i2")
    assert abs(len(kept) - len(audio)) <= 24, (len(kept), len(audio))

    mark = client.mark()
    client.send("response.create", event_id="evt_answer")
    error = client.wait_next(mark).event
    assert error["type"] == "error" and error["error"]["message"] == NO_LLM, error
    assert error["error"]["event_id"] == "evt_answer"

    # typed text is an item too; cleared audio is gone
    mark = client.mark()
    client.send("conversation.item.create", item=_text_item("And milk."))
    typed = client.wait_next(mark).event
    assert typed["type"] == "conversation.item.created", typed
    assert typed["previous_item_id"] == committed["item_id"]
    assert typed["item"]["content"] == [{"type": "input_text", "text": "And milk."}]
    client.append(speak(SENTENCE))
    client.send("input_audio_buffer.clear")
    client.wait_for("input_audio_buffer.cleared")
    mark = client.mark()
    client.send("input_audio_buffer.commit")
    assert client.wait_next(mark).event["error"]["code"] == "input_audio_buffer_commit_empty"


def test_vad_turn_without_an_llm_fails_its_response_with_a_clear_error(client):
    audio = np.concatenate([silence(0.3), speak(SENTENCE), silence(1.0)])
    client.stream(audio)
    transcribed = client.wait_for("conversation.item.input_audio_transcription.completed", timeout_s=60).event
    assert word_error_rate(SENTENCE, transcribed["transcript"]) <= 0.2, transcribed
    client.wait_for("response.created")  # server VAD answers on its own ...
    error = client.wait_for("error").event["error"]
    done = client.wait_for("response.done").event["response"]
    assert error["message"] == NO_LLM and error["code"] == "llm_unavailable", error
    assert done["status"] == "failed" and done["status_details"]["type"] == "failed", done
    assert NO_LLM in done["status_details"]["error"]["message"]
