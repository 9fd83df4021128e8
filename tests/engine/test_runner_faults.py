"""A step that fails leaves no half-done state: retried row by row (as the engine retries a failed batch),
every stream makes exactly the codes and audio of a run without the failure."""

from __future__ import annotations

import pytest
import torch
from runner_helpers import assert_same_frames, start_stream, step

from csmstream.engine.runner import FAULT_STAGES, InjectedFault, ModelRunner
from csmstream.model.checkpoint import load_checkpoint
from csmstream.model.sampling import SamplingParams

# (slot, prompt rows, sampling): slot 2 stays free, so a static step of slot 3 has idle rows
SESSIONS = [
    (0, 5, SamplingParams(seed=1)),
    (1, 11, SamplingParams(seed=2, temperature=0.7, topk=20)),
    (3, 8, SamplingParams(seed=3, greedy=True)),
]
NUM_FRAMES = 5
FAULT_FRAME = 2


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint_dir):
    return load_checkpoint(str(tiny_checkpoint_dir), device="cpu", dtype="float32")


def _state(runner: ModelRunner) -> dict[str, torch.Tensor]:
    """Everything a later step reads besides the KV cache (whose rows a retry writes again)."""
    state = {"hidden": runner.hidden.clone(), "decoder.positions": runner.decoder_state.positions.clone()}
    state.update({f"decoder.{k}": v.clone() for k, v in runner.decoder_state.tensors.items()})
    return state


def _run(checkpoint, static: bool, fault: str | None = None):
    runner = ModelRunner(checkpoint.model, checkpoint.codec, max_slots=4, max_rows=64, pad_to_buckets=static)
    streams = [start_stream(runner, *session) for session in SESSIONS]
    for frame in range(NUM_FRAMES):
        if frame != FAULT_FRAME or fault is None:
            step(runner, streams)
            continue
        before = _state(runner)
        runner.fail_next_step_at = fault
        with pytest.raises(InjectedFault, match=fault):
            step(runner, streams)
        assert runner.fail_next_step_at is None, "the fault fires once"
        after = _state(runner)
        for name, tensor in before.items():
            assert torch.equal(after[name], tensor), f"the failed step changed {name}"
        for stream in streams:  # the engine's retry: each row alone
            step(runner, [stream])
    return streams


@pytest.fixture(scope="module")
def reference(checkpoint):
    return {static: _run(checkpoint, static) for static in (False, True)}


@pytest.mark.parametrize("static", [False, True], ids=["exact", "static"])
@pytest.mark.parametrize("stage", FAULT_STAGES)
def test_a_failed_step_retried_row_by_row_makes_the_same_frames(checkpoint, reference, static, stage):
    streams = _run(checkpoint, static, fault=stage)
    for actual, expected in zip(streams, reference[static], strict=True):
        assert_same_frames(actual, expected)


def test_an_unknown_fault_stage_is_refused(checkpoint):
    runner = ModelRunner(checkpoint.model, checkpoint.codec, max_slots=1, max_rows=32)
    stream = start_stream(runner, 0, 4, SamplingParams(seed=1))
    runner.fail_next_step_at = "somewhere"
    with pytest.raises(AssertionError, match="fault stages"):
        step(runner, [stream])
