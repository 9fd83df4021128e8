"""Prometheus metrics of one app, in the app's own registry (two apps in one process never share counters).

Engine gauges (active / queued sessions, step time, real-time capacity and the fitted step cost) are read from
`engine.stats()` when scraped, so they are never stale; everything else is counted as requests finish.
"""

from __future__ import annotations

import math

from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from csmstream.engine.base import EngineStats
from csmstream.engine.events import Finished
from csmstream.server.context import server_context

TTFA_BUCKETS_S = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
COMPILE_FIGURES = {
    "compile_enabled": "1 when the step runs compiled",
    "cuda_graphs": "1 when the step replays CUDA graphs",
    "step_shapes": "Step shapes (batch bucket x kv bucket) built at warm-up",
    "recompiles_after_warmup": "Graphs compiled after warm-up (should stay 0)",
    "graph_breaks": "Graph breaks seen by torch.compile",
}
ADAPTER_FIGURES = {
    "capacity": "Fine-tuned voices (LoRA adapters) the device holds at once",
    "loaded": "Adapters loaded on the device now",
    "in_use": "Adapters some stream speaks through now",
    "loads": "Adapters loaded since start",
}
RTF_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)
TURN_STAGE_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0)


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
        # how the step runs (ModelRunner.compile_stats): a recompile while serving is a latency spike
        self.compile_figures = {
            key: Gauge(f"csmstream_{key}", help_text, registry=r)
            for key, help_text in COMPILE_FIGURES.items()
        }
        self.adapter_figures = {
            key: Gauge(f"csmstream_adapters_{key}", help_text, registry=r)
            for key, help_text in ADAPTER_FIGURES.items()
        }
        # real-time capacity from the measured step cost (engine/cost_model.py); NaN (unknown) until measured
        self.capacity_streams = Gauge(
            "csmstream_capacity_streams", "Streams the measured step cost leaves real time", registry=r
        )
        self.streams_behind = Gauge(
            "csmstream_streams_behind",
            "Streams whose listener waited more than a few frames for audio",
            registry=r,
        )
        self.step_cost_ms = Gauge(
            "csmstream_step_cost_ms",
            "Fitted step cost: fixed + per_stream x streams, in ms",
            ["term"],
            registry=r,
        )
        # realtime conversations (pipeline/turn_timings.py): stage = speech_end_detected, transcript_final,
        # llm_first_token, first_unit_to_voice, first_audio_out
        self.turn_stage_seconds = Histogram(
            "csmstream_turn_stage_seconds",
            "Conversation turn: time from the end of the user's speech to each stage",
            ["stage"],
            buckets=TURN_STAGE_BUCKETS_S,
            registry=r,
        )
        self.side_work_ms = Gauge(
            "csmstream_side_work_ms",
            "Mean time per iteration besides the step (prefill, audio encode)",
            registry=r,
        )

    def observe_finished(self, finished: Finished) -> None:
        """One engine request ended (any protocol)."""
        self.finished.labels(finished.finish_reason).inc()
        if finished.audio_seconds > 0:
            self.audio_seconds.inc(finished.audio_seconds)
        if finished.ttfa_ms is not None:
            self.ttfa_seconds.observe(finished.ttfa_ms / 1000.0)
        if finished.rtf is not None:
            self.rtf.observe(finished.rtf)

    def observe_turn_timings(self, timings_ms: dict[str, float]) -> None:
        """One answered conversation turn: each stage's time after the end of the user's speech."""
        for stage, ms in timings_ms.items():
            self.turn_stage_seconds.labels(stage).observe(max(ms, 0.0) / 1000.0)

    def observe_error(self, code: str) -> None:
        self.errors.labels(code).inc()

    def render(self, stats: EngineStats) -> bytes:
        self.active_sessions.set(stats.active_sessions)
        self.queued.set(stats.queued)
        self.max_slots.set(stats.max_slots)
        if stats.step_ms_avg is not None:
            self.step_seconds.set(stats.step_ms_avg / 1000.0)
        self.streams_behind.set(stats.streams_behind)
        # NaN, not 0, where nothing is measured: a capacity of 0 would read as "cannot serve anyone"
        self.capacity_streams.set(_or_nan(stats.capacity_streams))
        self.side_work_ms.set(_or_nan(stats.side_work_ms_avg))
        if stats.step_fixed_ms is not None and stats.step_per_stream_ms is not None:
            self.step_cost_ms.labels("fixed").set(stats.step_fixed_ms)
            self.step_cost_ms.labels("per_stream").set(stats.step_per_stream_ms)
        for key, gauge in self.compile_figures.items():
            value = (stats.compile or {}).get(key)
            gauge.set(math.nan if value is None else float(value))
        for key, gauge in self.adapter_figures.items():
            value = (stats.adapters or {}).get(key)
            gauge.set(math.nan if value is None else float(value))
        return generate_latest(self.registry)


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


router = APIRouter()


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    ctx = server_context(request)
    return Response(ctx.metrics.render(ctx.engine.stats()), media_type=CONTENT_TYPE_LATEST)
