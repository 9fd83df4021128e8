"""The small interface every speech engine offers the server (CSM, piper, ...). One engine never knows another."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass

from csmstream.engine.events import Event
from csmstream.engine.request import SynthesisRequest


@dataclass(frozen=True)
class EngineStats:
    active_sessions: int
    queued: int
    max_slots: int
    max_queue: int
    step_ms_avg: float | None  # recent mean time of one batched step (CSM); None when not meaningful


class RequestHandle(abc.ABC):
    """The caller's end of one request: iterate its events; cancel it at any time (idempotent)."""

    request_id: str

    @abc.abstractmethod
    def events(self) -> AsyncIterator[Event]:
        """Events in order, ending with exactly one `Finished`."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Stop generating; the slot is freed within one step; a `Finished('cancelled')` follows."""


class SpeechEngine(abc.ABC):
    """Lives in the server's event loop; owns whatever thread does the work."""

    name: str  # "csm" | "piper"
    model_name: str
    sample_rate: int

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
