"""One request on a `/v1/tts/stream` connection: text units → engine requests → messages in the outbox.

A `synthesize` is cut into units at once; an incremental request (`start` / `text` / `flush` / `end`) gets
its units from a `SpeakableSplitter` as text arrives. Either way the units go into one `UnitChain`
(engine/unit_chain.py), which speaks them one after another, each with the earlier ones as context; their
audio goes out under the one client `request_id` with a continuing `seq`. This module only turns text into
units and the chain's events into messages in the outbox.

Every request ends with exactly one terminal message: `completion`, or `error` (engine failure, a bad
message naming this request, or a client too slow to take its audio).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from csmstream.audio.encoders import make_encoder
from csmstream.engine.events import AudioChunk, Finished, Queued, Started
from csmstream.engine.request import new_request_id
from csmstream.errors import BadRequest, CsmstreamError
from csmstream.server.context import ServerContext
from csmstream.server.outbox import Outbox
from csmstream.server.params import SynthesisParams, build_request, parse_params, parse_voice_id
from csmstream.server.unit_chains import open_chain, unit_sizes, whole_text_units
from csmstream.text.splitter import SpeakableSplitter

logger = logging.getLogger(__name__)

WS_FORMATS = ("pcm_s16le", "pcm_f32le")
AUDIO_ENCODINGS = ("binary", "base64")


@dataclass(frozen=True)
class StreamOptions:
    """What a client chose for one request: voice, sampling and how audio is sent."""

    voice_id: str | None
    params: SynthesisParams
    format: str = "pcm_s16le"
    audio_encoding: str = "binary"


def parse_stream_options(msg: Mapping[str, Any]) -> StreamOptions:
    fmt = msg.get("format", "pcm_s16le")
    if fmt not in WS_FORMATS:
        raise BadRequest(f"unknown `format` {fmt!r}; use one of {', '.join(WS_FORMATS)}")
    encoding = msg.get("audio_encoding", "binary")
    if encoding not in AUDIO_ENCODINGS:
        raise BadRequest(f"unknown `audio_encoding` {encoding!r}; use one of {', '.join(AUDIO_ENCODINGS)}")
    return StreamOptions(
        voice_id=parse_voice_id(msg.get("voice_id")),
        params=parse_params(msg),
        format=fmt,
        audio_encoding=encoding,
    )


class WsRequest:
    def __init__(
        self,
        request_id: str,
        options: StreamOptions,
        ctx: ServerContext,
        outbox: Outbox,
        incremental: bool,
        on_done: Callable[[WsRequest], None],
    ) -> None:
        self.request_id = request_id
        self.options = options
        self.incremental = incremental
        self.ended = False  # no more text will come
        self._ctx = ctx
        self._outbox = outbox
        self._on_done = on_done
        self._encoder = make_encoder(options.format, sample_rate=ctx.engine.sample_rate)
        self._splitter: SpeakableSplitter | None = None
        if incremental:
            min_chars, max_chars = unit_sizes(ctx)
            self._splitter = SpeakableSplitter(min_chars=min_chars, max_chars=max_chars)
        # the units run as one chain (each with the earlier ones as context). Its template's text is never
        # spoken (units replace it); the engine gets its own ids: client ids are only unique per connection
        self._chain = open_chain(
            ctx, build_request("", options.voice_id, options.params, request_id=new_request_id())
        )
        self._cancelled = False
        self._final_error: tuple[str, str] | None = None  # (code, message) to send instead of a completion
        self._seq = 0
        self._num_samples = 0  # audio sent to the client
        self.task: asyncio.Task | None = None

    # --- text in -----------------------------------------------------------------------------------------

    def start(self, text: str | None) -> None:
        """Begin running. A `synthesize` passes its whole text; `start` passes optional first text."""
        if not self.incremental:
            assert text is not None, "a synthesize request needs its text"
            try:
                for unit in whole_text_units(self._ctx, text):
                    self._chain.add(unit)
            except CsmstreamError as exc:  # too long: the request ends with this error, nothing is spoken
                self._final_error = (exc.code, str(exc))
            self._end_units()
        elif text:
            self.add_text(text)
        self.task = asyncio.create_task(self._run(), name=f"ws-request-{self.request_id}")

    def add_text(self, delta: str) -> None:
        assert self._splitter is not None, "only incremental requests take more text"
        if self.ended:
            raise BadRequest(f"request {self.request_id!r} has already ended")
        for unit in self._splitter.push(delta):
            self._chain.add(unit)

    def flush(self) -> None:
        assert self._splitter is not None, "only incremental requests can be flushed"
        if self.ended:
            raise BadRequest(f"request {self.request_id!r} has already ended")
        for unit in self._splitter.flush():
            self._chain.add(unit)

    def end(self) -> None:
        self.flush()
        self._end_units()

    def _end_units(self) -> None:
        self.ended = True
        self._chain.close()

    # --- stopping ----------------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Client `cancel` or disconnect: stop the running unit, drop the rest; a completion `cancelled` follows."""
        self._cancelled = True
        self._chain.cancel()

    def abort(self, code: str, message: str) -> None:
        """Cancel, and end with this `error` instead of a completion."""
        if self._final_error is None:
            self._final_error = (code, message)
        self.cancel()

    # --- running -----------------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            finished: Finished | None = None
            if self._final_error is None:
                async for event in self._chain.events():
                    if isinstance(event, AudioChunk):
                        self._relay_chunk(event)
                    elif isinstance(event, Queued):
                        self._send(
                            {"type": "audio_status", "status": "queued", "queue_position": event.position}
                        )
                    elif isinstance(event, Started):
                        self._send({"type": "audio_status", "status": "started"})
                    elif isinstance(event, Finished):
                        finished = event
                assert finished is not None, "a unit chain must end with Finished"
                self._ctx.metrics.observe_finished(finished)
                if finished.finish_reason == "error" and self._final_error is None:
                    error = finished.error
                    self._final_error = (
                        (error.code, str(error)) if error is not None else ("internal", "synthesis failed")
                    )
            self._send_final(finished)
        except Exception as exc:  # a bug here must still end the request for the client
            logger.exception("request %s failed", self.request_id)
            self._final_error = ("internal", f"internal error: {type(exc).__name__}")
            self._send_final(None)
        finally:
            self._chain.cancel()  # cancelled task (teardown) or error: free the engine slot; no-op when done
            self._on_done(self)

    def _relay_chunk(self, chunk: AudioChunk) -> None:
        if self._cancelled:
            return  # after a cancel nothing more goes out; the engine stops within a step
        data = self._encoder.encode(chunk.pcm)
        num_samples = int(chunk.pcm.shape[0])
        message = {
            "type": "audio_chunk",
            "request_id": self.request_id,
            "seq": self._seq,
            "sample_rate": self._ctx.engine.sample_rate,
            "format": self.options.format,
            "samples": num_samples,
        }
        if self.options.audio_encoding == "base64":
            message["audio"] = base64.b64encode(data).decode("ascii")
            queued = self._outbox.put_audio(json.dumps(message), None)
        else:
            queued = self._outbox.put_audio(json.dumps(message), data)
        if not queued:
            self.abort("busy", "the client did not read audio as fast as it was generated; request cancelled")
            return
        self._seq += 1
        self._num_samples += num_samples

    def _send_final(self, finished: Finished | None) -> None:
        if self._final_error is not None:
            code, message = self._final_error
            self._ctx.metrics.observe_error(code)
            self._send({"type": "error", "code": code, "message": message})
            return
        audio_seconds = self._num_samples / self._ctx.engine.sample_rate  # what the client was sent
        reason = "cancelled" if self._cancelled or finished is None else finished.finish_reason
        ttfa_ms = None if finished is None else finished.ttfa_ms
        rtf = None if finished is None else finished.rtf
        self._send(
            {
                "type": "completion",
                "audio_seconds": round(audio_seconds, 4),
                "ttfa_ms": None if ttfa_ms is None else round(ttfa_ms, 2),
                "rtf": None if rtf is None else round(rtf, 4),
                "finish_reason": reason,
            }
        )

    def _send(self, message: dict) -> None:
        self._outbox.put_control(json.dumps({**message, "request_id": self.request_id}))
