"""The continuous-batching CSM engine on a tiny random checkpoint: batching, streaming, cancel, faults."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
from engine_helpers import run_with_engine

from csmstream.engine.csm_engine import CsmEngine
from csmstream.engine.events import AudioChunk, Finished, Queued, Started
from csmstream.engine.request import FRAME_SAMPLES, SynthesisRequest
from csmstream.errors import BadRequest, Busy, TextTooLong, UnknownVoice
from csmstream.model.checkpoint import load_checkpoint
from csmstream.model.sampling import SamplingParams
from csmstream.voices.library import VoiceLibrary


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint_dir):
    return load_checkpoint(str(tiny_checkpoint_dir), device="cpu", dtype="float32")


@pytest.fixture()
def voices(tmp_path):
    return VoiceLibrary(tmp_path / "voices")


def make_engine(checkpoint, voices, **kw) -> CsmEngine:
    kw.setdefault("max_slots", 4)
    kw.setdefault("max_queue", 8)
    kw.setdefault("realtime_admission", False)
    return CsmEngine(checkpoint, voices, **kw)


async def collect(handle):
    events = []
    async for event in handle.events():
        events.append(event)
    return events


def request(text="Hello there, how are you?", seed=1, frames=12, **kw) -> SynthesisRequest:
    return SynthesisRequest(
        text=text,
        sampling=SamplingParams(seed=seed, temperature=0.9, topk=50),
        max_seconds=frames * 0.08,
        **kw,
    )


def finished(events) -> Finished:
    assert isinstance(events[-1], Finished), f"the last event must be Finished, got {events[-1]!r}"
    assert sum(isinstance(e, Finished) for e in events) == 1, "exactly one Finished"
    return events[-1]


def test_batched_requests_give_the_same_codes_as_each_run_alone(checkpoint, voices):
    texts = [
        "Hello there.",
        "A much longer sentence to make a longer prompt, really.",
        "Hi!",
        "Numbers 1 2 3.",
    ]

    async def alone(engine):
        results = []
        for i, text in enumerate(texts):
            results.append(finished(await collect(engine.submit(request(text, seed=10 + i)))))
        return results

    async def together(engine):
        handles = [engine.submit(request(text, seed=10 + i)) for i, text in enumerate(texts)]
        return [finished(e) for e in await asyncio.gather(*(collect(h) for h in handles))]

    solo = run_with_engine(make_engine(checkpoint, voices), alone)
    batched = run_with_engine(make_engine(checkpoint, voices), together)
    for a, b in zip(solo, batched, strict=True):
        assert a.finish_reason == b.finish_reason == "length"
        assert a.codes is not None and a.codes.shape == (12, checkpoint.config.num_codebooks)
        np.testing.assert_array_equal(a.codes, b.codes)
    assert not np.array_equal(solo[0].codes, solo[1].codes), "different requests must not share codes"


def test_streamed_chunks_follow_the_schedule_and_equal_the_whole_decode(checkpoint, voices):
    async def body(engine):
        return await collect(
            engine.submit(request(frames=20, chunk_schedule_frames=(2, 4, 8), adaptive_chunks=False))
        )

    events = run_with_engine(make_engine(checkpoint, voices), body)
    assert isinstance(events[0], Started)
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert [c.pcm.size // FRAME_SAMPLES for c in chunks] == [2, 4, 8, 6]  # 20 frames: 2+4+8, then the tail
    done = finished(events)
    assert done.audio_seconds == pytest.approx(20 * 0.08)
    assert done.ttfa_ms is not None and done.ttfa_ms > 0 and done.rtf is not None
    streamed = np.concatenate([c.pcm for c in chunks])
    with torch.inference_mode():
        whole = checkpoint.codec.decode(torch.from_numpy(done.codes.T[None].copy()))[0, 0].numpy()
    rms = float(np.sqrt(np.mean(whole**2)))
    assert rms > 0, "random codes must decode to non-silent audio"
    assert np.max(np.abs(streamed - whole)) <= 1e-4 * rms


def test_cancel_frees_the_slot_and_finishes_cancelled(checkpoint, voices):
    async def body(engine):
        handle = engine.submit(request(frames=2000))
        events = []
        async for event in handle.events():
            events.append(event)
            if isinstance(event, AudioChunk):
                handle.cancel()
        for _ in range(100):
            if engine.stats().active_sessions == 0:
                break
            await asyncio.sleep(0.01)
        return events, engine.stats()

    events, stats = run_with_engine(make_engine(checkpoint, voices), body)
    assert finished(events).finish_reason == "cancelled"
    assert stats.active_sessions == 0 and stats.queued == 0


def test_queue_positions_then_busy_when_the_queue_is_full(checkpoint, voices):
    async def body(engine):
        first = engine.submit(request(frames=40))
        second = engine.submit(request(frames=4))
        with pytest.raises(Busy):
            engine.submit(request(frames=4))
        first_events, second_events = await asyncio.gather(collect(first), collect(second))
        return first_events, second_events, engine.stats()

    engine = make_engine(checkpoint, voices, max_slots=1, max_queue=1)
    first_events, second_events, stats = run_with_engine(engine, body)
    assert finished(first_events).finish_reason == "length"
    assert any(isinstance(e, Queued) and e.position == 1 for e in second_events), second_events[:3]
    assert finished(second_events).finish_reason == "length"
    assert stats.active_sessions == 0 and stats.queued == 0


def test_a_fault_in_one_request_ends_only_that_request(checkpoint, voices):
    engine = make_engine(checkpoint, voices)
    real_step = engine.runner.step
    doomed_slots = set()

    def failing_step(slots, positions, frame_indices):
        # the device step fails whenever the doomed request is in the batch, after its third frame
        for slot, frame_index in zip(slots, frame_indices, strict=True):
            if slot in doomed_slots and frame_index >= 3:
                raise RuntimeError("injected fault")
        return real_step(slots, positions, frame_indices)

    engine.runner.step = failing_step

    async def body(engine):
        handles = [engine.submit(request("BOOM goes this one", frames=30)), engine.submit(request(frames=10))]
        while engine.scheduler.num_active < 1:
            await asyncio.sleep(0.001)
        doomed_slots.add(0)  # the first request admitted takes slot 0
        return await asyncio.gather(*(collect(h) for h in handles)), engine.stats()

    (bad, good), stats = run_with_engine(engine, body)
    assert finished(bad).finish_reason == "error" and "injected fault" in str(finished(bad).error)
    assert finished(good).finish_reason == "length"
    assert finished(good).audio_seconds == pytest.approx(10 * 0.08)
    assert stats.active_sessions == 0


def test_bad_requests_are_refused_up_front(checkpoint, voices):
    async def body(engine):
        with pytest.raises(BadRequest, match="empty"):
            engine.submit(SynthesisRequest(text="   "))
        with pytest.raises(TextTooLong):
            engine.submit(SynthesisRequest(text="x" * 5000))
        with pytest.raises(UnknownVoice):
            engine.submit(SynthesisRequest(text="hi", voice_id="nobody"))
        return engine.stats()

    stats = run_with_engine(make_engine(checkpoint, voices, max_text_chars=1000), body)
    assert stats.active_sessions == 0 and stats.queued == 0


def test_voice_prefix_cache_is_reused_and_gives_the_same_codes(checkpoint, tmp_path):
    voices = VoiceLibrary(tmp_path / "v")
    t = np.arange(24000 * 2) / 24000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    voices.create("alice", "Alice", 1, [(audio, 24000, "This is how I sound.")])

    async def body(engine):
        first = finished(await collect(engine.submit(request(voice_id="alice", seed=5))))
        misses_after_first = engine.prefix_cache.misses
        second = finished(await collect(engine.submit(request(voice_id="alice", seed=5))))
        return first, second, misses_after_first, engine.prefix_cache

    first, second, misses, cache = run_with_engine(make_engine(checkpoint, voices), body)
    assert misses == 1 and cache.hits == 1 and len(cache) == 1
    np.testing.assert_array_equal(first.codes, second.codes)


def test_padding_batches_to_compile_buckets_changes_no_code(checkpoint, voices):
    """CUDA runs pad a batch up to a bucket size with rows of a scratch slot; the real rows must not notice."""
    texts = ["One.", "Two words.", "Three little words."]

    async def together(engine):
        handles = [engine.submit(request(text, seed=20 + i, frames=6)) for i, text in enumerate(texts)]
        return [finished(e).codes for e in await asyncio.gather(*(collect(h) for h in handles))]

    plain = run_with_engine(make_engine(checkpoint, voices), together)
    padded_engine = make_engine(checkpoint, voices)
    padded_engine.runner.pad_to_buckets = True
    seen_batches = []
    real_frame_fn = padded_engine.runner._frame_fn

    def spy(slot_ids, *args):
        seen_batches.append(slot_ids.shape[0])
        return real_frame_fn(slot_ids, *args)

    padded_engine.runner._frame_fn = spy
    padded = run_with_engine(padded_engine, together)
    assert 4 in seen_batches and 3 not in seen_batches, (
        f"3 streams must run as a padded batch of 4: {seen_batches}"
    )
    for a, b in zip(plain, padded, strict=True):
        np.testing.assert_array_equal(a, b)


def test_context_audio_is_encoded_once_across_requests(checkpoint, voices):
    """A conversation sends the user's recorded turn again with every later unit: Mimi encodes it once."""
    from csmstream.model.tokenizer import Segment

    t = np.arange(24000) / 24000
    user_audio = (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    context = (Segment(1, "What time is it?", audio=user_audio),)

    async def body(engine):
        results = []
        for text in ("It is noon.", "Time for lunch."):
            results.append(finished(await collect(engine.submit(request(text, frames=3, context=context)))))
        return results, engine.prompts.encoded_clips

    results, encoded = run_with_engine(make_engine(checkpoint, voices), body)
    assert [r.finish_reason for r in results] == ["length", "length"]
    assert encoded == 1, f"the same clip was encoded {encoded} times"


def test_a_device_that_keeps_failing_makes_the_engine_unhealthy(checkpoint, voices):
    """Every step fails whoever is in it: each session ends with an error, the engine turns `unhealthy`,
    refuses new requests with `busy`, and tells its owner once through `on_fatal`."""
    engine = make_engine(checkpoint, voices)
    fatal: list[str] = []
    engine.on_fatal = fatal.append
    real_step = engine.runner.step
    broken = []

    def step(slots, positions, frame_indices):
        if broken:
            raise RuntimeError("device lost (injected)")
        return real_step(slots, positions, frame_indices)

    engine.runner.step = step

    async def body(engine):
        assert engine.status in ("starting", "ok")
        handles = [engine.submit(request(frames=40, seed=i)) for i in range(3)]
        while engine.scheduler.num_active < 3 or engine.status != "ok":
            await asyncio.sleep(0.001)
        broken.append(True)
        results = await asyncio.gather(*(collect(h) for h in handles))
        with pytest.raises(Busy, match="unhealthy"):
            engine.submit(request())
        return results

    results = run_with_engine(engine, body)
    for events in results:
        assert finished(events).finish_reason == "error", finished(events)
    assert engine.status == "unhealthy"
    assert len(fatal) == 1 and "device lost" in fatal[0], fatal


def test_the_engine_is_starting_until_warm_up_has_measured_the_step(checkpoint, voices):
    engine = make_engine(checkpoint, voices, realtime_admission=True)
    assert engine.status == "starting", "no step has been built or measured before start()"

    async def body(engine):
        while engine.status == "starting":
            await asyncio.sleep(0.005)
        return engine.status, engine.scheduler.step_ms_estimate(1)

    status, step_ms = run_with_engine(engine, body)
    assert status == "ok"
    assert step_ms is not None and step_ms > 0, "warm-up seeds the scheduler's cost curve"


def test_the_kv_buckets_flag_reaches_the_runner(tiny_checkpoint_dir, voices):
    """`csmstream serve --kv-buckets 1` → Settings → the engine factory → the runner's attention spans."""
    import argparse

    from csmstream.commands import serve
    from csmstream.engine.factory import build_csm_engine

    parser = argparse.ArgumentParser()
    serve.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["serve", "--model", str(tiny_checkpoint_dir), "--device", "cpu", "--kv-buckets", "1"]
    )
    settings = serve._settings(args)
    assert settings.kv_buckets == 1
    engine = build_csm_engine(settings, voices)
    assert len(engine.runner.kv_buckets) == 1 and engine.runner.kv_buckets[0] == engine.runner.max_rows
    default = build_csm_engine(settings.model_copy(update={"kv_buckets": 5}), voices)
    assert len(default.runner.kv_buckets) > 1
