"""Real-time headroom: how many more streams a replica can take, and the order in which replicas get new ones.

Plain Python, no Ray: the replica reports `replica_stats(engine)`, the router ranks with `rank_by_headroom`.

A replica's headroom is its capacity minus the streams it holds: `capacity − active − queued − behind`. The
capacity is the engine's own measured figure (`EngineStats.capacity_streams`, the streams the measured step
cost keeps real time); an engine that measures none (piper, which speaks one request at a time) declares its
`max_slots` instead. Streams already behind real time count against it: the replica is overloaded.

Reports are a second or two old when the router reads them, so the router corrects them with what it has sent
since (`HeadroomLedger`): every request sent to a replica after its report was measured takes one stream of
headroom, every one that completed since gives one back. The next report replaces the estimate.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

# A report older than this (by its own clock) says nothing any more: the replica is ranked as unmeasured.
STALE_AFTER_S = 30.0


def replica_stats(engine, replica: str, now: float | None = None) -> dict[str, Any]:
    """What a replica reports to the router (and to the autoscaler): JSON-able, from `engine.stats()`."""
    stats = engine.stats()
    measured = stats.capacity_streams is not None
    capacity = stats.capacity_streams if measured else stats.max_slots
    return {
        "replica": replica,
        "status": engine.status,
        "capacity": capacity,
        "capacity_source": "measured" if measured else "slots",
        "active": stats.active_sessions,
        "queued": stats.queued,
        "behind": stats.streams_behind,
        "max_slots": stats.max_slots,
        "headroom": capacity - stats.active_sessions - stats.queued - stats.streams_behind,
        "measured_at": time.time() if now is None else now,
    }


@dataclass(frozen=True)
class Ranked:
    """One candidate as the router sees it: None headroom means nothing measured (or the report is stale)."""

    key: Hashable
    headroom: float | None
    serving: bool = True  # False: the engine is starting, draining or unhealthy


class HeadroomLedger:
    """Requests sent to and completed by each replica, by time, to correct reports that are seconds old."""

    def __init__(self, clock: Callable[[], float] = time.time, horizon_s: float = STALE_AFTER_S) -> None:
        self._clock = clock
        self._horizon_s = horizon_s
        self._events: dict[Hashable, deque[tuple[float, int]]] = defaultdict(deque)

    def sent(self, key: Hashable) -> None:
        self._record(key, +1)

    def completed(self, key: Hashable) -> None:
        self._record(key, -1)

    def forget(self, keep: set[Hashable]) -> None:
        """Drop replicas that are gone."""
        for key in list(self._events):
            if key not in keep:
                del self._events[key]

    def since(self, key: Hashable, measured_at: float) -> int:
        """Streams taken since the report measured at `measured_at`: sent minus completed after it."""
        events = self._events.get(key)
        return sum(delta for at, delta in events if at > measured_at) if events else 0

    def _record(self, key: Hashable, delta: int) -> None:
        now = self._clock()
        events = self._events[key]
        events.append((now, delta))
        while events and events[0][0] < now - self._horizon_s:
            events.popleft()


def estimate(stats: dict | None, key: Hashable, ledger: HeadroomLedger, now: float) -> Ranked:
    """A replica's current headroom from its last report (None when it has reported nothing usable)."""
    if not stats or "headroom" not in stats or "measured_at" not in stats:
        return Ranked(key, None)
    if stats.get("status", "ok") != "ok":
        return Ranked(key, None, serving=False)
    measured_at = float(stats["measured_at"])
    if now - measured_at > STALE_AFTER_S:
        return Ranked(key, None)
    return Ranked(key, float(stats["headroom"]) - ledger.since(key, measured_at))


def rank_by_headroom(candidates: Sequence[Ranked]) -> list[list[Hashable]]:
    """Ranks, most preferred first; each rank is a list of keys the caller picks from by fewest ongoing
    requests (Ray Serve does so within a rank).

    Replicas with room go first, most room first (equal room shares a rank); then replicas that have not
    reported (a fresh replica, or nothing measured anywhere: one rank, so the choice is by fewest ongoing
    requests); then measured replicas without room, least overloaded first; replicas that are not serving
    (starting, draining, unhealthy) last."""
    with_room: dict[float, list] = defaultdict(list)
    full: dict[float, list] = defaultdict(list)
    unmeasured, not_serving = [], []
    for c in candidates:
        if not c.serving:
            not_serving.append(c.key)
        elif c.headroom is None:
            unmeasured.append(c.key)
        elif c.headroom > 0:
            with_room[c.headroom].append(c.key)
        else:
            full[c.headroom].append(c.key)
    ranks = [with_room[h] for h in sorted(with_room, reverse=True)]
    if unmeasured:
        ranks.append(unmeasured)
    ranks += [full[h] for h in sorted(full, reverse=True)]
    if not_serving:
        ranks.append(not_serving)
    return ranks
