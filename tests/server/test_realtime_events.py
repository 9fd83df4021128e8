"""The realtime event rules on their own: what a client event must look like, and how a session update
applies (the protocol behaviour on a live server is in tests/e2e)."""

from __future__ import annotations

import base64
import json

import pytest

from csmstream.pipeline.session import SessionConfig, TurnDetection
from csmstream.server.realtime_events import (
    EventError,
    decode_audio,
    error_event,
    parse_event,
    parse_max_output_tokens,
    parse_session_update,
    parse_truncate,
    parse_user_text_item,
    server_event,
    session_json,
)


def _voices(*ids: str):
    return lambda voice_id: voice_id in ids


def _code(call) -> str:
    with pytest.raises(EventError) as info:
        call()
    return info.value.code


def test_parse_event_returns_type_and_client_event_id():
    kind, event_id, event = parse_event(json.dumps({"type": "response.create", "event_id": "e1"}))
    assert (kind, event_id, event["type"]) == ("response.create", "e1", "response.create")
    assert parse_event('{"type": "response.cancel"}')[1] is None


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{", "invalid_json"),
        ('"text"', "invalid_event"),
        ("{}", "missing_required_parameter"),
        ('{"type": null}', "invalid_type"),
        ('{"type": "x", "event_id": 3}', "invalid_type"),
    ],
)
def test_parse_event_refuses_what_is_not_an_event(raw, code):
    assert _code(lambda: parse_event(raw)) == code


def test_session_update_changes_only_the_fields_given():
    current = SessionConfig(instructions="old", turn_detection=TurnDetection(prefix_padding_ms=200))
    update = {"turn_detection": {"type": "server_vad", "silence_duration_ms": 800.0}}
    config = parse_session_update(update, current, _voices())
    assert config.instructions == "old"
    assert config.turn_detection == TurnDetection(prefix_padding_ms=200, silence_duration_ms=800)
    assert isinstance(config.turn_detection.silence_duration_ms, int)
    assert parse_session_update({"turn_detection": None}, current, _voices()).turn_detection is None
    # turning VAD back on starts from the defaults
    back_on = parse_session_update(
        {"turn_detection": {"threshold": 0.7}}, SessionConfig(turn_detection=None), _voices()
    )
    assert back_on.turn_detection == TurnDetection(threshold=0.7)


def test_session_update_voice_must_exist_and_empty_means_the_default():
    assert (
        parse_session_update({"voice": "narrator"}, SessionConfig(), _voices("narrator")).voice_id
        == "narrator"
    )
    assert parse_session_update({"voice": None}, SessionConfig(voice_id="x"), _voices()).voice_id is None
    assert (
        _code(lambda: parse_session_update({"voice": "alloy"}, SessionConfig(), _voices())) == "unknown_voice"
    )


@pytest.mark.parametrize(
    ("session", "code"),
    [
        ({"instructions": 3}, "invalid_type"),
        ({"turn_detection": {"threshold": 0}}, "invalid_value"),
        ({"turn_detection": {"threshold": True}}, "invalid_type"),
        ({"turn_detection": {"threshold": float("nan")}}, "invalid_value"),
        ({"turn_detection": {"prefix_padding_ms": -1}}, "invalid_value"),
        ({"turn_detection": {"silence_duration_ms": 0}}, "invalid_value"),
        ({"turn_detection": {"create_response": "yes"}}, "invalid_type"),
        ({"turn_detection": {"speed": "high"}}, "unknown_parameter"),
        ({"output_audio_format": "g711_alaw"}, "invalid_value"),
        ({"modalities": ["audio"]}, "invalid_value"),  # beta: ["audio", "text"] or ["text"]
        ({"tools": [{"type": "function", "name": "f"}]}, "invalid_value"),
        ({"colour": "blue"}, "unknown_parameter"),
    ],
)
def test_session_update_refuses_bad_fields(session, code):
    assert _code(lambda: parse_session_update(session, SessionConfig(), _voices())) == code


def test_openai_fields_without_effect_are_accepted():
    session = {
        "model": "gpt-4o-realtime",
        "temperature": 0.8,
        "input_audio_transcription": {"model": "whisper-1"},
    }
    assert parse_session_update(session, SessionConfig(), _voices()) == SessionConfig()


def test_max_output_tokens():
    assert parse_max_output_tokens("inf") is None
    assert parse_max_output_tokens(64) == 64
    for bad in (0, 5000, "lots", 1.5):
        with pytest.raises(EventError):
            parse_max_output_tokens(bad)


def test_decode_audio_needs_base64_of_whole_samples():
    pcm = b"\x01\x00\xff\x7f"
    assert decode_audio({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}) == pcm
    assert decode_audio({"type": "input_audio_buffer.append", "audio": ""}) == b""
    assert _code(lambda: decode_audio({"audio": "@@@@"})) == "invalid_value"
    assert _code(lambda: decode_audio({"audio": base64.b64encode(b"\x00").decode()})) == "invalid_value"


def test_user_text_item_joins_its_text_parts():
    item = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": " Hello "}, {"type": "input_text", "text": "there."}],
    }
    assert parse_user_text_item({"type": "conversation.item.create", "item": item}) == "Hello there."
    function_call = {"type": "function_call", "role": "user", "content": []}
    assert _code(lambda: parse_user_text_item({"item": function_call})) == "invalid_value"


def test_truncate_fields():
    event = {"item_id": "item_1", "content_index": 0, "audio_end_ms": 1500.0}
    assert parse_truncate(event) == ("item_1", 1500)
    assert _code(lambda: parse_truncate({**event, "content_index": 1})) == "invalid_value"
    assert _code(lambda: parse_truncate({**event, "audio_end_ms": "1s"})) == "invalid_type"
    assert (
        _code(lambda: parse_truncate({"content_index": 0, "audio_end_ms": 1})) == "missing_required_parameter"
    )


def test_server_events_carry_a_fresh_event_id():
    first, second = server_event("session.updated"), server_event("session.updated")
    assert first["event_id"] != second["event_id"] and first["type"] == "session.updated"
    error = error_event("invalid_value", "bad", param="audio", client_event_id="evt_9")
    assert error["error"] == {
        "type": "invalid_request_error",
        "code": "invalid_value",
        "message": "bad",
        "param": "audio",
        "event_id": "evt_9",
    }


def test_session_json_reports_the_config():
    config = SessionConfig(instructions="Hi", voice_id="narrator", turn_detection=None)
    session = session_json("sess_1", "tiny", config, 32)
    assert (session["instructions"], session["voice"], session["turn_detection"]) == ("Hi", "narrator", None)
    assert session["max_response_output_tokens"] == 32
    assert session_json("sess_1", "tiny", SessionConfig(), None)["turn_detection"]["type"] == "server_vad"
