"""One `/v1/realtime` connection: the OpenAI Realtime API's events over a WebSocket, around one `Conversation`.

Three tasks per connection:

- the receive loop parses client events and calls the conversation (whose methods never block);
- the pump turns the conversation's events into server events;
- the sender is the only writer to the socket, draining the bounded `Outbox` (a client that stops reading
  gets its response cancelled, never an unbounded buffer).

Ordering: the connection's own answers (`session.updated`, `conversation.item.created` for typed text,
errors, ...) are held until the pump has forwarded the pipeline events that the same client event caused,
so the client sees e.g. `input_audio_buffer.speech_started` before `conversation.item.truncated`.

Every malformed event gets an `error` event and the session goes on; so does a binary frame. When the
connection ends, the conversation is closed: its synthesis is cancelled and the engine slot freed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from fastapi import WebSocket
from starlette.websockets import WebSocketState

from csmstream.audio.pcm import float_to_pcm16_bytes
from csmstream.engine.request import SAMPLE_RATE
from csmstream.errors import CsmstreamError
from csmstream.pipeline import events as ev
from csmstream.pipeline.conversation import Conversation
from csmstream.pipeline.history import AssistantTurn, Turn, UserTurn
from csmstream.pipeline.session import SessionConfig
from csmstream.server.context import ServerContext
from csmstream.server.outbox import Outbox
from csmstream.server.realtime_engine import MeteredEngine
from csmstream.server.realtime_events import (
    CONTENT_INDEX,
    EventError,
    answer_part,
    audio_committed_events,
    audio_delta_event,
    audio_done_event,
    check_fields,
    decode_audio,
    error_event,
    expect,
    message_item,
    parse_event,
    parse_max_output_tokens,
    parse_response_create,
    parse_session_update,
    parse_truncate,
    parse_user_text_item,
    require,
    response_created_events,
    response_done_events,
    server_event,
    session_json,
    transcript_delta_event,
    transcript_done_events,
    truncated_event,
)
from csmstream.server.realtime_llm import LimitedLLM
from csmstream.server.realtime_services import RealtimeServices
from csmstream.server.realtime_shapes import initial_shape

logger = logging.getLogger(__name__)

CLOSE_POLICY_VIOLATION = 1008  # the client stopped reading altogether
CLOSE_INTERNAL_ERROR = 1011
SAMPLES_PER_MS = SAMPLE_RATE // 1000
# A long append is fed to the conversation (the VAD) in slices of this much audio, yielding between them.
APPEND_SLICE_MS = 250
APPEND_SLICE_BYTES = APPEND_SLICE_MS * SAMPLES_PER_MS * 2  # PCM16: a whole number of samples
# Conversation errors that are the client's doing (the rest are the server's or its models').
CLIENT_ERROR_CODES = {"bad_request", "unknown_voice", "text_too_long", "response_in_progress"}
# Pipeline error codes → the names OpenAI's Realtime API gives the same situations.
OPENAI_ERROR_CODES = {"response_in_progress": "conversation_already_has_active_response"}


class RealtimeConnection:
    def __init__(self, websocket: WebSocket, ctx: ServerContext, services: RealtimeServices) -> None:
        self._ws = websocket
        self._ctx = ctx
        self._services = services
        self._outbox = Outbox(ctx.options.ws_send_buffer_bytes)
        self._session_id = "sess_" + uuid.uuid4().hex[:20]
        # beta or GA event names and session objects (server/realtime_shapes.py translates)
        self._shape = initial_shape(websocket.headers, websocket.scope.get("subprotocols") or [])
        self._conversation: Conversation | None = None
        self._llm = LimitedLLM(services.llm)
        self._replies: list[dict[str, Any]] = []  # our own answers, sent once the pump has caught up
        self._item_ids: list[str] = []  # items announced to the client, oldest first (`previous_item_id`)
        self._active_response_id: str | None = None
        self._text_responses: set[str] = set()  # responses in progress that are text only (no audio)
        # response id → why it was cancelled, when the client (not the VAD) did it
        self._cancel_reasons: dict[str, str] = {}
        # a handler returns an awaitable when its work is long enough to be split (see `_on_append`)
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None] | None]] = {
            "session.update": self._on_session_update,
            "input_audio_buffer.append": self._on_append,
            "input_audio_buffer.commit": self._on_commit,
            "input_audio_buffer.clear": self._on_clear,
            "conversation.item.create": self._on_item_create,
            "conversation.item.truncate": self._on_truncate,
            "conversation.item.retrieve": self._on_retrieve,
            "response.create": self._on_response_create,
            "response.cancel": self._on_response_cancel,
        }

    @property
    def conversation(self) -> Conversation:
        assert self._conversation is not None, "the conversation exists once the connection is accepted"
        return self._conversation

    async def serve(self) -> None:
        await self._ws.accept()
        sender = asyncio.create_task(self._send_loop(), name="realtime-send")
        try:
            await self._services.ready()
            self._llm.inner = self._services.llm  # built by `ready()`
            self._conversation = Conversation(
                MeteredEngine(self._ctx.engine, self._ctx.metrics),  # type: ignore[arg-type]
                self._llm,
                self._services.stt,
                config=SessionConfig(instructions=self._services.persona),
                vad_model=self._services.vad_model,
                end_of_turn_model=self._services.end_of_turn_model,
            )
        except Exception as exc:  # a missing VAD package, a broken install: say so, then close
            logger.exception("could not start a realtime session")
            self._send(
                error_event("internal", f"could not start the session: {exc}", error_type="server_error")
            )
            self._outbox.close()
            await _quietly(sender)
            await self._close(CLOSE_INTERNAL_ERROR)
            return
        self._send(server_event("session.created", session=self._session_json()))
        pump = asyncio.create_task(self._pump(), name="realtime-pump")
        receiver = asyncio.create_task(self._receive_loop(), name="realtime-receive")
        try:
            # The client leaving (receiver) or the socket failing / the client not reading (sender) ends it.
            await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            receiver.cancel()
            await _quietly(receiver)
            await self.conversation.aclose()  # cancels the synthesis: the engine frees the slot
            await _quietly(pump)  # ends with the conversation's events
            overflowed = self._outbox.overflowed
            self._outbox.close()
            sender.cancel()  # the client is gone (or not reading): nothing queued matters any more
            await _quietly(sender)
            if overflowed:
                await self._close(CLOSE_POLICY_VIOLATION)

    async def _close(self, code: int) -> None:
        if self._ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(code=code), timeout=5.0)

    # ---- the three loops

    async def _receive_loop(self) -> None:
        while True:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                self._reply(
                    error_event(
                        "binary_not_supported",
                        "binary frames are not part of this protocol: send JSON events as text frames "
                        "(audio base64-encoded in input_audio_buffer.append)",
                    )
                )
            else:
                await self._dispatch(message.get("text") or "")
            # Let the pump forward the pipeline events this client event caused, then send our answers
            # after them. One pass of the loop is enough: the pump drains its queue without awaiting.
            await asyncio.sleep(0)
            self._flush_replies()

    async def _pump(self) -> None:
        async for event in self.conversation.events():
            try:
                self._forward(event)
            except Exception:  # a bug must not silence the connection
                logger.exception("forwarding %s failed", type(event).__name__)

    async def _send_loop(self) -> None:
        while (item := await self._outbox.get()) is not None:
            try:
                await self._ws.send_text(item.text)
            except Exception:  # the client is gone; the receive loop sees the disconnect too
                logger.debug("send failed; closing the connection", exc_info=True)
                return
            finally:
                self._outbox.done(item)

    # ---- sending

    def _send(self, event: dict[str, Any]) -> None:
        for shaped in self._shape.server_events(event):
            if shaped["type"] == "error":
                self._ctx.metrics.observe_error(shaped["error"]["code"])
            self._outbox.put_control(_json(shaped))

    def _reply(self, event: dict[str, Any]) -> None:
        """An answer of ours: sent after the pipeline events already emitted (see the module docs)."""
        self._replies.append(event)

    def _send_all(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self._send(event)

    def _flush_replies(self) -> None:
        replies, self._replies = self._replies, []
        for event in replies:
            self._send(event)

    def _session_json(self) -> dict[str, Any]:
        return self._shape.session(
            session_json(
                self._session_id, self._ctx.engine.model_name, self.conversation.config, self._llm.max_deltas
            )
        )

    def _announce_item(self, item_id: str) -> str | None:
        """Record a new item; returns the id of the item before it (`previous_item_id`)."""
        previous = self._item_ids[-1] if self._item_ids else None
        self._item_ids.append(item_id)
        return previous

    # ---- client events

    async def _dispatch(self, raw: str) -> None:
        event_id: str | None = None
        try:
            kind, event_id, event = parse_event(raw)
            event = self._shape.client_event(kind, event)  # a GA event → the internal (beta) form
            handler = self._handlers.get(kind)
            if handler is None:
                raise EventError(
                    "unknown_event_type",
                    f"unknown event type {kind!r}; supported: {', '.join(self._handlers)}",
                    "type",
                )
            pending = handler(event)
            if pending is not None:
                await pending  # the next client event waits for this one: events are handled in order
        except EventError as exc:
            self._reply(error_event(exc.code, exc.message, param=exc.param, client_event_id=event_id))
        except CsmstreamError as exc:
            code = OPENAI_ERROR_CODES.get(exc.code, exc.code)
            self._reply(error_event(code, str(exc), client_event_id=event_id))
        except Exception as exc:  # a bug must cost one event, not the connection
            logger.exception("handling a realtime event failed")
            self._reply(
                error_event(
                    "internal",
                    f"internal error: {type(exc).__name__}",
                    error_type="server_error",
                    client_event_id=event_id,
                )
            )

    def _on_session_update(self, event: dict[str, Any]) -> None:
        check_fields(event, {"type", "event_id", "session"}, "event")
        session = require(event, "session", dict, "event")
        config = parse_session_update(session, self.conversation.config, self._ctx.voices.has)
        max_output_tokens = self._llm.max_deltas
        if "max_response_output_tokens" in session:
            max_output_tokens = parse_max_output_tokens(session["max_response_output_tokens"])
        self.conversation.update_config(config)
        self._llm.max_deltas = max_output_tokens
        self._reply(server_event("session.updated", session=self._session_json()))

    async def _on_append(self, event: dict[str, Any]) -> None:
        pcm = decode_audio(event)  # at most MAX_APPEND_SECONDS of audio: decoding it takes a few ms
        conversation = self.conversation
        audible_before = conversation.assistant_audible()
        turn = _newest_assistant_turn(conversation)
        # The VAD (resampling + the Silero model) costs about 7 ms per second of audio on a CPU core: a big
        # append fed at once would hold the event loop, and so every other connection, for hundreds of ms.
        # Slices of APPEND_SLICE_MS with a yield between them keep the loop free for everyone else.
        for start in range(0, len(pcm), APPEND_SLICE_BYTES):
            if start:
                await asyncio.sleep(0)
            conversation.append_audio(pcm[start : start + APPEND_SLICE_BYTES])
        if (
            audible_before
            and turn is not None
            and not turn.text_only
            and not conversation.assistant_audible()
        ):
            # Server VAD heard the user over the assistant (barge-in): the conversation stopped the answer
            # and cut its item to what the listener is estimated to have heard. Tell the client where.
            kept_ms = turn.num_samples // SAMPLES_PER_MS if conversation.history.find(turn.item_id) else 0
            self._reply(truncated_event(turn.item_id, kept_ms))

    def _on_commit(self, event: dict[str, Any]) -> None:
        check_fields(event, {"type", "event_id"}, "event")
        if self.conversation.commit() is None:
            raise EventError("input_audio_buffer_commit_empty", "the input audio buffer is empty")
        # `input_audio_buffer.committed` comes from the conversation (the same event as a VAD commit)

    def _on_clear(self, event: dict[str, Any]) -> None:
        check_fields(event, {"type", "event_id"}, "event")
        self.conversation.clear_audio()
        self._reply(server_event("input_audio_buffer.cleared"))

    def _on_item_create(self, event: dict[str, Any]) -> None:
        text = parse_user_text_item(event)
        previous_item_id = event.get("previous_item_id")
        if previous_item_id is not None:
            expect(previous_item_id, str, "previous_item_id")
            newest = self._item_ids[-1] if self._item_ids else None
            if previous_item_id != newest:
                raise EventError(
                    "invalid_value",
                    "items can only be added at the end of the conversation: previous_item_id must be "
                    f"the newest item ({newest!r}) or null",
                    "previous_item_id",
                )
        item_id = self.conversation.add_user_text(text)
        item = message_item(item_id, "user", [{"type": "input_text", "text": text}])
        self._reply(
            server_event(
                "conversation.item.created", previous_item_id=self._announce_item(item_id), item=item
            )
        )

    def _on_truncate(self, event: dict[str, Any]) -> None:
        item_id, audio_end_ms = parse_truncate(event)
        turn = self.conversation.history.find(item_id)
        if not isinstance(turn, AssistantTurn):
            raise EventError("invalid_value", f"no assistant item {item_id!r} to truncate", "item_id")
        if turn.text_only:
            raise EventError(
                "invalid_value", f"item {item_id!r} is text only: it has no audio to truncate", "item_id"
            )
        available_ms = turn.num_samples // SAMPLES_PER_MS
        if audio_end_ms > available_ms:
            raise EventError(
                "invalid_value",
                f"audio_end_ms {audio_end_ms} is past the item's audio ({available_ms} ms)",
                "audio_end_ms",
            )
        if self._active_response_id is not None and self.conversation.responding:
            self._cancel_reasons.setdefault(self._active_response_id, "client_cancelled")
        self.conversation.truncate(item_id, audio_end_ms * SAMPLES_PER_MS)
        self._reply(truncated_event(item_id, audio_end_ms))

    def _on_retrieve(self, event: dict[str, Any]) -> None:
        check_fields(event, {"type", "event_id", "item_id"}, "event")
        item_id = require(event, "item_id", str, "event")
        turn = self.conversation.history.find(item_id)
        if turn is None:
            raise EventError("invalid_value", f"no item {item_id!r} in the conversation", "item_id")
        self._reply(server_event("conversation.item.retrieved", item=self._item_json(turn)))

    def _on_response_create(self, event: dict[str, Any]) -> None:
        text_only = parse_response_create(event)  # `response.modalities`; the other overrides: no effect
        if self._services.llm_problem is not None:
            raise EventError("llm_unavailable", self._services.llm_problem)
        # one in progress → the conversation's error event
        self.conversation.create_response(text_only=text_only)

    def _on_response_cancel(self, event: dict[str, Any]) -> None:
        check_fields(event, {"type", "event_id", "response_id"}, "event")
        response_id = event.get("response_id")
        if response_id is not None:
            expect(response_id, str, "response_id")
        active = self._active_response_id
        if not self.conversation.responding or (response_id is not None and response_id != active):
            raise EventError(
                "response_cancel_not_active",
                f"no response {response_id!r} in progress" if response_id else "no response is in progress",
                "response_id" if response_id else None,
            )
        if active is not None:
            self._cancel_reasons[active] = "client_cancelled"
        self.conversation.cancel_response()

    # ---- conversation events → server events

    def _forward(self, event: ev.PipelineEvent) -> None:
        match event:
            case ev.SpeechStarted(item_id, audio_start_ms):
                self._send(
                    server_event(
                        "input_audio_buffer.speech_started", audio_start_ms=audio_start_ms, item_id=item_id
                    )
                )
            case ev.SpeechStopped(item_id, audio_end_ms):
                self._send(
                    server_event(
                        "input_audio_buffer.speech_stopped", audio_end_ms=audio_end_ms, item_id=item_id
                    )
                )
            case ev.InputCommitted(item_id):
                self._send_all(audio_committed_events(item_id, self._announce_item(item_id)))
            case ev.TranscriptionDelta(item_id, delta):
                self._send(
                    server_event(
                        "conversation.item.input_audio_transcription.delta",
                        item_id=item_id,
                        content_index=CONTENT_INDEX,
                        delta=delta,
                    )
                )
            case ev.TranscriptionCompleted(item_id, text):
                self._send(
                    server_event(
                        "conversation.item.input_audio_transcription.completed",
                        item_id=item_id,
                        content_index=CONTENT_INDEX,
                        transcript=text,
                    )
                )
            case ev.ResponseCreated(response_id, item_id, text_only):
                self._active_response_id = response_id
                if text_only:
                    self._text_responses.add(response_id)
                previous_item_id = self._announce_item(item_id)
                self._send_all(response_created_events(response_id, item_id, previous_item_id, text_only))
            case ev.TranscriptDelta(response_id, item_id, text):
                text_only = response_id in self._text_responses
                self._send(transcript_delta_event(response_id, item_id, text, text_only))
            case ev.AudioDelta(response_id, item_id, pcm):
                self._send_audio(response_id, item_id, pcm)
            case ev.AudioDone(response_id, item_id):
                self._send(audio_done_event(response_id, item_id))
            case ev.TranscriptDone(response_id, item_id, text):
                text_only = response_id in self._text_responses
                self._send_all(transcript_done_events(response_id, item_id, text, text_only))
            case ev.ResponseDone(response_id, item_id, status, error, timings_ms):
                if timings_ms:
                    self._ctx.metrics.observe_turn_timings(timings_ms)
                if self._active_response_id == response_id:
                    self._active_response_id = None
                # The item as the conversation keeps it: after a barge-in, only what was heard.
                turn = self.conversation.history.find(item_id)
                transcript = turn.text if turn is not None else ""
                reason = self._cancel_reasons.pop(response_id, None)
                text_only = response_id in self._text_responses
                self._text_responses.discard(response_id)
                done_events = response_done_events(
                    response_id, item_id, status, transcript, reason, error, text_only
                )
                if timings_ms:  # OpenAI's metadata: string values; per-stage ms after the user's speech ended
                    done_events[-1]["response"]["metadata"] = {
                        f"{k}_ms": f"{v:.0f}" for k, v in timings_ms.items()
                    }
                self._send_all(done_events)
            case ev.Error(code, message):
                error_type = "invalid_request_error" if code in CLIENT_ERROR_CODES else "server_error"
                self._send(error_event(OPENAI_ERROR_CODES.get(code, code), message, error_type=error_type))

    def _send_audio(self, response_id: str, item_id: str, pcm: np.ndarray) -> None:
        (shaped,) = self._shape.server_events(
            audio_delta_event(response_id, item_id, float_to_pcm16_bytes(pcm))
        )
        text = _json(shaped)
        if self._outbox.put_audio(text, None):
            return
        # The client reads slower than we speak: stop the answer rather than buffer it without end.
        self._cancel_reasons[response_id] = "client_too_slow"
        self.conversation.cancel_response()
        self._send(
            error_event(
                "slow_client",
                "the client reads audio slower than it is generated: the response was cancelled",
                error_type="server_error",
            )
        )

    def _item_json(self, turn: Turn) -> dict[str, Any]:
        """An item as the conversation holds it now, with its audio (base64 PCM16 24 kHz)."""
        if isinstance(turn, UserTurn):
            if turn.audio is None:
                return message_item(turn.item_id, "user", [{"type": "input_text", "text": turn.text}])
            audio = base64.b64encode(float_to_pcm16_bytes(turn.audio)).decode("ascii")
            content = [{"type": "input_audio", "transcript": turn.text, "audio": audio}]
            return message_item(turn.item_id, "user", content)
        responding = self.conversation.responding and self._active_response_id is not None
        status = "in_progress" if responding and turn is _newest_assistant_turn(self.conversation) else None
        status = status or ("incomplete" if turn.truncated else "completed")
        if turn.text_only:
            return message_item(turn.item_id, "assistant", [answer_part(True, turn.text)], status)
        pcm = np.concatenate([u.audio for u in turn.units]) if turn.units else np.zeros(0, np.float32)
        audio = base64.b64encode(float_to_pcm16_bytes(pcm)).decode("ascii")
        return message_item(
            turn.item_id, "assistant", [{"type": "audio", "transcript": turn.text, "audio": audio}], status
        )


def _newest_assistant_turn(conversation: Conversation) -> AssistantTurn | None:
    return next((t for t in reversed(conversation.history.turns) if isinstance(t, AssistantTurn)), None)


def _json(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False)


async def _quietly(task: asyncio.Task) -> None:
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
