"""The simulated users, run together against one deployment (see `workload.py` for what each does).

Every user is a task on one event loop; a user listens in real time (it waits until its jitter buffer has
played out before it thinks and asks again), so the offered load is what that many people would make.
No stream starts after the run's duration; the streams open then run to their end (or their timeout).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from csmstream.clients.errors import AuthenticationFailed
from csmstream.clients.loadtest.listener import JitterBuffer, Playback
from csmstream.clients.loadtest.stream import StreamRecord, connect, hang_up, run_stream
from csmstream.clients.loadtest.workload import Workload, draw_plan, think_s
from csmstream.errors import CsmstreamError

STREAM_TIMEOUT_S = 60.0  # a listener gives up on a stream that has not ended by then (queue wait included)
RETRY_PAUSE_S = 1.0  # after a connection that could not be opened
PROGRESS_EVERY_S = 10.0
# errors after which run_stream has closed the socket; after the others (busy, unknown_voice, ...) it goes on
RECONNECT_AFTER = ("connection", "timeout", "unauthorized")


@dataclass
class Heard:
    """One stream and what its listener heard."""

    record: StreamRecord
    playback: Playback
    user: int


@dataclass
class RunResult:
    heard: list[Heard]
    wall_s: float  # the start of the ramp → the end of the last stream


class LoadRun:
    def __init__(
        self,
        server_url: str,
        api_key: str | None,
        workload: Workload,
        progress: Callable[[str], None] | None = None,
        stream_timeout_s: float = STREAM_TIMEOUT_S,
    ) -> None:
        self.server_url, self.api_key, self.workload = server_url, api_key, workload
        self.progress = progress
        self.stream_timeout_s = stream_timeout_s
        self.heard: list[Heard] = []
        self.open_streams = 0
        self._t0 = 0.0

    def now_s(self) -> float:
        """Seconds since the start of the ramp."""
        return time.perf_counter() - self._t0

    async def run(self) -> RunResult:
        self._t0 = time.perf_counter()
        users = [
            asyncio.create_task(self._user(index, arrival_s))
            for index, arrival_s in enumerate(self.workload.arrivals_s())
        ]
        reporter = asyncio.create_task(self._report_progress()) if self.progress else None
        try:
            await asyncio.gather(*users)
        finally:
            for task in [*users, reporter]:
                if task is not None:
                    task.cancel()
        ends = [h.record.ended_s for h in self.heard if h.record.ended_s is not None]
        return RunResult(self.heard, max(ends, default=self.now_s()))

    async def _user(self, user: int, arrival_s: float) -> None:
        rng = self.workload.user_rng(user)
        await asyncio.sleep(max(0.0, arrival_s - self.now_s()))
        websocket = None
        number = 0
        try:
            while self.now_s() < self.workload.duration_s:
                plan = draw_plan(self.workload, rng, user, number)
                number += 1
                if websocket is None:
                    try:
                        websocket = await connect(self.server_url, self.api_key)
                    except CsmstreamError as exc:
                        record = StreamRecord(plan)
                        record.sent_s = self.now_s()
                        code = "unauthorized" if isinstance(exc, AuthenticationFailed) else "connection"
                        record.fail(code, str(exc), self.now_s())
                        self.heard.append(Heard(record, Playback(0, 0.0), user))
                        await asyncio.sleep(RETRY_PAUSE_S)
                        continue
                self.open_streams += 1
                try:
                    record = await run_stream(
                        websocket, plan, self.stream_timeout_s, self.now_s, self.server_url, self.api_key
                    )
                finally:
                    self.open_streams -= 1
                buffer = listen(record, self.workload.jitter_s)
                self.heard.append(Heard(record, buffer.playback(), user))
                if record.outcome == "disconnected" or record.error_code in RECONNECT_AFTER:
                    websocket = None  # hung up, or the socket is gone: the next stream reconnects
                # hear it out (a completed stream), think, ask again; no waiting past the run's end
                drained_at_s = buffer.drained_at_s() if record.outcome == "completed" else None
                next_at_s = max(self.now_s(), drained_at_s or 0.0) + think_s(self.workload, rng)
                await asyncio.sleep(max(0.0, min(next_at_s, self.workload.duration_s) - self.now_s()))
        finally:
            if websocket is not None:
                await _close(websocket)

    async def _report_progress(self) -> None:
        assert self.progress is not None
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            errors = sum(h.record.outcome == "error" for h in self.heard)
            self.progress(
                f"{self.now_s():5.0f} s: {self.open_streams} streams open, {len(self.heard)} ended, "
                f"{errors} errors"
            )


def listen(record: StreamRecord, jitter_s: float) -> JitterBuffer:
    """The record's audio through a jitter buffer, as its listener heard it: to the end of a completed
    stream, to the cancel or hang-up, or to the failure."""
    buffer = JitterBuffer(jitter_s)
    for at_s, audio_s in record.chunks:
        buffer.receive(at_s, audio_s)
    if record.action_s is not None:  # cancelled or hung up (or a cancel that crossed the completion)
        buffer.stop(record.action_s)
    elif record.outcome == "completed" and record.ended_s is not None:
        buffer.end(record.ended_s)
    elif record.ended_s is not None:
        buffer.stop(record.ended_s)
    return buffer


async def _close(websocket) -> None:
    try:
        await asyncio.wait_for(websocket.close(), 5.0)
    except Exception:
        await hang_up(websocket)


def print_progress(line: str) -> None:
    print(f"loadtest: {line}", file=sys.stderr, flush=True)
