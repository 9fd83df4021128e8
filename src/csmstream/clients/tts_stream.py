"""A client of `/v1/tts/stream` (docs/ARCHITECTURE.md §7): send one `synthesize`, get its audio as it is generated.

Audio is asked for as binary `pcm_s16le`: each `audio_chunk` message is followed by one binary frame
holding exactly that chunk's bytes.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.clients.connection import closed_error, open_websocket
from csmstream.clients.errors import ServerError
from csmstream.errors import CsmstreamError

TTS_PATH = "/v1/tts/stream"
BYTES_PER_SAMPLE = 2  # pcm_s16le


@dataclass(frozen=True)
class TtsStatus:
    status: str  # queued | started
    queue_position: int | None


@dataclass(frozen=True)
class TtsChunk:
    seq: int
    sample_rate: int
    pcm: np.ndarray  # (S,) int16 mono


@dataclass(frozen=True)
class TtsCompletion:
    audio_seconds: float
    ttfa_ms: float | None  # the server's: request received → first chunk ready
    rtf: float | None
    finish_reason: str


TtsEvent = TtsStatus | TtsChunk | TtsCompletion


class TtsStreamClient:
    """One WebSocket connection; `synthesize` runs one request on it at a time."""

    def __init__(self, websocket, server_url: str, api_key: str | None) -> None:
        self._ws = websocket
        self.server_url = server_url
        self._api_key = api_key

    @classmethod
    async def connect(cls, server_url: str, api_key: str | None = None) -> TtsStreamClient:
        return cls(await open_websocket(server_url, TTS_PATH, api_key), server_url, api_key)

    async def close(self) -> None:
        await self._ws.close()

    async def __aenter__(self) -> TtsStreamClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def synthesize(
        self, text: str, *, voice_id: str | None = None, request_id: str | None = None, **params: Any
    ) -> AsyncIterator[TtsEvent]:
        """Events of one request, ending with its `TtsCompletion`; an `error` raises `ServerError`.

        `params`: `temperature`, `topk`, `seed`, `greedy`, `max_seconds` (None values are left out)."""
        request_id = request_id or "say_" + uuid.uuid4().hex[:12]
        message: dict[str, Any] = {"type": "synthesize", "request_id": request_id, "text": text}
        message["format"] = "pcm_s16le"
        message["audio_encoding"] = "binary"
        if voice_id:
            message["voice_id"] = voice_id
        message.update({key: value for key, value in params.items() if value is not None})
        await self._send(message)
        while True:
            received = await self._receive_json()
            if received.get("request_id") not in (request_id, None):
                continue  # another request on this connection (not ours to report)
            kind = received.get("type")
            if kind == "error":
                raise ServerError(str(received.get("code", "internal")), str(received.get("message", "")))
            if kind == "audio_status":
                yield TtsStatus(str(received.get("status")), received.get("queue_position"))
            elif kind == "audio_chunk":
                yield await self._chunk(received)
            elif kind == "completion":
                yield TtsCompletion(
                    audio_seconds=float(received.get("audio_seconds") or 0.0),
                    ttfa_ms=received.get("ttfa_ms"),
                    rtf=received.get("rtf"),
                    finish_reason=str(received.get("finish_reason")),
                )
                return

    async def cancel(self, request_id: str) -> None:
        await self._send({"type": "cancel", "request_id": request_id})

    # --- the wire ----------------------------------------------------------------------------------------

    async def _chunk(self, message: dict[str, Any]) -> TtsChunk:
        if "audio" in message:  # base64 mode (we ask for binary, but accept either)
            data = base64.b64decode(message["audio"])
        else:
            data = await self._receive()
            if not isinstance(data, bytes):
                raise CsmstreamError("protocol error: an audio_chunk was not followed by its binary frame")
        expected = int(message.get("samples", len(data) // BYTES_PER_SAMPLE)) * BYTES_PER_SAMPLE
        if len(data) != expected:
            raise CsmstreamError(
                f"protocol error: an audio_chunk announced {expected} bytes, got {len(data)}"
            )
        pcm = np.frombuffer(data, dtype="<i2").astype(np.int16)  # (S,) mono
        return TtsChunk(int(message.get("seq", 0)), int(message.get("sample_rate", SAMPLE_RATE)), pcm)

    async def _send(self, message: dict[str, Any]) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await self._ws.send(json.dumps(message))
        except ConnectionClosed as exc:
            raise closed_error(self.server_url, exc, self._api_key) from None

    async def _receive(self) -> str | bytes:
        from websockets.exceptions import ConnectionClosed

        try:
            return await self._ws.recv()
        except ConnectionClosed as exc:
            raise closed_error(self.server_url, exc, self._api_key) from None

    async def _receive_json(self) -> dict[str, Any]:
        frame = await self._receive()
        if isinstance(frame, bytes):
            raise CsmstreamError("protocol error: a binary frame came without its audio_chunk message")
        try:
            message = json.loads(frame)
        except ValueError:
            raise CsmstreamError("protocol error: the server sent a message that is not JSON") from None
        if not isinstance(message, dict):
            raise CsmstreamError("protocol error: the server sent a JSON message that is not an object")
        return message
