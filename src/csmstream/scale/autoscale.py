"""`streams_policy`: Ray Serve's autoscaling on the streams the engines carry, not on HTTP requests.

An open WebSocket is one ongoing request to Ray Serve whether it speaks or idles, and one request may hold a
queued stream for seconds, so Ray's own count says little about load. Each replica reports its engine's
streams (active + queued) and capacity (`record_autoscaling_stats` in `scale/replica.py`); the policy asks
for enough replicas that the streams fill `TARGET_UTILIZATION` of the capacity: queued streams anywhere push
it up. Until replicas report anything it falls back to Ray's rule, ongoing requests against
`target_ongoing_requests` (which `deployment.py` ties to `max_slots`). Ray applies min/max replicas, the
up/down-scaling delays and factors around it.

Configured by import path, `csmstream.scale.autoscale:streams_policy`; it runs in the Serve controller.
"""

from __future__ import annotations

from typing import Any

IMPORT_PATH = "csmstream.scale.autoscale:streams_policy"
# The share of the measured capacity the replicas should be filled to: room for the next streams to start at
# once while a new replica loads its model.
TARGET_UTILIZATION = 0.75
STREAMS = "csmstream_streams"  # active + queued, per replica
CAPACITY = "csmstream_capacity"  # streams the replica keeps real time (measured, else max_slots)


def autoscaling_stats(stats: dict[str, Any]) -> dict[str, float]:
    """A replica's report (`headroom.replica_stats`) as the numbers Ray's autoscaler aggregates."""
    return {STREAMS: float(stats["active"] + stats["queued"]), CAPACITY: float(stats["capacity"])}


def desired_replicas(
    streams: dict[Any, float], capacity: dict[Any, float], target_utilization: float = TARGET_UTILIZATION
) -> float | None:
    """Replicas wanted for the reported streams; None when nothing usable was reported."""
    capacities = [c for c in capacity.values() if c and c > 0]
    if not streams or not capacities:
        return None
    per_replica = sum(capacities) / len(capacities)
    return sum(streams.values()) / (per_replica * target_utilization)


def streams_policy(ctx) -> tuple[float, dict]:
    """Ray Serve's custom autoscaling policy interface: (desired replicas, policy state)."""
    metrics = ctx.aggregated_metrics or {}
    desired = desired_replicas(metrics.get(STREAMS) or {}, metrics.get(CAPACITY) or {})
    if desired is None:  # nothing reported yet: Ray's own rule on ongoing requests
        desired = ctx.total_num_requests / ctx.config.get_target_ongoing_requests()
    return desired, {}
