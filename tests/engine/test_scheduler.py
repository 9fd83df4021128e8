"""Scheduler unit tests: no model, no threads; time is passed in."""

import pytest

from csmstream.engine.request import SynthesisRequest
from csmstream.engine.scheduler import Scheduler, SchedulerConfig
from csmstream.engine.session import Phase, Session
from csmstream.errors import Busy


def make_session(now=0.0, prompt_rows=10, text="hi"):
    s = Session(request=SynthesisRequest(text=text), submitted_at_s=now)
    s.prompt_rows = prompt_rows
    return s


def admit_and_prefill(sched, now=0.0):
    """Drive admitted sessions through prefill to DECODING, as the engine would."""
    admitted = sched.admit(now)
    while True:
        plan = sched.plan(now)
        if not plan.prefills:
            break
        for chunk in plan.prefills:
            sched.on_prefilled(chunk)
    return admitted


def test_admits_into_free_slots_then_queues_with_positions_then_busy():
    sched = Scheduler(SchedulerConfig(max_slots=2, max_queue=2, realtime_admission=False))
    sessions = [make_session() for _ in range(4)]
    for s in sessions:
        sched.add(s)
    admitted = sched.admit(0.0)
    assert [s.slot for s in admitted] == [0, 1]
    assert sched.num_active == 2 and sched.num_waiting == 2
    assert [p for _, p in sched.queue_positions()] == [1, 2]
    with pytest.raises(Busy, match="busy"):
        sched.add(make_session())
    assert sched.num_waiting == 2, "a refused request must not be queued"


def test_finish_frees_the_slot_for_the_next_in_queue():
    sched = Scheduler(SchedulerConfig(max_slots=1, max_queue=4))
    a, b = make_session(), make_session()
    sched.add(a)
    sched.add(b)
    sched.admit(0.0)
    assert a.slot == 0 and b.phase is Phase.WAITING
    sched.finish(a)
    sched.finish(a)  # idempotent: the slot is not freed twice
    assert a.phase is Phase.FINISHED
    sched.admit(1.0)
    assert b.slot == 0 and b.phase is Phase.PREFILLING
    assert sched.num_active == 1 and sched.num_waiting == 0
    assert sched._free_slots == [], "slot 0 must have been handed out exactly once"


def test_prefill_is_chunked_one_chunk_per_step_while_others_decode():
    sched = Scheduler(
        SchedulerConfig(max_slots=4, max_queue=4, prefill_chunk_rows=8, realtime_admission=False)
    )
    old = make_session(prompt_rows=4)
    sched.add(old)
    admit_and_prefill(sched)
    assert old.phase is Phase.DECODING
    new = make_session(prompt_rows=20)
    sched.add(new)
    sched.admit(0.0)
    chunks = []
    for _ in range(3):
        plan = sched.plan(0.0)
        assert plan.decode == [old], "the decoding stream keeps stepping during the newcomer's prefill"
        assert len(plan.prefills) == 1, "one newcomer: one chunk per step"
        chunks.append((plan.prefills[0].start_row, plan.prefills[0].end_row))
        sched.on_prefilled(plan.prefills[0])
    assert chunks == [(0, 8), (8, 16), (16, 20)]
    assert new.phase is Phase.DECODING
    assert sched.plan(0.0).prefills == []
    assert sched.plan(0.0).decode == [old, new]


def test_prefix_rows_already_cached_are_not_prefilled_again():
    sched = Scheduler(SchedulerConfig(max_slots=1, max_queue=1, prefill_chunk_rows=100))
    s = make_session(prompt_rows=50)
    sched.add(s)
    sched.admit(0.0)
    s.prefilled_rows = 40  # the engine copied a 40-row voice prefix from the cache
    plan = sched.plan(0.0)
    assert [(c.start_row, c.end_row) for c in plan.prefills] == [(40, 50)]


def test_realtime_admission_probes_one_more_then_waits_when_the_next_would_miss_the_frame_budget():
    sched = Scheduler(SchedulerConfig(max_slots=8, max_queue=8, frame_budget_ms=80.0, budget_margin=1.0))
    sessions = [make_session() for _ in range(4)]
    for s in sessions:
        sched.add(s)
    assert admit_and_prefill(sched) == sessions[:1], "nothing measured yet: one stream, to measure"
    sched.on_step(batch_size=1, step_ms=50.0)
    # the cost of 2 streams is unknown (not 2 × 50 ms: a step is far from linear in the batch): probe it
    assert admit_and_prefill(sched) == sessions[1:2], "one batch size measured: probe one more"
    assert sched.admit(0.0) == [], "the probe must be measured before anyone else is admitted"
    sched.on_step(batch_size=2, step_ms=60.0)  # 40 + 10 ms per stream: 3 streams 70 ms, 4: 80 ms, 5: 90 ms
    assert admit_and_prefill(sched) == sessions[2:3]
    sched.on_step(batch_size=3, step_ms=70.0)
    assert admit_and_prefill(sched) == sessions[3:4], "4 streams are predicted at 80 ms: within the budget"
    sched.on_step(batch_size=4, step_ms=80.0)
    fifth = make_session()
    sched.add(fifth)
    assert sched.admit(0.0) == [], "a fifth stream would push the active streams below real time (90 ms)"
    assert sched.queue_positions() == [(fifth, 1)]
    assert sched.realtime_capacity() == 4


