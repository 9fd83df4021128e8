"""`UnitChain`: a request spoken as units one after another, each with the earlier ones as context, presented
as one handle. Against a scripted in-test engine (no model), so every path is fast and exact."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from csmstream.engine.base import EngineStats, RequestHandle, SpeechEngine
from csmstream.engine.events import AudioChunk, Finished, Queued, Started
from csmstream.engine.request import FRAME_SAMPLES, SynthesisRequest
from csmstream.engine.unit_chain import UnitChain, split_units
from csmstream.errors import Busy, CsmstreamError, TextTooLong, UnknownVoice

K = 4  # codebooks of the scripted codes


class ScriptedHandle(RequestHandle):
    """One unit: `frames` frames in chunks of 2, then Finished(`reason`); or an error after its first chunk;
    or (`endless`) chunks until cancelled. Holds one of the engine's slots until its Finished is taken."""

    def __init__(self, engine: ScriptedEngine, request: SynthesisRequest, frames: int, mode: str) -> None:
        self.request_id = request.request_id
        self.request = request
        self._engine = engine
        self._frames = frames
        self._mode = mode
        self.cancelled = asyncio.Event()
        self.unit_index = len(engine.requests) - 1

    async def events(self):
        try:
            if self._engine.queue_first and self.unit_index == 0:
                yield Queued(1)
            yield Started()
            made = 0
            while self._mode == "endless" or made < self._frames:
                if self.cancelled.is_set():
                    yield self._finished("cancelled", made)
                    return
                pcm = np.full(2 * FRAME_SAMPLES, 0.1 * (self.unit_index + 1), np.float32)
                yield AudioChunk(seq=made // 2, pcm=pcm, start_frame=made)
                made += 2
                if self._mode == "error":
                    yield Finished("error", made * 0.08, 5.0, 0.5, error=CsmstreamError("injected failure"))
                    return
                await asyncio.sleep(0)
            yield self._finished(self._mode, made)
        finally:
            self._engine.active -= 1

    def _finished(self, reason: str, frames: int) -> Finished:
        codes = None
        if self._engine.with_codes and frames:
            codes = np.full((frames, K), self.unit_index, np.int64)
        return Finished(reason, frames * 0.08, 10.0 + self.unit_index, 0.5, codes=codes)

    def cancel(self) -> None:
        self.cancelled.set()


class ScriptedEngine(SpeechEngine):
    """`modes[i]` is how unit i ends: eos | length | error | endless | refuse (submit raises Busy)."""

    name = "scripted"
    model_name = "scripted"
    sample_rate = 24_000

    def __init__(self, modes=(), frames: int = 4, with_codes: bool = True, queue_first: bool = False) -> None:
        self.modes = list(modes)
        self.frames = frames
        self.with_codes = with_codes
        self.queue_first = queue_first
        self.requests: list[SynthesisRequest] = []
        self.handles: list[ScriptedHandle] = []
        self.active = 0  # units holding a slot

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def submit(self, request: SynthesisRequest) -> RequestHandle:
        index = len(self.requests)
        mode = self.modes[index] if index < len(self.modes) else "eos"
        if mode == "refuse":
            raise Busy("no room for this unit")
        self.requests.append(request)
        handle = ScriptedHandle(self, request, self.frames, mode)
        self.handles.append(handle)
        self.active += 1
        return handle

    def stats(self) -> EngineStats:
        return EngineStats(self.active, 0, 1, 1, None)


def chain_of(engine: ScriptedEngine, units: list[str], **request_kw) -> UnitChain:
    chain = UnitChain(engine, SynthesisRequest(text="", speaker=2, **request_kw))
    for unit in units:
        chain.add(unit)
    chain.close()
    return chain


async def collect(handle) -> list:
    return [event async for event in handle.events()]


def only_finished(events) -> Finished:
    assert sum(isinstance(e, Finished) for e in events) == 1, "exactly one Finished"
    assert isinstance(events[-1], Finished), "Finished comes last"
    return events[-1]


UNITS = ["The first unit is spoken.", "The second unit follows it.", "And the third one ends it."]


def test_units_run_in_order_with_earlier_units_as_context_and_continuing_numbering():
    engine = ScriptedEngine(frames=4, queue_first=True)
    earlier_turn = object()  # the template's own context (a conversation turn) stays in front

    async def main():
        return await collect(chain_of(engine, UNITS, context=(earlier_turn,)))

    events = asyncio.run(main())
    assert [r.text for r in engine.requests] == UNITS, "every unit, in order"
    assert [type(e) for e in events[:2]] == [Queued, Started], "the first unit's status, once"
    assert (
        sum(isinstance(e, Started) for e in events) == 1 and sum(isinstance(e, Queued) for e in events) == 1
    )
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    assert [c.seq for c in chunks] == list(range(6)), "seq continues across units"
    assert [c.start_frame for c in chunks] == [0, 2, 4, 6, 8, 10], "start_frame continues across units"
    done = only_finished(events)
    assert done.finish_reason == "eos" and done.error is None
    assert done.audio_seconds == pytest.approx(3 * 4 * 0.08)
    assert done.ttfa_ms == pytest.approx(10.0), "the first unit's time to first audio"
    assert done.rtf == pytest.approx(0.5)
    np.testing.assert_array_equal(done.codes[:, 0], [0] * 4 + [1] * 4 + [2] * 4)
    # the context of each unit: the template's, then the earlier units (their text and codes, as speaker 2)
    contexts = [r.context for r in engine.requests]
    assert contexts[0] == (earlier_turn,)
    for index, context in enumerate(contexts[1:], start=1):
        assert context[0] is earlier_turn and len(context) == 1 + index
        for unit_index, segment in enumerate(context[1:]):
            assert (segment.speaker, segment.text) == (2, UNITS[unit_index])
            assert segment.codes.shape == (4, K) and int(segment.codes[0, 0]) == unit_index
    assert len({r.request_id for r in engine.requests}) == 3, "each unit is its own engine request"


def test_only_the_last_units_are_context():
    engine = ScriptedEngine()
    units = [f"Unit number {i} says something." for i in range(6)]

    async def main():
        return await collect(chain_of(engine, units))

    asyncio.run(main())
    assert [s.text for s in engine.requests[5].context] == units[2:5], "the three units before it"


def test_cancel_mid_chain_stops_the_running_unit_drops_the_rest_and_frees_the_slot():
    engine = ScriptedEngine(modes=["eos", "endless", "eos"])

    async def main():
        chain = chain_of(engine, UNITS)
        events = []
        async for event in chain.events():
            events.append(event)
            if isinstance(event, AudioChunk) and len(engine.requests) == 2:
                chain.cancel()
                chain.cancel()  # idempotent
        return events

    events = asyncio.run(main())
    done = only_finished(events)
    assert done.finish_reason == "cancelled"
    assert len(engine.requests) == 2, "the unit after the cancelled one never ran"
    assert engine.handles[1].cancelled.is_set(), "the running unit was cancelled"
    assert engine.active == 0, "no slot is held after the chain's Finished"


def test_cancel_of_a_consumer_that_leaves_early_frees_the_slot():
    engine = ScriptedEngine(modes=["endless"])

    async def main():
        chain = chain_of(engine, UNITS)
        events = chain.events()
        async for event in events:
            if isinstance(event, AudioChunk):
                break
        await events.aclose()  # the consumer went away (an HTTP client hung up)
        chain.cancel()
        await asyncio.sleep(0)

    asyncio.run(main())
    assert engine.handles[0].cancelled.is_set()


def test_an_error_in_unit_two_ends_the_request_with_one_error():
    engine = ScriptedEngine(modes=["eos", "error", "eos"])

    async def main():
        return await collect(chain_of(engine, UNITS))

    events = asyncio.run(main())
    done = only_finished(events)
    assert done.finish_reason == "error" and "injected failure" in str(done.error)
    assert len(engine.requests) == 2, "no unit runs after the failed one"
    assert done.audio_seconds == pytest.approx((4 + 2) * 0.08), "the audio made before the failure"
    assert engine.active == 0


def test_a_refused_later_unit_ends_the_request_with_its_error():
    engine = ScriptedEngine(modes=["eos", "refuse"])

    async def main():
        return await collect(chain_of(engine, UNITS))

    done = only_finished(asyncio.run(main()))
    assert done.finish_reason == "error" and isinstance(done.error, Busy)


def test_start_submits_the_first_unit_so_refusals_raise_before_any_event():
    engine = ScriptedEngine(modes=["refuse"])

    async def main():
        with pytest.raises(Busy):
            chain_of(engine, UNITS).start()
        chain = chain_of(ScriptedEngine(), UNITS).start()
        return chain

    chain = asyncio.run(main())
    assert chain._num_units == 1, "the first unit is submitted by start()"


def test_a_unit_cut_by_its_length_bound_does_not_stop_the_rest_but_is_reported():
    engine = ScriptedEngine(modes=["eos", "length", "eos"])

    async def main():
        return await collect(chain_of(engine, UNITS))

    done = only_finished(asyncio.run(main()))
    assert len(engine.requests) == 3, "a runaway unit is cut, the text goes on"
    assert done.finish_reason == "length"


def test_max_seconds_bounds_the_whole_request_across_units():
    # each unit makes 4 frames (0.32 s); 0.7 s in all: the first unit gets 0.7, the second what is left
    engine = ScriptedEngine(modes=["eos", "length"], frames=4)

    async def main():
        return await collect(chain_of(engine, UNITS, max_seconds=0.7))

    done = only_finished(asyncio.run(main()))
    assert [r.max_seconds for r in engine.requests][0] == pytest.approx(0.7)
    assert engine.requests[1].max_seconds == pytest.approx(0.7 - 0.32)
    assert done.finish_reason == "length"


def test_no_unit_runs_once_max_seconds_is_spent():
    engine = ScriptedEngine(frames=4)

    async def main():
        return await collect(chain_of(engine, UNITS, max_seconds=0.32))

    done = only_finished(asyncio.run(main()))
    assert len(engine.requests) == 1 and done.finish_reason == "length"
    assert done.audio_seconds == pytest.approx(0.32)


def test_units_without_codes_are_spoken_without_context():
    engine = ScriptedEngine(with_codes=False)  # piper: audio, no codes

    async def main():
        return await collect(chain_of(engine, UNITS))

    done = only_finished(asyncio.run(main()))
    assert done.finish_reason == "eos" and done.codes is None
    assert all(r.context == () for r in engine.requests)


def test_units_added_later_and_a_cancel_while_waiting_for_text():
    engine = ScriptedEngine()

    async def main():
        chain = UnitChain(engine, SynthesisRequest(text=""))
        consumer = asyncio.create_task(collect(chain))
        await asyncio.sleep(0.01)
        assert not consumer.done(), "an open chain waits for its units"
        chain.add(UNITS[0])
        for _ in range(100):
            await asyncio.sleep(0)
        assert len(engine.requests) == 1
        chain.cancel()  # waiting for the next unit
        events = await asyncio.wait_for(consumer, 5)
        chain.add(UNITS[1])  # ignored: the chain has ended
        return events

    done = only_finished(asyncio.run(main()))
    assert done.finish_reason == "cancelled" and done.audio_seconds == pytest.approx(4 * 0.08)
    assert len(engine.requests) == 1


def test_a_chain_closed_without_units_finishes_empty():
    async def main():
        chain = UnitChain(ScriptedEngine(), SynthesisRequest(text=""))
        chain.close()
        return await collect(chain)

    done = only_finished(asyncio.run(main()))
    assert (done.finish_reason, done.audio_seconds, done.ttfa_ms) == ("eos", 0.0, None)


def test_split_units_refuses_too_long_text_and_keeps_every_word():
    text = " ".join(f"Sentence {i} is a perfectly ordinary sentence of words." for i in range(30))
    units = split_units(text, max_chars=120)
    assert len(units) == 30 and " ".join(units).split() == text.split()
    with pytest.raises(TextTooLong):
        split_units(text, max_text_chars=100)


def test_refusal_types_pass_through_start():
    class Unknown(ScriptedEngine):
        def submit(self, request):
            raise UnknownVoice("no such voice")

    async def main():
        with pytest.raises(UnknownVoice):
            chain_of(Unknown(), UNITS).start()

    asyncio.run(main())


# ---- on the real CSM engine (tiny random checkpoint) --------------------------------------------------------


def run_csm(tiny_checkpoint_dir, body, **engine_kw):
    from csmstream.engine.csm_engine import CsmEngine
    from csmstream.model.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(str(tiny_checkpoint_dir), device="cpu", dtype="float32")
    engine = CsmEngine(checkpoint, None, max_slots=2, realtime_admission=False, **engine_kw)
    submitted: list[SynthesisRequest] = []
    real_submit = engine.submit

    def spy(request):
        submitted.append(request)
        return real_submit(request)

    engine.submit = spy

    async def main():
        await engine.start()
        try:
            return await body(engine)
        finally:
            await engine.stop()

    return asyncio.run(main()), submitted


def test_on_csm_each_unit_gets_the_earlier_units_text_and_codes_as_context(tiny_checkpoint_dir):
    from csmstream.model.sampling import SamplingParams

    async def body(engine):
        chain = chain_of(engine, UNITS, sampling=SamplingParams(seed=3))
        return await collect(chain.start())

    # the operator's per-unit cap keeps each unit at 5 frames (random weights never end by themselves)
    events, submitted = run_csm(tiny_checkpoint_dir, body, default_max_seconds=0.4)
    done = only_finished(events)
    assert [r.text for r in submitted] == UNITS
    assert done.finish_reason == "length" and done.audio_seconds == pytest.approx(3 * 5 * 0.08)
    assert done.codes.shape == (15, 32)
    for index, request in enumerate(submitted):
        assert [s.text for s in request.context] == UNITS[:index]
        for unit_index, segment in enumerate(request.context):
            assert segment.speaker == 2
            np.testing.assert_array_equal(
                segment.codes.numpy(), done.codes[5 * unit_index : 5 * unit_index + 5]
            )


def test_on_csm_a_cancel_mid_chain_frees_the_slot(tiny_checkpoint_dir):
    async def body(engine):
        chain = chain_of(engine, UNITS)
        events = []
        async for event in chain.start().events():
            events.append(event)
            if isinstance(event, AudioChunk) and event.start_frame >= 5:  # the second unit's audio
                chain.cancel()
        for _ in range(200):
            if engine.stats().active_sessions == 0 and engine.stats().queued == 0:
                break
            await asyncio.sleep(0.01)
        return events, engine.stats()

    # the first unit is cut at 0.4 s by the operator's cap; the cancel comes during the second one
    (events, stats), submitted = run_csm(tiny_checkpoint_dir, body, default_max_seconds=0.4)
    assert only_finished(events).finish_reason == "cancelled"
    assert len(submitted) == 2, "the third unit never ran"
    assert (stats.active_sessions, stats.queued) == (0, 0), "the slot is free again"
