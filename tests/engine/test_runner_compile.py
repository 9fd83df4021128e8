"""Step shapes, warm-up and compile: a small fixed set of shapes is built before traffic and a mixed workload
then compiles nothing more; compiled (aot_eager, fullgraph), static-buffer and plain steps make the same codes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from runner_helpers import Stream, assert_same_frames, start_stream, step

from csmstream.engine.runner import KV_BUCKET_COUNT, ModelRunner, kv_buckets
from csmstream.model.checkpoint import load_checkpoint
from csmstream.model.sampling import SamplingParams

MAX_SLOTS = 2
MAX_ROWS = 32  # kv buckets (16, 32): prompts below and above 16 rows use both

# Phases run one after another; each is (slot, prompt rows, sampling) per stream and a number of frames:
# 1..MAX_SLOTS streams, short and long prompts, top-k from 1 to the whole codebook, greedy, a lone slot 1.
WORKLOAD = [
    ([(0, 4, SamplingParams(seed=1, topk=50))], 3),
    ([(0, 14, SamplingParams(seed=2, topk=5)), (1, 3, SamplingParams(seed=3, greedy=True))], 5),
    ([(1, 20, SamplingParams(seed=4, topk=2048, temperature=1.3))], 3),
    ([(0, 9, SamplingParams(seed=5, topk=1)), (1, 12, SamplingParams(seed=6, topk=300))], 4),
]


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint_dir):
    return load_checkpoint(str(tiny_checkpoint_dir), device="cpu", dtype="float32")


def make_runner(checkpoint, **kw) -> ModelRunner:
    return ModelRunner(checkpoint.model, checkpoint.codec, MAX_SLOTS, MAX_ROWS, **kw)


def run_workload(runner: ModelRunner, between_frames: Callable[[], None] | None = None) -> list[Stream]:
    finished: list[Stream] = []
    for sessions, num_frames in WORKLOAD:
        streams = [start_stream(runner, *session) for session in sessions]
        for _ in range(num_frames):
            step(runner, streams)
            if between_frames is not None:
                between_frames()
        finished += streams
    return finished


@pytest.fixture(scope="module")
def plain(checkpoint) -> list[Stream]:
    return run_workload(make_runner(checkpoint))


@pytest.fixture(scope="module")
def compiled(checkpoint):
    """A runner compiled with aot_eager (fullgraph) on the CPU, warmed up: (runner, measured, progress lines)."""
    torch._dynamo.reset()  # no graphs of other tests in the code caches
    runner = make_runner(checkpoint, compile=True, compile_any_device=True, compile_backend="aot_eager")
    lines: list[str] = []
    measured = runner.warm_up(progress=lines.append)
    yield runner, measured, lines
    torch._dynamo.reset()


def test_kv_buckets_are_few_geometric_and_cover_the_window():
    for max_rows in (2048, 1000, 300, 64, 20):
        buckets = kv_buckets(max_rows)
        assert 1 <= len(buckets) <= KV_BUCKET_COUNT and buckets[-1] == max_rows, buckets
        assert all(b % 16 == 0 for b in buckets[:-1]), f"aligned spans: {buckets}"
        assert all(b2 <= 2 * b1 for b1, b2 in zip(buckets, buckets[1:], strict=False)), (
            f"geometric: {buckets}"
        )
    assert kv_buckets(2048) == (128, 256, 512, 1024, 2048)


def test_compile_is_off_unless_on_cuda_or_asked_and_never_with_the_switch(checkpoint, monkeypatch):
    assert not make_runner(checkpoint, compile=True).compiled, "no compile on the CPU by default"
    assert make_runner(checkpoint, compile=True, compile_any_device=True).compiled
    assert not make_runner(checkpoint, compile=False, compile_any_device=True).compiled
    monkeypatch.setenv("CSMSTREAM_NO_COMPILE", "1")
    assert not make_runner(checkpoint, compile=True, compile_any_device=True).compiled
    runner = make_runner(checkpoint, compile=True, cuda_graphs=True)
    assert not runner.cuda_graphs, "CUDA graphs only on CUDA"


def test_warm_up_builds_every_shape_once_and_measures_each_batch_bucket(compiled):
    runner, measured, lines = compiled
    shapes = runner.step_shapes()
    assert shapes == [(1, 16, False), (1, 32, False), (2, 16, False), (2, 32, False)]
    assert [b for b, _ in measured] == [1, 2] and all(ms > 0 for _, ms in measured)
    assert len(lines) == len(shapes) + len(measured), lines
    stats = runner.compile_stats()
    assert stats["compile_enabled"] and stats["compile_error"] is None, stats
    assert stats["warmed_up"] and stats["compiled_shapes"] == len(shapes), stats
    assert stats["graph_breaks"] == 0 and stats["recompiles_after_warmup"] == 0, stats
    assert stats["captured_graphs"] == 0 and not stats["cuda_graphs"], "no CUDA graphs on the CPU"


def test_after_warm_up_a_mixed_workload_compiles_nothing_and_matches_eager(compiled, plain):
    runner, _, _ = compiled
    graphs_before = runner.compile_stats()["compiled_graphs"]
    streams = run_workload(runner)
    stats = runner.compile_stats()
    assert stats["recompiles_after_warmup"] == 0 and stats["compiled_graphs"] == graphs_before, stats
    for actual, expected in zip(streams, plain, strict=True):
        assert_same_frames(actual, expected)


def test_one_kv_bucket_builds_one_shape_per_batch_bucket_and_still_matches_eager(checkpoint, plain):
    """`--kv-buckets 1`: every step attends over the whole window, so warm-up builds a shape per batch bucket
    only (here 2, not 4); steps of short prompts run in it, compile nothing more, and give the same codes."""
    torch._dynamo.reset()
    runner = make_runner(
        checkpoint, compile=True, compile_any_device=True, compile_backend="aot_eager", kv_bucket_count=1
    )
    try:
        assert runner.kv_buckets == (MAX_ROWS,)
        runner.warm_up()
        assert runner.step_shapes() == [(1, 32, False), (2, 32, False)]
        streams = run_workload(runner)
        stats = runner.compile_stats()
        assert stats["compiled_shapes"] == 2 and stats["recompiles_after_warmup"] == 0, stats
        for actual, expected in zip(streams, plain, strict=True):
            assert_same_frames(actual, expected)
    finally:
        torch._dynamo.reset()


def test_static_buffer_steps_with_idle_rows_match_plain_steps(checkpoint, plain):
    """The code around a CUDA graph, on the CPU: rows padded to slots [0, P) (idle ones commit nothing), the
    inputs copied into per-shape static buffers, outputs read back by slot."""
    runner = make_runner(checkpoint, pad_to_buckets=True)
    widths = []
    real_frame_fn = runner._frame_fn

    def spy(slot_ids, *args):
        widths.append(slot_ids.shape[0])
        return real_frame_fn(slot_ids, *args)

    runner._frame_fn = spy
    streams = run_workload(runner)
    assert widths.count(2) > widths.count(1) > 0, "a lone slot 1 runs as a static batch of 2"
    for actual, expected in zip(streams, plain, strict=True):
        assert_same_frames(actual, expected)


def test_graph_capture_and_replay_around_static_buffers_match_plain_steps(checkpoint, plain):
    """CUDA graphs' logic with a stand-in capture: the function runs (warm runs + "capture") once per shape
    with every row idle, and each step after copies its inputs into the buffers and replays into the captured
    outputs. The stand-in replays by running the function again on the same buffers."""
    captures = []

    def rerun_capture(fn):
        fn(), fn()  # the warm runs CUDA graph capture needs: idle rows, so no session may notice them
        outputs = fn()
        captures.append(outputs)

        def replay():
            for captured, fresh in zip(outputs, fn(), strict=True):
                captured.copy_(fresh)

        return replay, outputs

    runner = make_runner(checkpoint, pad_to_buckets=True)
    runner._graphs.capture = rerun_capture
    assert runner.cuda_graphs
    runner.warm_up()
    assert len(captures) == runner.compile_stats()["captured_graphs"] == len(runner.step_shapes())
    streams = run_workload(runner)
    assert len(captures) == len(runner.step_shapes()), "every shape was captured by the warm-up"
    for actual, expected in zip(streams, plain, strict=True):
        assert_same_frames(actual, expected)


@pytest.mark.parametrize("static", [False, True], ids=["exact", "static"])
def test_warm_up_leaves_nothing_behind(checkpoint, plain, static):
    """A seeded request makes the same audio with and without warm-up, even warm-ups between its frames."""
    runner = make_runner(checkpoint, pad_to_buckets=static)
    lines: list[str] = []
    measured = runner.warm_up(progress=lines.append)
    assert [b for b, _ in measured] == [1, 2] and len(lines) == len(runner.step_shapes()) + 2, lines
    calls = iter(range(100))
    streams = run_workload(runner, between_frames=lambda: next(calls) % 5 == 0 and runner.warm_up())
    for actual, expected in zip(streams, plain, strict=True):
        assert_same_frames(actual, expected)
