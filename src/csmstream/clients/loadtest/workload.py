"""What the simulated users do, drawn from a seed (no I/O here).

Users arrive during the ramp at the times of a Poisson process that brings exactly `users` of them within
`ramp_s` (which is: that many times drawn uniformly over the ramp, sorted). Each user then loops until the
run's duration is over: open a WebSocket (once, again after hanging up), ask for one of the built-in texts,
listen to it in real time, think for a moment (exponential, mean `think_mean_s`), ask for the next. Each
stream is, independently, cancelled with probability `cancel_fraction` or hung up with probability
`disconnect_fraction`, at a moment drawn between 0.05 and 0.5 s after its first audio.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from csmstream.clients.loadtest.stream import StreamPlan
from csmstream.clients.loadtest.texts import pick_text
from csmstream.errors import BadRequest

# cancel / hang up this long after the first audio: early, so that it falls mid-stream even on an engine
# that sends whole sentences (piper), whose next sentence may come well under a second later
ACTION_AFTER_S = (0.05, 0.5)
THINK_MEAN_S = 1.0  # a user's pause between hearing one answer and asking for the next


@dataclass(frozen=True)
class Workload:
    users: int
    ramp_s: float
    duration_s: float  # from the start of the ramp; no stream starts after it
    voice_id: str | None = None
    cancel_fraction: float = 0.1
    disconnect_fraction: float = 0.05
    jitter_ms: float = 200.0
    seed: int = 0
    think_mean_s: float = THINK_MEAN_S

    def __post_init__(self) -> None:
        if self.users < 1:
            raise BadRequest(f"--users must be at least 1, got {self.users}")
        if self.ramp_s < 0:
            raise BadRequest(f"--ramp must be ≥ 0 seconds, got {self.ramp_s:g}")
        if self.duration_s <= self.ramp_s:
            raise BadRequest(
                f"--duration ({self.duration_s:g} s) must be longer than --ramp ({self.ramp_s:g} s)"
            )
        for name, value in (("cancel", self.cancel_fraction), ("disconnect", self.disconnect_fraction)):
            if not 0.0 <= value <= 1.0:
                raise BadRequest(f"--{name}-fraction must be within 0..1, got {value:g}")
        if self.cancel_fraction + self.disconnect_fraction > 1.0:
            raise BadRequest("--cancel-fraction plus --disconnect-fraction must not exceed 1")
        if self.jitter_ms < 0:
            raise BadRequest(f"--jitter-ms must be ≥ 0, got {self.jitter_ms:g}")

    @property
    def jitter_s(self) -> float:
        return self.jitter_ms / 1000.0

    def arrivals_s(self) -> list[float]:
        """When each user arrives, seconds after the start, sorted."""
        rng = random.Random(self.seed)
        return sorted(rng.uniform(0.0, self.ramp_s) for _ in range(self.users))

    def user_rng(self, user: int) -> random.Random:
        """The random stream of one user: its texts, fates and pauses do not depend on the others' timing."""
        return random.Random(f"csmstream-loadtest:{self.seed}:{user}")


def draw_plan(workload: Workload, rng: random.Random, user: int, number: int) -> StreamPlan:
    """The `number`-th stream of `user`: its text and what the listener does."""
    draw = rng.random()
    action = "listen"
    if draw < workload.cancel_fraction:
        action = "cancel"
    elif draw < workload.cancel_fraction + workload.disconnect_fraction:
        action = "disconnect"
    return StreamPlan(
        text=pick_text(rng),
        request_id=f"loadtest-u{user}-{number}",
        voice_id=workload.voice_id,
        action=action,
        action_after_s=rng.uniform(*ACTION_AFTER_S),
    )


def think_s(workload: Workload, rng: random.Random) -> float:
    return rng.expovariate(1.0 / workload.think_mean_s) if workload.think_mean_s > 0 else 0.0
