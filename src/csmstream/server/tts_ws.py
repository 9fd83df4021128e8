"""`/v1/tts/stream`: the streaming TTS WebSocket (docs/ARCHITECTURE.md §7).

One connection = one receive loop (parses client messages, never blocks on the engine), one sender task
(the only writer to the socket, draining the bounded `Outbox`), and one task per open request (`WsRequest`).
Bad input gets an `error` and the connection stays usable; a binary frame from the client is a protocol
violation and closes the connection with 1003. When the connection ends for any reason, every request of
it is cancelled, so no engine slot outlives its client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketState

from csmstream.errors import BadRequest, Busy, CsmstreamError
from csmstream.server.context import ServerContext, server_context
from csmstream.server.outbox import Outbox
from csmstream.server.params import clean_text, parse_request_id, parse_text
from csmstream.server.ws_request import WsRequest, parse_stream_options

logger = logging.getLogger(__name__)

CLOSE_UNSUPPORTED_DATA = 1003  # RFC 6455: a data type the endpoint cannot accept (binary from the client)
CLOSE_POLICY_VIOLATION = 1008  # the client stopped reading altogether
# After a disconnect, how long cancelled requests get to see their engine `Finished` before their tasks
# are cancelled outright (the engine frees a cancelled slot within one step either way).
DRAIN_TIMEOUT_S = 5.0

router = APIRouter()


@router.websocket("/v1/tts/stream")
async def tts_stream(websocket: WebSocket) -> None:
    await TtsConnection(websocket, server_context(websocket)).serve()


class TtsConnection:
    def __init__(self, websocket: WebSocket, ctx: ServerContext) -> None:
        self._ws = websocket
        self._ctx = ctx
        self._outbox = Outbox(ctx.options.ws_send_buffer_bytes)
        self._requests: dict[str, WsRequest] = {}  # open requests by client request_id
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "synthesize": self._on_synthesize,
            "start": self._on_start,
            "text": self._on_text,
            "flush": self._on_flush,
            "end": self._on_end,
            "cancel": self._on_cancel,
        }

    async def serve(self) -> None:
        await self._ws.accept()
        self._ctx.metrics.ws_connections.inc()
        receiver = asyncio.create_task(self._receive_loop(), name="ws-receive")
        sender = asyncio.create_task(self._send_loop(), name="ws-send")
        try:
            # Either side ending ends the connection: the client left or broke the protocol (receiver),
            # or the socket failed / the client stopped reading (sender).
            await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            receiver.cancel()
            sender.cancel()  # whatever is still queued has no one to go to, or the connection closes now
            for request in list(self._requests.values()):
                request.cancel()
            self._outbox.close()
            close_code = None
            if receiver.done() and not receiver.cancelled() and receiver.exception() is None:
                close_code = receiver.result()
            if close_code is None and self._outbox.overflowed:
                close_code = CLOSE_POLICY_VIOLATION
            await _quietly(receiver)
            await _quietly(sender)
            if close_code is not None:
                await self._close(close_code)
            await self._drain_requests()
            self._ctx.metrics.ws_connections.dec()

    async def _close(self, code: int) -> None:
        if self._ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(code=code), timeout=DRAIN_TIMEOUT_S)

    async def _drain_requests(self) -> None:
        tasks = [r.task for r in self._requests.values() if r.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=DRAIN_TIMEOUT_S)
        for task in pending:
            task.cancel()
        for task in pending:
            await _quietly(task)

    # --- the two loops -----------------------------------------------------------------------------------

    async def _receive_loop(self) -> int | None:
        """Read client messages until disconnect (→ None) or a protocol violation (→ the close code)."""
        while True:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                return None
            if message.get("bytes") is not None:
                return CLOSE_UNSUPPORTED_DATA
            self._dispatch(message.get("text") or "")

    async def _send_loop(self) -> None:
        while (item := await self._outbox.get()) is not None:
            try:
                await self._ws.send_text(item.text)
                if item.data is not None:
                    await self._ws.send_bytes(item.data)
            except Exception:  # the client is gone; the receive loop sees the disconnect too
                logger.debug("send failed; closing the connection", exc_info=True)
                return
            finally:
                self._outbox.done(item)

    # --- client messages ---------------------------------------------------------------------------------

    def _dispatch(self, raw: str) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            self._send_error("bad_request", "the message is not valid JSON")
            return
        if not isinstance(msg, dict):
            self._send_error("bad_request", "a message must be a JSON object")
            return
        kind = msg.get("type")
        if kind is None and "text" in msg:
            kind = "synthesize"  # older clients send only `text` (+ `voice_id`)
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            known = ", ".join(self._handlers)
            self._send_error("bad_request", f"unknown message type {kind!r}; expected one of {known}")
            return
        raw_id = msg.get("request_id")
        request_id = raw_id if isinstance(raw_id, str) else None
        # an opener (`synthesize`/`start`) reusing the id of a request still open is refused; its error must
        # not carry that id, or the client would read it as the live request's end (then its completion too)
        duplicate = kind in _OPENERS and request_id is not None and request_id in self._requests
        try:
            handler(msg)
        except Exception as exc:
            if isinstance(exc, CsmstreamError):
                code, text = exc.code, str(exc)
            else:  # a bug must cost one request, not the connection
                logger.exception("handling a %r message failed", kind)
                code, text = "internal", f"internal error: {type(exc).__name__}"
            live = self._requests.get(request_id) if request_id is not None and kind not in _OPENERS else None
            if live is not None:
                live.abort(code, text)  # an error naming a live request ends it (see ws_request)
            elif duplicate:
                self._send_error(code, text, refused_request_id=request_id)
            else:
                self._send_error(code, text, request_id)

    def _on_synthesize(self, msg: dict[str, Any]) -> None:
        text = parse_text(msg.get("text"))
        self._open(msg, incremental=False).start(text)

    def _on_start(self, msg: dict[str, Any]) -> None:
        text = msg.get("text")
        if text is not None:
            text = clean_text(text)
        self._open(msg, incremental=True).start(text)

    def _on_text(self, msg: dict[str, Any]) -> None:
        request = self._incremental(msg)
        if "text" not in msg:
            raise BadRequest("a `text` message needs `text` (a string)")
        request.add_text(clean_text(msg["text"]))

    def _on_flush(self, msg: dict[str, Any]) -> None:
        self._incremental(msg).flush()

    def _on_end(self, msg: dict[str, Any]) -> None:
        request = self._incremental(msg)
        text = msg.get("text")
        if text is not None:
            request.add_text(clean_text(text))
        request.end()

    def _on_cancel(self, msg: dict[str, Any]) -> None:
        request_id = msg.get("request_id")
        if not isinstance(request_id, str) or request_id not in self._requests:
            raise BadRequest(f"no open request with request_id {request_id!r}")
        self._requests[request_id].cancel()

    # --- helpers -----------------------------------------------------------------------------------------

    def _open(self, msg: dict[str, Any], incremental: bool) -> WsRequest:
        request_id = parse_request_id(msg.get("request_id"))
        if request_id in self._requests:
            raise BadRequest(f"request_id {request_id!r} is already in use on this connection")
        if len(self._requests) >= self._ctx.options.ws_max_requests_per_connection:
            raise Busy(
                f"at most {self._ctx.options.ws_max_requests_per_connection} open requests per connection"
            )
        options = parse_stream_options(msg)
        request = WsRequest(request_id, options, self._ctx, self._outbox, incremental, self._forget)
        self._requests[request_id] = request
        self._ctx.metrics.requests.labels("ws").inc()
        return request

    def _incremental(self, msg: dict[str, Any]) -> WsRequest:
        """The open incremental request a `text`/`flush`/`end` is for: by `request_id`, or the only one."""
        request_id = msg.get("request_id")
        if request_id is None:
            candidates = [r for r in self._requests.values() if r.incremental and not r.ended]
            if len(candidates) != 1:
                raise BadRequest("`request_id` is needed unless exactly one incremental request is open")
            return candidates[0]
        request = self._requests.get(request_id) if isinstance(request_id, str) else None
        if request is None:
            raise BadRequest(f"no open request with request_id {request_id!r}")
        if not request.incremental:
            raise BadRequest(
                f"request {request_id!r} is a `synthesize`; only `start` requests take more text"
            )
        return request

    def _forget(self, request: WsRequest) -> None:
        if self._requests.get(request.request_id) is request:
            del self._requests[request.request_id]

    def _send_error(
        self, code: str, message: str, request_id: str | None = None, refused_request_id: str | None = None
    ) -> None:
        """An error outside any open request: a bad message, a refused opener (with its `request_id`), or a
        refused duplicate (`request_id` null, the refused id in `refused_request_id`)."""
        self._ctx.metrics.observe_error(code)
        payload: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if request_id is not None:
            payload["request_id"] = request_id
        if refused_request_id is not None:
            payload["request_id"] = None
            payload["refused_request_id"] = refused_request_id
        self._outbox.put_control(json.dumps(payload))


_OPENERS = ("synthesize", "start")  # their errors never name a live request (a duplicate id is refused)


async def _quietly(task: asyncio.Task) -> None:
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
