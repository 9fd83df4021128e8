"""`/v1/tts/stream` errors: bad input gets an `error` and the connection stays usable; a binary frame from
the client closes it with 1003."""

from __future__ import annotations

import json

import pytest
from server_ws import gather_one, next_message, open_ws, send
from websockets.exceptions import ConnectionClosed

GOOD = {"type": "synthesize", "text": "Still working.", "max_seconds": 0.3}

BAD_MESSAGES = {
    "invalid_json": ("{not json", "bad_request"),
    "not_an_object": ("[1, 2, 3]", "bad_request"),
    "unknown_type": ({"type": "sing", "text": "la"}, "bad_request"),
    "missing_type_and_text": ({"voice_id": "default"}, "bad_request"),
    "empty_text": ({"type": "synthesize", "text": "   "}, "bad_request"),
    "text_not_a_string": ({"type": "synthesize", "text": 42}, "bad_request"),
    "over_limit_text": ({"type": "synthesize", "text": "word " * 1000}, "text_too_long"),
    "unknown_voice": ({"type": "synthesize", "text": "Hi.", "voice_id": "no-such-voice"}, "unknown_voice"),
    "negative_temperature": ({"type": "synthesize", "text": "Hi.", "temperature": -1}, "bad_request"),
    "zero_topk": ({"type": "synthesize", "text": "Hi.", "topk": 0}, "bad_request"),
    "negative_max_seconds": ({"type": "synthesize", "text": "Hi.", "max_seconds": -2}, "bad_request"),
    "unknown_format": ({"type": "synthesize", "text": "Hi.", "format": "mp3"}, "bad_request"),
    "unknown_audio_encoding": ({"type": "synthesize", "text": "Hi.", "audio_encoding": "hex"}, "bad_request"),
    "cancel_unknown_request": ({"type": "cancel", "request_id": "nope"}, "bad_request"),
    "text_for_unknown_request": ({"type": "text", "request_id": "nope", "text": "x"}, "bad_request"),
    "text_without_open_request": ({"type": "text", "text": "x"}, "bad_request"),
}


@pytest.mark.parametrize("case", list(BAD_MESSAGES))
def test_bad_message_gets_an_error_and_the_connection_stays_usable(server, case):
    raw, code = BAD_MESSAGES[case]
    with open_ws(server) as ws:
        ws.send(raw if isinstance(raw, str) else json.dumps(raw))
        error = next_message(ws)
        assert error["type"] == "error" and error["code"] == code, error
        assert isinstance(error["message"], str) and error["message"], error
        if isinstance(raw, dict) and "request_id" in raw:
            assert error["request_id"] == raw["request_id"]
        send(ws, **GOOD, request_id="after")
        log = gather_one(ws, "after")
    assert log.final["type"] == "completion", log.messages


def test_error_for_a_request_names_its_request_id(server):
    with open_ws(server) as ws:
        send(ws, type="synthesize", text="Hi.", voice_id="no-such-voice", request_id="v1")
        error = next_message(ws)
    assert (error["type"], error["code"], error["request_id"]) == ("error", "unknown_voice", "v1"), error


def test_duplicate_request_id_is_refused_without_touching_the_first(server):
    with open_ws(server) as ws:
        send(ws, type="start", request_id="dup", max_seconds=0.3)
        send(ws, type="start", request_id="dup", max_seconds=0.3)
        error = next_message(ws)
        assert error["type"] == "error" and error["code"] == "bad_request", error
        # the refusal is not the live request's end: it names the refused id apart (README)
        assert error["request_id"] is None and error["refused_request_id"] == "dup", error
        send(ws, type="end", request_id="dup", text="The first request still finishes normally.")
        log = gather_one(ws, "dup")
    assert log.final["type"] == "completion" and log.final["finish_reason"] != "cancelled", log.messages


def test_text_after_end_ends_that_request_with_an_error(server):
    with open_ws(server) as ws:
        send(ws, type="start", request_id="late", max_seconds=0.3)
        send(ws, type="end", request_id="late", text="Some words to speak first.")
        send(ws, type="text", request_id="late", text="too late")
        log = gather_one(ws, "late")
    assert log.final["type"] == "error" and log.final["code"] == "bad_request", log.messages


def test_binary_frame_from_the_client_closes_with_1003(server):
    with open_ws(server) as ws:
        ws.send(b"\x00\x01\x02")
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003, closed.value
