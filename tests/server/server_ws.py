"""A small synchronous client of `/v1/tts/stream` for the tests: send JSON, gather each request's messages."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

import numpy as np
from websockets.sync.client import ClientConnection, connect

BYTES_PER_SAMPLE = {"pcm_s16le": 2, "pcm_f32le": 4}
TERMINAL = ("completion", "error")


def open_ws(server, **kwargs) -> ClientConnection:
    return connect(server.ws_url, open_timeout=30, close_timeout=5, max_size=None, **kwargs)


def send(ws: ClientConnection, **message) -> None:
    ws.send(json.dumps(message))


@dataclass
class RequestLog:
    """Everything the server sent for one request_id, in order."""

    messages: list[dict] = field(default_factory=list)
    audio: list[bytes] = field(default_factory=list)  # one entry per audio_chunk (binary frame or base64)

    @property
    def final(self) -> dict | None:
        return self.messages[-1] if self.messages and self.messages[-1]["type"] in TERMINAL else None

    def of_type(self, kind: str) -> list[dict]:
        return [m for m in self.messages if m["type"] == kind]

    def pcm(self) -> np.ndarray:
        """The request's audio as float32, from the format its chunks declare."""
        chunks = self.of_type("audio_chunk")
        if not chunks:
            return np.zeros(0, np.float32)
        fmt = chunks[0]["format"]
        raw = b"".join(self.audio)
        if fmt == "pcm_s16le":
            return np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
        return np.frombuffer(raw, "<f4").copy()


def next_message(ws: ClientConnection, timeout_s: float = 60.0) -> dict:
    frame = ws.recv(timeout=timeout_s)
    assert isinstance(frame, str), f"expected a JSON text frame, got a binary frame of {len(frame)} bytes"
    return json.loads(frame)


def gather(ws: ClientConnection, request_ids, timeout_s: float = 60.0, logs=None) -> dict[str, RequestLog]:
    """Read until every id in `request_ids` has its terminal message. Binary audio frames are checked to
    follow their `audio_chunk` directly. Messages for other ids are kept too."""
    logs = logs if logs is not None else {}
    while any(rid not in logs or logs[rid].final is None for rid in request_ids):
        message = next_message(ws, timeout_s)
        log = logs.setdefault(message.get("request_id"), RequestLog())
        log.messages.append(message)
        if message["type"] == "audio_chunk":
            if "audio" in message:
                log.audio.append(base64.b64decode(message["audio"]))
            else:
                data = ws.recv(timeout=timeout_s)
                assert isinstance(data, bytes), (
                    f"an audio_chunk in binary mode must be followed by a binary frame: {data!r}"
                )
                log.audio.append(data)
    return logs


def gather_one(ws: ClientConnection, request_id: str, timeout_s: float = 60.0) -> RequestLog:
    return gather(ws, [request_id], timeout_s)[request_id]
