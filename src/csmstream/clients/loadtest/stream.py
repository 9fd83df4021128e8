"""One request on `/v1/tts/stream`, timed message by message, as a simulated listener makes it: it may cancel
the request or hang up (close the socket without a goodbye) a while after the first audio.

Only the message headers are read for timing (`audio_chunk` carries `samples`); the audio bytes are counted
and dropped. Every way a stream can end becomes an outcome, never an exception, so one failed listener never
stops a load test: `completed`, `cancelled` (the server confirmed the cancel), `disconnected` (we hung up),
or `error` with a code: the server's (`busy`, `unknown_voice`, `internal`, ...) or the client's (`timeout`,
`connection`: the socket closed or could not be opened, `unauthorized`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.clients.connection import closed_error, open_websocket
from csmstream.clients.errors import AuthenticationFailed
from csmstream.errors import CsmstreamError

TTS_PATH = "/v1/tts/stream"
Action = Literal["listen", "cancel", "disconnect"]
Outcome = Literal["pending", "completed", "cancelled", "disconnected", "error"]
Clock = Callable[[], float]


@dataclass(frozen=True)
class StreamPlan:
    """What one listener asks for and does."""

    text: str
    request_id: str
    voice_id: str | None = None
    action: Action = "listen"
    action_after_s: float = 0.0  # cancel / hang up this long after the first audio arrived
    params: dict[str, Any] = field(default_factory=dict)  # seed, max_seconds, ... (None values left out)


@dataclass
class StreamRecord:
    """What happened to one stream; times are on the runner's clock (seconds)."""

    plan: StreamPlan
    outcome: Outcome = "pending"
    error_code: str | None = None
    message: str = ""
    finish_reason: str | None = None
    sent_s: float | None = None  # `synthesize` sent
    queued_s: float | None = None  # first `audio_status` `queued`
    started_s: float | None = None  # `audio_status` `started`
    ended_s: float | None = None  # the terminal message, the hang-up, or the failure
    action_s: float | None = None  # when the cancel was sent or the socket dropped
    chunks: list[tuple[float, float]] = field(default_factory=list)  # (arrival time, audio seconds)

    @property
    def ttfa_ms(self) -> float | None:
        if self.sent_s is None or not self.chunks:
            return None
        return (self.chunks[0][0] - self.sent_s) * 1000.0

    @property
    def queue_wait_ms(self) -> float | None:
        if self.queued_s is None or self.started_s is None:
            return None
        return (self.started_s - self.queued_s) * 1000.0

    @property
    def audio_s(self) -> float:
        return sum(audio_s for _, audio_s in self.chunks)

    def fail(self, code: str, message: str, now_s: float) -> None:
        self.outcome, self.error_code, self.message, self.ended_s = "error", code, message, now_s


async def connect(server_url: str, api_key: str | None, open_timeout_s: float = 10.0):
    """An open `/v1/tts/stream` WebSocket; a `CsmstreamError` that says what went wrong otherwise."""
    return await open_websocket(server_url, TTS_PATH, api_key, open_timeout_s=open_timeout_s)


def synthesize_message(plan: StreamPlan) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "synthesize",
        "request_id": plan.request_id,
        "text": plan.text,
        "format": "pcm_s16le",
        "audio_encoding": "binary",
    }
    if plan.voice_id:
        message["voice_id"] = plan.voice_id
    message.update({key: value for key, value in plan.params.items() if value is not None})
    return message


