"""The scheduler decides; the runner executes. Plain Python: no tensors, no threads, testable alone.

Each engine iteration asks it, in order:
  1. `admit(now)`    → sessions moved from the queue into free slots (the engine builds their prompts);
  2. `plan(now)`     → prefill chunks of at most `prefill_chunk_rows` rows in all (so newcomers stall the
                       others by about one step), and the slots that make a frame in this step;
  3. `on_side_work(ms)` → time spent besides the step (encoding audio at admission, prefill chunks);
     `on_step(...)`      → the measured step time. Both drive admission and real-time ordering.
`finish(session)` is the one place where a slot is freed.

The frame budget: every decoding stream needs one frame (80 ms of audio) per 80 ms of wall time, and one
engine iteration = side work + one batched step. So an iteration of B streams must fit `frame_budget_ms`,
predicted as `StepCostModel.predict_ms(B)` (an affine curve fitted from measured steps) + the recent mean side
work per iteration.

Admission: the first stream is always admitted. After it, the scheduler holds at most the real-time capacity:
the largest batch whose predicted iteration fits `budget_margin` × the frame budget, counting at most one
stream past the largest batch measured (the probe: admit one more, measure it, decide again). While any
stream is behind real time by more than `behind_lead_ms`, nobody more is admitted, whatever the model says.

The queue: a session the next `admit` takes (a free slot, and capacity for it) is not waiting; the rest are,
and there are never more than `max_queue` of them: `add` refuses with `Busy` instead. Once told it can start,
a session is admitted at the next `admit` even if a measurement in between lowered the capacity (a promise),
so a new measurement never pushes the queue past `max_queue`. `max_queue=0`: refuse what cannot start now.

Real-time ordering: when the predicted iteration is over budget, streams far ahead of their listener's
playback sit out steps so that streams behind catch up. With spare capacity every stream runs every step.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from csmstream.engine.cost_model import AffineCost, StepCostModel
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
    budget_margin: float = 0.9  # admit while the predicted iteration stays under this fraction of the budget
    yield_lead_ms: float = 2000.0  # a stream this far ahead of playback yields when the step is over budget
    behind_lead_ms: float = 3 * FRAME_MS  # a stream whose listener lacks this much audio is behind real time
    side_work_alpha: float = 0.1  # weight of one iteration in the mean side work (a window of ~10 iterations)


class Scheduler:
    def __init__(self, config: SchedulerConfig):
        assert config.max_slots >= 1, "need at least one slot"
        self.config = config
        self._waiting: deque[Session] = deque()
        self._running: dict[int, Session] = {}  # slot → session (PREFILLING or DECODING)
        self._free_slots: list[int] = list(range(config.max_slots - 1, -1, -1))  # pop() gives slot 0 first
        # later units of requests already being heard: they take free slots first, whatever the capacity
        # (each replaces its own predecessor's stream) and the queue limit
        self._continuing: deque[Session] = deque()
        # the first `_promised` sessions of `_waiting` were told they can start: the next `admit` takes them
        self._promised = 0
        self._cost = StepCostModel()
        self._side_ms_pending = 0.0  # side work reported since the last step
        self._side_ms_avg = 0.0  # mean side work per iteration (iterations without any side work count as 0)
        self._num_behind = 0  # streams behind real time at the last `admit` / `plan`

    # ---- queries -------------------------------------------------------------------------------------
    @property
    def num_active(self) -> int:
        return len(self._running)

    @property
    def num_waiting(self) -> int:
        """Sessions that must wait for a slot or for capacity: never more than `max_queue`. (Sessions the next
        `admit` takes are queued but not waiting.)"""
        return len(self._waiting) - self._startable_now()

    @property
    def running(self) -> list[Session]:
        return list(self._running.values())

    @property
    def waiting(self) -> list[Session]:
        """Every session not admitted yet, those the next `admit` takes and continuing units included."""
        return list(self._continuing) + list(self._waiting)

    @property
    def cost_model(self) -> StepCostModel:
        return self._cost

    def step_ms_estimate(self, batch_size: int) -> float | None:
        """Predicted time of one batched step of `batch_size` streams (the fitted curve); None before any
        measurement."""
        return self._cost.predict_ms(batch_size)

    def step_cost(self) -> AffineCost | None:
        """The fitted step cost `fixed_ms + per_stream_ms · B`; None before any measurement."""
        return self._cost.fit()

    def mean_step_ms(self) -> float | None:
        """Recent mean time of one batched step, at the batch size measured last."""
        return self._cost.recent_step_ms()

    def side_work_ms(self) -> float:
        """Mean time per iteration spent besides the step (encoding audio at admission, prefill chunks)."""
        return self._side_ms_avg

    def iteration_ms_estimate(self, batch_size: int) -> float | None:
        """Predicted wall time of one iteration with `batch_size` decoding streams: step + side work."""
        step_ms = self._cost.predict_ms(batch_size)
        return None if step_ms is None else step_ms + self._side_ms_avg

    def realtime_capacity(self) -> int | None:
        """How many streams can stay real time: the largest batch whose predicted iteration fits the frame
        budget × margin, at most `max_slots` and at most one past the largest batch measured (the probe).
        0: not even one stream fits. None: nothing measured yet."""
        budget_ms = self.config.frame_budget_ms * self.config.budget_margin - self._side_ms_avg
        return self._cost.capacity(budget_ms, self.config.max_slots)

    def streams_behind(self, now_s: float) -> int:
        """Decoding streams whose listener has waited, in all, more than `behind_lead_ms` for audio
        (`lead_ms` below minus that). A stream before its first audio is not counted: that wait is its
        time to first audio, not a stall."""
        return sum(
            1
            for s in self._running.values()
            if s.phase is Phase.DECODING
            and s.first_audio_at_s is not None
            and s.lead_ms(now_s) < -self.config.behind_lead_ms
        )

    # ---- decisions -----------------------------------------------------------------------------------
    def add(self, session: Session) -> None:
        """Queue a new session: the next `admit` takes it when it can start now (a free slot, and capacity
        for it), else it waits. Raises `Busy` when it would be one more than `max_queue` waiting. A continuing
        unit (`request.continues`) is never refused: it goes before every new session."""
        if session.request.continues:
            self._continuing.append(session)
            return
        self._waiting.append(session)
        startable = self._startable_now()
        if len(self._waiting) - startable > self.config.max_queue:
            self._waiting.pop()
            raise Busy(
                f"server busy: {self.num_active} active sessions and {self.num_waiting} waiting "
                f"(max queue {self.config.max_queue}); retry later"
            )
        # whoever can start now is promised a slot: a later measurement cannot turn it back into a waiter
        self._promised = startable

    def admit(self, now_s: float) -> list[Session]:
        """Move queued sessions into free slots while capacity allows (the engine finishes cancelled sessions
        before it calls this, so none is admitted)."""
        self._num_behind = self.streams_behind(now_s)
        admitted = []
        while self._continuing and self._free_slots:
            admitted.append(self._take_slot(self._continuing.popleft(), now_s))
        for _ in range(self._startable_now()):
            admitted.append(self._take_slot(self._waiting.popleft(), now_s))
        self._promised = 0
        return admitted

    def queue_positions(self) -> list[tuple[Session, int]]:
        """Waiting sessions and their places in the queue (1 = next)."""
        startable = self._startable_now()
        return [(s, i + 1) for i, s in enumerate(list(self._waiting)[startable:])]

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
        # 2) every decoding stream makes a frame, unless the iteration is over budget: then streams far ahead
        #    yield
        self._num_behind = self.streams_behind(now_s)
        decoding = [s for s in self._running.values() if s.phase is Phase.DECODING and not s.cancel_requested]
        estimate = self.iteration_ms_estimate(len(decoding)) if decoding else None
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

    def on_side_work(self, side_ms: float) -> None:
        """Time the engine thread spent besides the step (encoding audio at admission, a prefill chunk). It
        delays every decoding stream's next frame just as the step does, so it counts against the frame
        budget; while no stream decodes it delays nobody's playback and is not counted."""
        assert side_ms >= 0.0, f"side work takes a time >= 0, got {side_ms}"
        if any(s.phase is Phase.DECODING for s in self._running.values()):
            self._side_ms_pending += side_ms

    def on_step(self, batch_size: int, step_ms: float) -> None:
        """One measured batched step; it closes an iteration, so the side work reported since the previous
        step is that iteration's. (A warm-up's measurements come here too: they seed the cost curve.)"""
        self._cost.observe(batch_size, step_ms)
        alpha = self.config.side_work_alpha
        self._side_ms_avg += alpha * (self._side_ms_pending - self._side_ms_avg)
        self._side_ms_pending = 0.0

    def on_iteration(self, batch_size: int, step_ms: float, side_ms: float) -> None:
        """`on_side_work(side_ms)` then `on_step(batch_size, step_ms)`: one whole iteration at once."""
        self.on_side_work(side_ms)
        self.on_step(batch_size, step_ms)

    def cancelled_sessions(self) -> list[Session]:
        """Running or waiting sessions whose cancel was requested: the engine finishes them this iteration."""
        return [s for s in list(self._running.values()) + self.waiting if s.cancel_requested]

    def finish(self, session: Session) -> None:
        """The one place a slot is freed. Idempotent."""
        if session.slot is not None and self._running.get(session.slot) is session:
            del self._running[session.slot]
            self._free_slots.append(session.slot)
        if session in self._waiting:
            if list(self._waiting).index(session) < self._promised:
                self._promised -= 1  # its promised slot is free again, for whoever can start now
            self._waiting.remove(session)
        if session in self._continuing:
            self._continuing.remove(session)
        session.phase = Phase.FINISHED

    # ---- internals -----------------------------------------------------------------------------------
    def _take_slot(self, session: Session, now_s: float) -> Session:
        # the lowest free slot: a static step spans slots [0, P), so compact slots keep P (and its work) small
        session.slot = min(self._free_slots)
        self._free_slots.remove(session.slot)
        session.phase = Phase.PREFILLING
        session.started_at_s = now_s
        self._running[session.slot] = session
        return session

    def _running_limit(self) -> int:
        """How many sessions may hold a slot now, as far as real time is concerned (admission takes one more
        while the sessions holding a slot are fewer)."""
        if not self.config.realtime_admission:
            return self.config.max_slots
        if self._num_behind > 0:
            return len(self._running)  # what is measured beats what is predicted: a listener is waiting
        capacity = self.realtime_capacity()
        if capacity is None:
            return 1  # nothing measured yet: one stream, whose steps are the first measurements
        return max(1, capacity)  # the first stream is always served, even when it cannot be real time

    def _startable_now(self) -> int:
        """How many sessions at the head of the queue the next `admit` takes: the promised ones, or more when
        free slots and capacity allow. Continuing units go first: the slots they will take are not free for
        these (a promise can be broken by one: that session then waits, first in the queue)."""
        continuing = len(self._continuing)
        free = max(0, len(self._free_slots) - continuing)
        headroom = max(0, self._running_limit() - len(self._running) - continuing)
        return min(len(self._waiting), free, max(self._promised, min(free, headroom)))
