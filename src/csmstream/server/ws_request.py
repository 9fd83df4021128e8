"""One request on a `/v1/tts/stream` connection: text units → engine requests → messages in the outbox.

A `synthesize` is one unit. An incremental request (`start` / `text` / `flush` / `end`) gets its units from a
`SpeakableSplitter` as text arrives; the units run one after another as separate engine requests, and their
audio goes out under the one client `request_id` with a continuing `seq`.

Every request ends with exactly one terminal message: `completion`, or `error` (engine failure, a bad
message naming this request, or a client too slow to take its audio).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from csmstream.audio.encoders import make_encoder
from csmstream.engine.base import RequestHandle
from csmstream.engine.events import AudioChunk, Finished, Queued, Started
from csmstream.engine.request import new_request_id
from csmstream.errors import BadRequest, CsmstreamError
from csmstream.server.context import ServerContext
from csmstream.server.outbox import Outbox
from csmstream.server.params import SynthesisParams, build_request, parse_params, parse_voice_id
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


# Units of the same request given as context to the next one (the prompt builder trims further if needed).
MAX_CONTEXT_UNITS = 3


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
        self._units: asyncio.Queue[str | None] = asyncio.Queue()  # None: no more units
        self._splitter: SpeakableSplitter | None = None
        if incremental:
            self._splitter = SpeakableSplitter(
                min_chars=ctx.options.incremental_min_chars,
                max_chars=min(ctx.options.incremental_max_chars, ctx.settings.max_text_chars),
            )
        self._handle: RequestHandle | None = None
        # voice continuity: the units already spoken (text + codes) are the context of the next one
        self._spoken: list = []  # csmstream.model.tokenizer.Segment, newest last
        self._cancelled = False
        self._final_error: tuple[str, str] | None = None  # (code, message) to send instead of a completion
        # what the completion reports, summed over units
        self._seq = 0
        self._num_samples = 0
        self._num_units_started = 0
        self._first_submit_s: float | None = None
        self._ttfa_ms: float | None = None
        self._generation_s = 0.0  # Σ rtf × audio seconds of the units: the engine's own wall time
        self._rtf_known = True
        self._hit_length = False
        self.task: asyncio.Task | None = None

    # --- text in -----------------------------------------------------------------------------------------

    def start(self, text: str | None) -> None:
        """Begin running. A `synthesize` passes its whole text; `start` passes optional first text."""
        if not self.incremental:
            assert text is not None, "a synthesize request needs its text"
            self._units.put_nowait(text)
            self._end_units()
        elif text:
            self.add_text(text)
        self.task = asyncio.create_task(self._run(), name=f"ws-request-{self.request_id}")

    def add_text(self, delta: str) -> None:
        assert self._splitter is not None, "only incremental requests take more text"
        if self.ended:
            raise BadRequest(f"request {self.request_id!r} has already ended")
        for unit in self._splitter.push(delta):
            self._units.put_nowait(unit)

    def flush(self) -> None:
        assert self._splitter is not None, "only incremental requests can be flushed"
        if self.ended:
            raise BadRequest(f"request {self.request_id!r} has already ended")
        for unit in self._splitter.flush():
            self._units.put_nowait(unit)

    def end(self) -> None:
        self.flush()
        self._end_units()

    def _end_units(self) -> None:
        self.ended = True
        self._units.put_nowait(None)

    # --- stopping ----------------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Client `cancel` or disconnect: stop the running unit, drop the rest; a completion `cancelled` follows."""
        self._cancelled = True
        if self._handle is not None:
            self._handle.cancel()
        self._units.put_nowait(None)  # wake a runner waiting for text

    def abort(self, code: str, message: str) -> None:
        """Cancel, and end with this `error` instead of a completion."""
        if self._final_error is None:
            self._final_error = (code, message)
        self.cancel()

    # --- running -----------------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while not self._cancelled:
                text = await self._units.get()
                if text is None or self._cancelled:
                    break
                if not await self._run_unit(text):
                    break
            self._send_final()
        except Exception as exc:  # a bug here must still end the request for the client
            logger.exception("request %s failed", self.request_id)
            self._final_error = ("internal", f"internal error: {type(exc).__name__}")
            self._send_final()
        finally:
            if self._handle is not None:  # cancelled task (teardown) or error: free the engine slot
                self._handle.cancel()
            self._on_done(self)

    async def _run_unit(self, text: str) -> bool:
        """Synthesize one unit and relay its events; False when the request must stop."""
        opts = self.options
        # the engine gets its own id: client ids are only unique per connection
        now_s = time.perf_counter()
        try:
            request = build_request(
                text,
                opts.voice_id,
                opts.params,
                request_id=new_request_id(),
                context=self._spoken[len(self._spoken) - MAX_CONTEXT_UNITS :] if self._spoken else (),
            )
            handle = self._ctx.engine.submit(request)
        except CsmstreamError as exc:
            self._final_error = (exc.code, str(exc))
            return False
        if self._first_submit_s is None:
            self._first_submit_s = now_s
        self._handle = handle
        first_unit = self._num_units_started == 0
        self._num_units_started += 1
        if self._cancelled:  # a cancel that arrived between `get` and `submit`
            handle.cancel()
        finished: Finished | None = None
        async for event in handle.events():
            if isinstance(event, AudioChunk):
                self._relay_chunk(event)
            elif isinstance(event, Queued) and first_unit:
                self._send({"type": "audio_status", "status": "queued", "queue_position": event.position})
            elif isinstance(event, Started) and first_unit:
                self._send({"type": "audio_status", "status": "started"})
            elif isinstance(event, Finished):
                finished = event
        self._handle = None
        assert finished is not None, "an engine event stream must end with Finished"
        self._ctx.metrics.observe_finished(finished)
        if finished.finish_reason == "error":
            error = finished.error
            self._final_error = (
                (error.code, str(error)) if error is not None else ("internal", "synthesis failed")
            )
            return False
        self._hit_length |= finished.finish_reason == "length"
        self._remember_unit(request, finished)
        if finished.rtf is None:
            self._rtf_known = finished.audio_seconds == 0
        else:
            self._generation_s += finished.rtf * finished.audio_seconds
        return True

    def _remember_unit(self, request, finished: Finished) -> None:
        """Keep a spoken unit (its text and CSM codes) as context for the next unit, so that prosody and voice
        carry across sentences. Engines without codes (piper) keep nothing."""
        if not self.incremental or finished.codes is None or len(finished.codes) == 0:
            return
        import torch

        from csmstream.model.tokenizer import Segment

        speaker = request.speaker
        if speaker is None:
            speaker = self._ctx.voices.get(request.voice_id).speaker if request.voice_id else 0
        codes = torch.from_numpy(finished.codes.astype("int64"))
        self._spoken.append(Segment(speaker=speaker, text=request.text, codes=codes))

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
        if self._ttfa_ms is None and self._first_submit_s is not None:
            self._ttfa_ms = (time.perf_counter() - self._first_submit_s) * 1000.0
        self._seq += 1
        self._num_samples += num_samples

    def _send_final(self) -> None:
        if self._final_error is not None:
            code, message = self._final_error
            self._ctx.metrics.observe_error(code)
            self._send({"type": "error", "code": code, "message": message})
            return
        audio_seconds = self._num_samples / self._ctx.engine.sample_rate
        reason = "cancelled" if self._cancelled else ("length" if self._hit_length else "eos")
        rtf = self._generation_s / audio_seconds if audio_seconds > 0 and self._rtf_known else None
        self._send(
            {
                "type": "completion",
                "audio_seconds": round(audio_seconds, 4),
                "ttfa_ms": None if self._ttfa_ms is None else round(self._ttfa_ms, 2),
                "rtf": None if rtf is None else round(rtf, 4),
                "finish_reason": reason,
            }
        )

    def _send(self, message: dict) -> None:
        self._outbox.put_control(json.dumps({**message, "request_id": self.request_id}))
