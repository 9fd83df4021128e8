"""The small interface every speech engine offers the server (CSM, piper, ...). One engine never knows another."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

from csmstream.engine.events import Event
from csmstream.engine.request import SynthesisRequest


@dataclass(frozen=True)
class EngineStats:
    active_sessions: int
    queued: int
    max_slots: int
    max_queue: int
    step_ms_avg: float | None  # recent mean time of one batched step (CSM); None when not meaningful
    # Real-time capacity, from the step cost measured by the CSM engine (engine/cost_model.py); the defaults
    # mean "not measured / not meaningful" for engines without batched steps.
    capacity_streams: int | None = None  # streams the measured cost leaves real time; None: nothing measured
    streams_behind: int = 0  # decoding streams whose listener has waited more than a few frames in all
    predicted_step_ms: float | None = None  # predicted step at the current number of streams (at least 1)
    step_fixed_ms: float | None = None  # fitted step cost = fixed_ms + per_stream_ms × streams
    step_per_stream_ms: float | None = None
    side_work_ms_avg: float | None = None  # mean time per iteration besides the step (prefill, audio encode)
    # how the step runs: compiled shapes, recompiles and graph breaks since warm-up (ModelRunner.compile_stats)
    compile: dict | None = None
    # fine-tuned voices: the LoRA adapter bank's capacity, adapters loaded / in use, loads so far (CSM only)
    adapters: dict | None = None


class RequestHandle(abc.ABC):
    """The caller's end of one request: iterate its events; cancel it at any time (idempotent)."""

    request_id: str

    @abc.abstractmethod
    def events(self) -> AsyncIterator[Event]:
        """Events in order, ending with exactly one `Finished`."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Stop generating; the slot is freed within one step; a `Finished('cancelled')` follows."""


EngineStatus = Literal["starting", "ok", "draining", "unhealthy"]


class SpeechEngine(abc.ABC):
    """Lives in the server's event loop; owns whatever thread does the work."""

    name: str  # "csm" | "piper"
    model_name: str
    sample_rate: int
    # Called (from any thread) when the engine can no longer serve, e.g. a device error that persists: the
    # server then stops and exits non-zero so that a supervisor restarts it. None: nobody to tell.
    on_fatal: Callable[[str], None] | None = None

    @property
    def status(self) -> EngineStatus:
        """`starting` (loading / warming up), `ok`, `draining`, `unhealthy`: what `/health` reports."""
        return "ok"

    def drain(self) -> None:
        """Stop admitting (the server is going away): from now on `submit` raises `Busy` for new requests and
        `status` is `draining`; requests already admitted or queued, and the later units of their texts
        (`request.continues`), go on. Idempotent; never blocks. The default does nothing (test doubles)."""
        return None

    def forget_voice(self, voice_id: str) -> None:
        """The voice was deleted: drop what the engine keeps for it (a fine-tuned voice's adapter on the device)
        once no request uses it. From any thread; never blocks. The default does nothing."""
        return None

    def abort_all(self, message: str) -> None:
        """End every admitted or queued request soon with `Finished('error')` and a `Busy(message)` error
        (a drain that ran out of time). From any thread; never blocks. The default does nothing."""
        return None

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    def submit(self, request: SynthesisRequest) -> RequestHandle:
        """Admit or queue a request without blocking. Raises `Busy` when the queue is full, `UnknownVoice`,
        `TextTooLong`, `BadRequest` for invalid requests — before any event."""

    @abc.abstractmethod
    def stats(self) -> EngineStats: ...
