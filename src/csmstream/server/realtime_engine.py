"""The speech engine as a `/v1/realtime` conversation sees it: every synthesis counted in `/metrics`, as the
other protocols count theirs (`csmstream_requests_total{protocol="realtime"}` per unit submitted, then its
finish reason, audio seconds, time to first audio and real-time factor).

A text-only answer submits nothing, so its count stays put: that is how a client (or a test) can see that no
engine slot was used for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from csmstream.engine.base import RequestHandle, SpeechEngine
from csmstream.engine.events import Event, Finished
from csmstream.engine.request import SynthesisRequest
from csmstream.server.metrics import ServerMetrics

PROTOCOL = "realtime"


class MeteredEngine:
    """`engine` with `submit` counted; everything else passes through."""

    def __init__(self, engine: SpeechEngine, metrics: ServerMetrics) -> None:
        self._engine = engine
        self._metrics = metrics

    def submit(self, request: SynthesisRequest) -> RequestHandle:
        self._metrics.requests.labels(PROTOCOL).inc()
        return _MeteredHandle(self._engine.submit(request), self._metrics)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


class _MeteredHandle(RequestHandle):
    """A request's handle that reports its `Finished` to the metrics."""

    def __init__(self, inner: RequestHandle, metrics: ServerMetrics) -> None:
        self._inner = inner
        self._metrics = metrics
        self.request_id = inner.request_id

    async def events(self) -> AsyncIterator[Event]:
        async for event in self._inner.events():
            if isinstance(event, Finished):
                self._metrics.observe_finished(event)
            yield event

    def cancel(self) -> None:
        self._inner.cancel()