def test_without_realtime_admission_any_free_slot_admits():
    sched = Scheduler(SchedulerConfig(max_slots=2, max_queue=2, realtime_admission=False))
    a = make_session()
    sched.add(a)
    admit_and_prefill(sched)
    sched.on_step(1, 500.0)
    b = make_session()
    sched.add(b)
    assert sched.admit(0.0) == [b]


def test_streams_far_ahead_yield_only_when_over_budget():
    sched = Scheduler(SchedulerConfig(max_slots=2, max_queue=0, realtime_admission=False, yield_lead_ms=1000))
    ahead, behind = make_session(), make_session()
    sched.add(ahead)
    sched.add(behind)
    admit_and_prefill(sched)
    ahead.first_audio_at_s, ahead.num_frames = 0.0, 100  # 8 s generated, 1 s played → 7 s ahead
    behind.first_audio_at_s, behind.num_frames = 0.0, 10  # 0.8 s generated, 1 s played → behind
    sched.on_step(2, 40.0)  # under budget: everyone steps
    assert sched.plan(1.0).decode == [ahead, behind]
    for _ in range(10):
        sched.on_step(2, 120.0)  # the device slowed down: over budget
    assert sched.plan(1.0).decode == [behind]
    behind.num_frames = 200  # now both are far ahead: nobody needs to yield
    assert sched.plan(1.0).decode == [ahead, behind]


def test_cancelled_sessions_are_reported_and_not_planned():
    sched = Scheduler(SchedulerConfig(max_slots=1, max_queue=2))
    a, b = make_session(), make_session()
    sched.add(a)
    sched.add(b)
    admit_and_prefill(sched)
    a.cancel_requested = True
    b.cancel_requested = True
    assert set(sched.cancelled_sessions()) == {a, b}
    assert sched.plan(0.0).decode == []
    for s in sched.cancelled_sessions():
        sched.finish(s)
    assert sched.num_active == 0 and sched.num_waiting == 0


def test_short_prompts_share_one_steps_prefill_budget_in_admission_order():
    sched = Scheduler(
        SchedulerConfig(max_slots=4, max_queue=0, prefill_chunk_rows=30, realtime_admission=False)
    )
    sessions = [make_session(now=float(i), prompt_rows=rows) for i, rows in enumerate([12, 12, 12])]
    for s in sessions:
        sched.add(s)
    sched.admit(0.0)
    plan = sched.plan(0.0)
    # 30 rows of budget: two whole prompts and the first 6 rows of the third
    assert [(c.session, c.start_row, c.end_row) for c in plan.prefills] == [
        (sessions[0], 0, 12),
        (sessions[1], 0, 12),
        (sessions[2], 0, 6),
    ]
    for chunk in plan.prefills:
        sched.on_prefilled(chunk)
    assert [c.end_row for c in sched.plan(0.0).prefills] == [12]


def test_a_continuing_unit_takes_the_next_free_slot_before_new_sessions_and_is_never_busy():
    """A long text is spoken unit after unit: the next unit of a request already being heard must not wait
    behind new requests (the listener would hear a gap) nor be refused by the queue limit."""
    sched = Scheduler(SchedulerConfig(max_slots=2, max_queue=1))
    sched.on_step(1, 30.0)
    sched.on_step(2, 60.0)  # capacity: 2 streams
    first, other = make_session(), make_session()
    for s in (first, other):
        sched.add(s)
    sched.admit(0.0)
    newcomer = make_session()
    sched.add(newcomer)  # the queue (1 place) is now full
    with pytest.raises(Busy):
        sched.add(make_session())
    continuation = Session(request=SynthesisRequest(text="next unit", continues=True), submitted_at_s=1.0)
    sched.add(continuation)  # never refused, although the queue is full
    assert sched.num_waiting == 1, "a continuing unit is not counted against max_queue"
    sched.finish(first)  # the first unit ends: its slot goes to its continuation, not to the newcomer
    admitted = sched.admit(2.0)
    assert admitted == [continuation] and continuation.slot == first.slot
    assert newcomer.phase is Phase.WAITING and [s for s, _ in sched.queue_positions()] == [newcomer]


def test_slots_are_handed_out_lowest_first():
    sched = Scheduler(SchedulerConfig(max_slots=4, max_queue=4, realtime_admission=False))
    sessions = [make_session() for _ in range(3)]
    for s in sessions:
        sched.add(s)
    sched.admit(0.0)
    assert [s.slot for s in sessions] == [0, 1, 2]
    sched.finish(sessions[0])
    sched.finish(sessions[2])
    late = make_session()
    sched.add(late)
    sched.admit(1.0)
    assert late.slot == 0, "the lowest free slot keeps the static step's span small"
