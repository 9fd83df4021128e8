"""The scheduler decides; the runner executes. Plain Python: no tensors, no threads, testable alone.

Each engine iteration asks it, in order:
  1. `admit(now)`    → sessions moved from the queue into free slots (the engine builds their prompts);
  2. `plan(now)`     → prefill chunks of at most `prefill_chunk_rows` rows in all (so newcomers stall the
                       others by about one step), and the slots that make a frame in this step;
  3. `on_step(...)`  → the measured step time, which drives admission and real-time ordering.
`finish(session)` is the one place where a slot is freed.

Admission: a request waits in a bounded queue (its position is reported) when no slot is free, or when the
measured step time says one more stream would push the active streams below real time (the 80 ms frame
budget). A full queue refuses at once with `Busy`.

Real-time ordering: when the step is over budget, streams far ahead of their listener's playback sit out
steps so that streams behind catch up. With spare capacity every stream runs every step.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from csmstream.engine.request import FRAME_MS
from csmstream.engine.session import Phase, Session
from csmstream.errors import Busy


@dataclass(frozen=True)
class PrefillChunk:
    session: Session
    start_row: int
    end_row: int  # exclusive

    @property
    def is_last(self) -> bool:
        return self.end_row >= self.session.prompt_rows


@dataclass
class StepPlan:
    prefills: list[PrefillChunk] = field(default_factory=list)
    decode: list[Session] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.prefills and not self.decode


@dataclass
class SchedulerConfig:
    max_slots: int
    max_queue: int
    prefill_chunk_rows: int = 256
    frame_budget_ms: float = FRAME_MS
    realtime_admission: bool = True  # False: admit whenever a slot is free (benchmarks of raw throughput)
    budget_margin: float = 0.9  # keep predicted step time under this fraction of the frame budget
    yield_lead_ms: float = 2000.0  # a stream this far ahead of playback yields when the step is over budget


class Scheduler:
    def __init__(self, config: SchedulerConfig):
        assert config.max_slots >= 1, "need at least one slot"
        self.config = config
        self._waiting: deque[Session] = deque()
        self._running: dict[int, Session] = {}  # slot → session (PREFILLING or DECODING)
        self._free_slots: list[int] = list(range(config.max_slots - 1, -1, -1))  # pop() gives slot 0 first
        self._step_ms_by_batch: dict[int, float] = {}  # exponential mean of measured step time per batch size

    # ---- queries -------------------------------------------------------------------------------------
    @property
    def num_active(self) -> int:
        return len(self._running)

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> list[Session]:
        return list(self._running.values())

    @property
    def waiting(self) -> list[Session]:
        return list(self._waiting)

    def step_ms_estimate(self, batch_size: int) -> float | None:
        """Measured mean step time at this batch size, else extrapolated from the nearest smaller one
        (assuming cost grows at most linearly with the batch), else None (nothing measured yet)."""
        if batch_size in self._step_ms_by_batch:
            return self._step_ms_by_batch[batch_size]
        smaller = [b for b in self._step_ms_by_batch if b < batch_size]
        if not smaller:
            return None
        b = max(smaller)
        return self._step_ms_by_batch[b] * batch_size / b

    def mean_step_ms(self) -> float | None:
        if not self._step_ms_by_batch:
            return None
        return self._step_ms_by_batch.get(self.num_active) or max(self._step_ms_by_batch.values())

    # ---- decisions -----------------------------------------------------------------------------------
    def add(self, session: Session) -> None:
        """Queue a new session; the next `admit` gives it a slot if one is free. Raises `Busy` when it could
        neither get a free slot nor a place in the queue."""
        if len(self._waiting) >= self.config.max_queue + len(self._free_slots):
            raise Busy(
                f"server busy: {self.num_active} active sessions and {len(self._waiting)} queued "
                f"(max queue {self.config.max_queue}); retry later"
            )
        self._waiting.append(session)

    def admit(self, now_s: float) -> list[Session]:
        """Move queued sessions into free slots while capacity allows (the engine finishes cancelled sessions
        before it calls this, so none is admitted)."""
        admitted = []
        while self._waiting and self._free_slots and self._capacity_allows_one_more():
            head = self._waiting.popleft()
            head.slot = self._free_slots.pop()
            head.phase = Phase.PREFILLING
            head.started_at_s = now_s
            self._running[head.slot] = head
            admitted.append(head)
        return admitted

    def queue_positions(self) -> list[tuple[Session, int]]:
        return [(s, i + 1) for i, s in enumerate(self._waiting)]

    def plan(self, now_s: float) -> StepPlan:
        plan = StepPlan()
        # 1) prefill chunks, oldest admitted first, within a budget of rows per step (several short prompts
        #    share one step's budget; a long one is cut into chunks over several steps)
        prefilling = [
            s for s in self._running.values() if s.phase is Phase.PREFILLING and not s.cancel_requested
        ]
        budget = self.config.prefill_chunk_rows
        for s in sorted(prefilling, key=lambda x: (x.started_at_s or 0.0, x.submitted_at_s)):
            if budget <= 0:
                break
            end = min(s.prompt_rows, s.prefilled_rows + budget)
            if s.prefilled_rows < s.prefix_rows:
                end = min(end, s.prefix_rows)  # stop at the voice prefix so its KV state can be cached
            plan.prefills.append(PrefillChunk(s, s.prefilled_rows, end))
            budget -= end - s.prefilled_rows
        # 2) every decoding stream makes a frame, unless the step is over budget: then streams far ahead yield
        decoding = [s for s in self._running.values() if s.phase is Phase.DECODING and not s.cancel_requested]
        estimate = self.step_ms_estimate(len(decoding))
        over_budget = estimate is not None and estimate > self.config.frame_budget_ms
        if over_budget and any(s.lead_ms(now_s) < self.config.yield_lead_ms for s in decoding):
            behind_first = sorted(decoding, key=lambda s: s.lead_ms(now_s))
            decoding = [s for s in behind_first if s.lead_ms(now_s) < self.config.yield_lead_ms]
        plan.decode = sorted(decoding, key=lambda s: s.slot)
        return plan

    def on_prefilled(self, chunk: PrefillChunk) -> None:
        session = chunk.session
        session.prefilled_rows = chunk.end_row
        if chunk.is_last:
            session.phase = Phase.DECODING

    def on_step(self, batch_size: int, step_ms: float) -> None:
        old = self._step_ms_by_batch.get(batch_size)
        self._step_ms_by_batch[batch_size] = step_ms if old is None else 0.8 * old + 0.2 * step_ms

    def cancelled_sessions(self) -> list[Session]:
        """Running or waiting sessions whose cancel was requested: the engine finishes them this iteration."""
        return [s for s in list(self._running.values()) + list(self._waiting) if s.cancel_requested]

    def finish(self, session: Session) -> None:
        """The one place a slot is freed. Idempotent."""
        if session.slot is not None and self._running.get(session.slot) is session:
            del self._running[session.slot]
            self._free_slots.append(session.slot)
        if session in self._waiting:
            self._waiting.remove(session)
        session.phase = Phase.FINISHED

    # ---- internals -----------------------------------------------------------------------------------
    def _capacity_allows_one_more(self) -> bool:
        if not self.config.realtime_admission or not self._running:
            return True
        estimate = self.step_ms_estimate(len(self._running) + 1)
        if estimate is None:
            return True
        return estimate <= self.config.frame_budget_ms * self.config.budget_margin
