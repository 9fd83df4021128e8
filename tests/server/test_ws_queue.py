"""A server with one slot and one queue place: queue positions and `busy` on every protocol."""

from __future__ import annotations

import httpx
from server_ws import gather, next_message, open_ws, send

LONG = 20.0
LONG_TEXT = "This sentence is here to keep the engine busy for a while. " * 8


def wait_for(ws, request_id: str, kind: str, logs: dict) -> dict:
    """Read (keeping everything) until `request_id` gets a message of type `kind`."""
    from server_ws import RequestLog

    while True:
        message = next_message(ws)
        log = logs.setdefault(message.get("request_id"), RequestLog())
        log.messages.append(message)
        if message["type"] == "audio_chunk" and "audio" not in message:
            log.audio.append(ws.recv(timeout=60))
        if message.get("request_id") == request_id and message["type"] == kind:
            return message


def test_queue_position_then_busy_then_the_queued_request_starts(small_server):
    logs: dict = {}
    with open_ws(small_server) as ws:
        send(ws, type="synthesize", text=LONG_TEXT, request_id="first", max_seconds=LONG, seed=1)
        wait_for(ws, "first", "audio_chunk", logs)  # holds the only slot
        send(ws, type="synthesize", text=LONG_TEXT, request_id="second", max_seconds=LONG, seed=1)
        queued = wait_for(ws, "second", "audio_status", logs)
        assert queued["status"] == "queued" and queued["queue_position"] == 1, queued
        send(ws, type="synthesize", text="No room for me.", request_id="third")
        refused = wait_for(ws, "third", "error", logs)
        assert refused["code"] == "busy", refused
        # HTTP callers are refused too, with their protocol's status
        speech = httpx.post(
            small_server.url + "/v1/audio/speech",
            timeout=30,
            json={"model": "m", "input": "Hi.", "voice": "default"},
        )
        assert speech.status_code == 429 and speech.json()["error"]["code"] == "busy", speech.text
        google = httpx.post(
            small_server.url + "/v1/text:synthesize",
            timeout=30,
            json={
                "input": {"text": "Hi."},
                "voice": {"languageCode": "en-US"},
                "audioConfig": {"audioEncoding": "MP3"},
            },
        )
        assert google.status_code == 429 and google.json()["error"]["status"] == "RESOURCE_EXHAUSTED", (
            google.text
        )
        health = small_server.health()
        assert (health["active_sessions"], health["queued"]) == (1, 1), health

        send(ws, type="cancel", request_id="first")
        started = wait_for(ws, "second", "audio_status", logs)
        assert started["status"] == "started", "the queued request must start once the slot is free"
        send(ws, type="cancel", request_id="second")
        gather(ws, ["first", "second"], logs=logs)
    assert logs["first"].final["finish_reason"] == "cancelled"
    assert logs["second"].final["finish_reason"] == "cancelled"
    health = small_server.wait_idle()
    assert (health["active_sessions"], health["queued"]) == (0, 0), health