async def run_stream(
    websocket,
    plan: StreamPlan,
    timeout_s: float,
    clock: Clock = time.perf_counter,
    server_url: str = "",
    api_key: str | None = None,
) -> StreamRecord:
    """Send `plan` on an open WebSocket and follow it to its end. After a `disconnect` (or a failure of the
    connection) the socket is closed; otherwise it may carry the next request."""
    from websockets.exceptions import ConnectionClosed, WebSocketException

    record = StreamRecord(plan)
    deadline_s = clock() + timeout_s
    try:
        record.sent_s = clock()
        await websocket.send(json.dumps(synthesize_message(plan)))
        while record.outcome == "pending":
            wait_s = deadline_s - clock()
            action_due = plan.action != "listen" and record.chunks and record.action_s is None
            if action_due:
                wait_s = min(wait_s, record.chunks[0][0] + plan.action_after_s - clock())
            if wait_s <= 0:
                if action_due:
                    await _act(websocket, plan, record, clock)
                    continue
                record.fail("timeout", f"no end of the stream within {timeout_s:.0f} s", clock())
                break
            try:
                # cancelling recv() loses nothing: the next call returns the same message
                frame = await asyncio.wait_for(websocket.recv(), wait_s)
            except TimeoutError:
                continue
            if isinstance(frame, str):
                _on_message(record, json.loads(frame), clock())
            # binary frames are the audio of the `audio_chunk` before them, already counted
    except ConnectionClosed as exc:
        error = closed_error(server_url, exc, api_key)
        code = "unauthorized" if isinstance(error, AuthenticationFailed) else "connection"
        record.fail(code, str(error), clock())
    except (OSError, WebSocketException, ValueError) as exc:
        record.fail("connection", f"{type(exc).__name__}: {exc}", clock())
    if record.outcome == "error" and record.error_code in ("connection", "unauthorized", "timeout"):
        await hang_up(websocket)  # the socket is unusable, or a late reply could be read as the next one's
    return record


async def run_stream_on_new_connection(
    server_url: str,
    plan: StreamPlan,
    timeout_s: float,
    api_key: str | None = None,
    clock: Clock = time.perf_counter,
) -> StreamRecord:
    """Open a connection, run one stream on it, close it (what `bench/capacity.py` does per utterance)."""
    start_s = clock()
    try:
        websocket = await connect(server_url, api_key, open_timeout_s=timeout_s)
    except CsmstreamError as exc:
        record = StreamRecord(plan)
        code = "unauthorized" if isinstance(exc, AuthenticationFailed) else "connection"
        record.fail(code, str(exc), clock())
        return record
    try:
        remaining_s = max(1.0, timeout_s - (clock() - start_s))
        return await run_stream(websocket, plan, remaining_s, clock, server_url, api_key)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.close(), 5.0)


async def hang_up(websocket) -> None:
    """Drop the TCP connection without a WebSocket close handshake, as a vanished client would."""
    transport = getattr(websocket, "transport", None)
    if transport is not None:
        transport.abort()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(), 1.0)


async def _act(websocket, plan: StreamPlan, record: StreamRecord, clock: Clock) -> None:
    record.action_s = clock()
    if plan.action == "cancel":
        await websocket.send(json.dumps({"type": "cancel", "request_id": plan.request_id}))
        return  # the server confirms with a `completion` `cancelled`
    await hang_up(websocket)
    record.outcome, record.ended_s = "disconnected", clock()


def _on_message(record: StreamRecord, message: dict[str, Any], now_s: float) -> None:
    if message.get("request_id") != record.plan.request_id:
        return  # e.g. the refusal of a cancel that crossed an earlier request's completion
    kind = message.get("type")
    if kind == "audio_chunk":
        if record.action_s is None:  # after a cancel the listener no longer hears anything
            samples = int(message.get("samples") or 0)
            record.chunks.append((now_s, samples / int(message.get("sample_rate") or SAMPLE_RATE)))
    elif kind == "audio_status" and message.get("status") == "queued":
        record.queued_s = record.queued_s or now_s
    elif kind == "audio_status" and message.get("status") == "started":
        record.started_s = now_s
    elif kind == "completion":
        record.finish_reason = str(message.get("finish_reason"))
        record.outcome = "cancelled" if record.finish_reason == "cancelled" else "completed"
        record.ended_s = now_s
    elif kind == "error":
        record.fail(str(message.get("code") or "internal"), str(message.get("message") or ""), now_s)
