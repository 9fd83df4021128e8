"""A client of `/v1/realtime`: the OpenAI Realtime API events (docs/ARCHITECTURE.md §3, §6), one conversation per
connection. Audio both ways is base64 PCM16, 24 kHz mono.

The server may use the beta event names (`response.audio.delta`) or the GA ones
(`response.output_audio.delta`); `canonical_type` maps the GA names to the beta ones so that the rest of
the client handles one set.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from csmstream.clients.connection import closed_error, open_websocket
from csmstream.errors import CsmstreamError

REALTIME_PATH = "/v1/realtime"

_GA_NAMES = {
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
}


def canonical_type(event_type: str) -> str:
    return _GA_NAMES.get(event_type, event_type)


def encode_audio(pcm: np.ndarray) -> str:
    """(S,) int16 → base64 of little-endian PCM16."""
    samples = np.asarray(pcm)
    assert samples.ndim == 1 and samples.dtype == np.int16, (
        f"want (S,) int16, got {samples.shape} {samples.dtype}"
    )
    return base64.b64encode(samples.astype("<i2", copy=False).tobytes()).decode("ascii")


def decode_audio(data: str) -> np.ndarray:
    """base64 PCM16 → (S,) int16; a trailing odd byte (never sent by a correct server) is dropped."""
    raw = base64.b64decode(data)
    return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.int16)


class RealtimeClient:
    def __init__(self, websocket, server_url: str, api_key: str | None) -> None:
        self._ws = websocket
        self.server_url = server_url
        self._api_key = api_key

    @classmethod
    async def connect(cls, server_url: str, api_key: str | None = None) -> RealtimeClient:
        return cls(await open_websocket(server_url, REALTIME_PATH, api_key), server_url, api_key)

    async def close(self) -> None:
        await self._ws.close()

    async def __aenter__(self) -> RealtimeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- client events -----------------------------------------------------------------------------------

    async def send(self, event: dict[str, Any]) -> None:
        from websockets.exceptions import ConnectionClosed

        event = {"event_id": "evt_" + uuid.uuid4().hex[:16], **event}
        try:
            await self._ws.send(json.dumps(event))
        except ConnectionClosed as exc:
            raise closed_error(self.server_url, exc, self._api_key) from None

    async def update_session(self, **session: Any) -> None:
        """`session.update` with the fields given (None values are left out, so server defaults stay)."""
        fields = {key: value for key, value in session.items() if value is not None}
        if fields:
            await self.send({"type": "session.update", "session": fields})

    async def append_audio(self, pcm: np.ndarray) -> None:
        await self.send({"type": "input_audio_buffer.append", "audio": encode_audio(pcm)})

    async def commit_audio(self) -> None:
        await self.send({"type": "input_audio_buffer.commit"})

    async def add_user_text(self, text: str) -> None:
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        await self.send({"type": "conversation.item.create", "item": item})

    async def create_response(self) -> None:
        await self.send({"type": "response.create"})

    async def cancel_response(self) -> None:
        await self.send({"type": "response.cancel"})

    # --- server events -----------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Server events in order, with `type` in its canonical (beta) name. Ends when the server closes
        the connection normally; any other close raises a `CsmstreamError` that says why."""
        from websockets.exceptions import ConnectionClosed, ConnectionClosedOK

        while True:
            try:
                frame = await self._ws.recv()
            except ConnectionClosedOK:  # 1000 / 1001: the conversation is over
                return
            except ConnectionClosed as exc:
                raise closed_error(self.server_url, exc, self._api_key) from None
            if isinstance(frame, bytes):
                continue  # the protocol is JSON only
            try:
                event = json.loads(frame)
            except ValueError:
                raise CsmstreamError("protocol error: the server sent a message that is not JSON") from None
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                raise CsmstreamError("protocol error: a server event without a `type`")
            event["type"] = canonical_type(event["type"])
            yield event
