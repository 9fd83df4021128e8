"""Prometheus metrics of one app, in the app's own registry (two apps in one process never share counters).

Engine gauges (active / queued sessions, step time) are read from `engine.stats()` when scraped, so they are
never stale; everything else is counted as requests finish.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from csmstream.engine.base import EngineStats
from csmstream.engine.events import Finished
from csmstream.server.context import server_context

TTFA_BUCKETS_S = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
RTF_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("csmstream_requests", "Synthesis requests received", ["protocol"], registry=r)
        self.errors = Counter("csmstream_errors", "Errors returned to clients", ["code"], registry=r)
        self.finished = Counter(
            "csmstream_finished", "Engine requests finished", ["finish_reason"], registry=r
        )
        self.audio_seconds = Counter("csmstream_audio_seconds", "Seconds of audio generated", registry=r)
        self.ttfa_seconds = Histogram(
            "csmstream_ttfa_seconds", "Submit to first audio chunk", buckets=TTFA_BUCKETS_S, registry=r
        )
        self.rtf = Histogram(
            "csmstream_rtf", "Generation wall time / audio time", buckets=RTF_BUCKETS, registry=r
        )
        self.active_sessions = Gauge(
            "csmstream_active_sessions", "Requests holding an engine slot", registry=r
        )
        self.queued = Gauge("csmstream_queued_sessions", "Requests waiting for a slot", registry=r)
        self.max_slots = Gauge("csmstream_max_slots", "Engine slots", registry=r)
        self.step_seconds = Gauge(
            "csmstream_step_seconds", "Recent mean time of one batched step", registry=r
        )
        self.ws_connections = Gauge("csmstream_ws_connections", "Open /v1/tts/stream connections", registry=r)

    def observe_finished(self, finished: Finished) -> None:
        """One engine request ended (any protocol)."""
        self.finished.labels(finished.finish_reason).inc()
        if finished.audio_seconds > 0:
            self.audio_seconds.inc(finished.audio_seconds)
        if finished.ttfa_ms is not None:
            self.ttfa_seconds.observe(finished.ttfa_ms / 1000.0)
        if finished.rtf is not None:
            self.rtf.observe(finished.rtf)

    def observe_error(self, code: str) -> None:
        self.errors.labels(code).inc()

    def render(self, stats: EngineStats) -> bytes:
        self.active_sessions.set(stats.active_sessions)
        self.queued.set(stats.queued)
        self.max_slots.set(stats.max_slots)
        if stats.step_ms_avg is not None:
            self.step_seconds.set(stats.step_ms_avg / 1000.0)
        return generate_latest(self.registry)


router = APIRouter()


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    ctx = server_context(request)
    return Response(ctx.metrics.render(ctx.engine.stats()), media_type=CONTENT_TYPE_LATEST)
