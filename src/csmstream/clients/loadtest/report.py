"""The figures of a load test, its one-line verdict, as text or JSON.

- TTFA: `synthesize` sent → first `audio_chunk` received, as the client measures it (network and queue wait
  included), over every stream that got audio; p50 / p90 / p99.
- Underruns: what the listeners heard through their jitter buffers (`listener.py`), all streams together.
- Streams held at once: streams between `synthesize` sent and their end (the terminal message, the
  hang-up or the failure), counted on the client side, so it means the same for any deployment: the most at
  any moment, and the average over the run (the start of the ramp → the end of the last stream).
- The verdict: the load was held when no stream failed, at least 95 % of the streams heard had no underrun,
  and TTFA p90 stayed within 1 s.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from csmstream.clients.loadtest.preflight import ServerInfo
from csmstream.clients.loadtest.runner import RunResult
from csmstream.clients.loadtest.workload import Workload

HELD_FRACTION = 0.95  # of the streams heard, without an underrun
TTFA_P90_LIMIT_MS = 1000.0
PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class LoadReport:
    url: str
    server: ServerInfo
    workload: Workload
    wall_s: float
    started: int
    completed: int
    cancelled: int
    disconnected: int
    errors_by_code: dict[str, int]
    ttfa_ms: dict[str, float | None]  # p50 / p90 / p99
    streams_with_audio: int
    streams_heard: int  # streams whose listener played some audio
    streams_with_underruns: int
    underruns: int
    underrun_s: float
    concurrent_max: int
    concurrent_mean: float
    audio_s: float
    held: bool
    verdict: str
    first_errors: dict[str, str] = field(default_factory=dict)  # code → the first message with that code

    @property
    def errors(self) -> int:
        return sum(self.errors_by_code.values())

    def to_json(self) -> dict:
        document = asdict(self)
        document["errors"] = self.errors
        return document


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def concurrency(intervals: list[tuple[float, float]], span_s: float) -> tuple[int, float]:
    """(most at once, time-average over span_s) of the [start, end) intervals."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    # at equal times the ends (-1) come first: a stream ending as another starts is not two at once
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    busy_s = sum(max(0.0, end - start) for start, end in intervals)
    return most, (busy_s / span_s if span_s > 0 else 0.0)


def build_report(url: str, server: ServerInfo, workload: Workload, result: RunResult) -> LoadReport:
    records = [h.record for h in result.heard]
    outcomes = Counter(r.outcome for r in records)
    errors = Counter(r.error_code or "internal" for r in records if r.outcome == "error")
    first_errors: dict[str, str] = {}
    for r in records:
        if r.outcome == "error" and r.error_code and r.message:
            first_errors.setdefault(r.error_code, r.message)
    ttfas = [r.ttfa_ms for r in records if r.ttfa_ms is not None]
    heard = [h for h in result.heard if h.record.chunks]
    intervals = [(r.sent_s, r.ended_s) for r in records if r.sent_s is not None and r.ended_s is not None]
    most, mean = concurrency(intervals, result.wall_s)
    report = dict(
        url=url,
        server=server,
        workload=workload,
        wall_s=result.wall_s,
        started=len(records),
        completed=outcomes["completed"],
        cancelled=outcomes["cancelled"],
        disconnected=outcomes["disconnected"],
        errors_by_code=dict(sorted(errors.items())),
        ttfa_ms={f"p{q}": percentile(ttfas, q) for q in PERCENTILES},
        streams_with_audio=len(ttfas),
        streams_heard=len(heard),
        streams_with_underruns=sum(h.playback.underruns > 0 for h in heard),
        underruns=sum(h.playback.underruns for h in heard),
        underrun_s=sum(h.playback.underrun_s for h in heard),
        concurrent_max=most,
        concurrent_mean=mean,
        audio_s=sum(r.audio_s for r in records),
        first_errors=first_errors,
    )
    held, verdict = judge(report)
    return LoadReport(**report, held=held, verdict=verdict)


def judge(report: dict) -> tuple[bool, str]:
    """(held, the verdict line) from the figures."""
    started, errors = report["started"], sum(report["errors_by_code"].values())
    if started == 0:
        return False, "NOT HELD: no stream was started (is --duration long enough?)"
    problems = []
    if errors:
        problems.append(f"{errors} of {started} streams failed ({_counts(report['errors_by_code'])})")
    heard, with_underruns = report["streams_heard"], report["streams_with_underruns"]
    if heard and heard - with_underruns < HELD_FRACTION * heard:
        problems.append(f"{with_underruns} of {heard} streams heard underruns")
    if heard == 0:
        problems.append("no audio was heard")
    p90 = report["ttfa_ms"]["p90"]
    if p90 is not None and p90 > TTFA_P90_LIMIT_MS:
        problems.append(f"TTFA p90 {p90:.0f} ms > {TTFA_P90_LIMIT_MS:.0f} ms")
    users = report["workload"].users
    if problems:
        return False, f"NOT HELD at {users} users: " + "; ".join(problems)
    return True, (
        f"HELD at {users} users: no errors, {heard - with_underruns} of {heard} streams heard without an "
        f"underrun, TTFA p90 {p90:.0f} ms ≤ {TTFA_P90_LIMIT_MS:.0f} ms"
    )


def format_text(report: LoadReport) -> str:
    w = report.workload
    ttfa = ", ".join(f"{name} {_ms(value)}" for name, value in report.ttfa_ms.items())
    lines = [
        f"csmstream loadtest {report.url}: {w.users} users (ramp {w.ramp_s:g} s), {w.duration_s:g} s, "
        f"voice {w.voice_id or 'default'}, jitter buffer {w.jitter_ms:g} ms, cancel {w.cancel_fraction:.0%}, "
        f"disconnect {w.disconnect_fraction:.0%}, seed {w.seed}",
        f"server:     {report.server.describe()}",
        f"streams:    {report.started} started = {report.completed} completed + {report.cancelled} cancelled"
        f" + {report.disconnected} disconnected + {report.errors} errors",
        f"TTFA:       {ttfa} ({report.streams_with_audio} streams with audio)",
        f"underruns:  {report.underruns} ({report.underrun_s:.2f} s of silence) in "
        f"{report.streams_with_underruns} of {report.streams_heard} streams heard",
        f"errors:     {_counts(report.errors_by_code) if report.errors_by_code else 'none'}",
    ]
    lines += [f"            first {code}: {message[:160]}" for code, message in report.first_errors.items()]
    lines += [
        f"held open:  {report.concurrent_max} streams at most, {report.concurrent_mean:.1f} on average",
        f"audio:      {report.audio_s:.1f} s received in {report.wall_s:.1f} s",
        f"verdict:    {report.verdict}",
    ]
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} ms"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{code} {count}" for code, count in counts.items())
