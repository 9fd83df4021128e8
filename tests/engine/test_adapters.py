"""Fine-tuned voices served from one model: the adapter pool's bookkeeping, rows of different adapters in one
runner step, the compiled adapter variant, and the engine end to end (mixed batches, cancel, limits, merge)."""

from __future__ import annotations

import asyncio
import copy

import numpy as np
import pytest
import torch
from engine_helpers import run_with_engine
from runner_helpers import Stream, assert_same_frames, step, text_prompt

from csmstream.engine.adapter_pool import AdapterPool
from csmstream.engine.csm_engine import CsmEngine
from csmstream.engine.events import Finished
from csmstream.engine.request import SynthesisRequest
from csmstream.engine.runner import ModelRunner
from csmstream.errors import BadRequest, Busy
from csmstream.model.adapter_files import AdapterError, load_adapter
from csmstream.model.checkpoint import load_checkpoint
from csmstream.model.generate import generate
from csmstream.model.lora import AdapterBank
from csmstream.model.sampling import SamplingParams
from csmstream.voices.library import VoiceLibrary
from lora_helpers import make_peft_adapter

pytest.importorskip("peft")

# ---- the pool, without a model -------------------------------------------------------------------------


class _Bank:
    """Records what the pool asks the bank to do."""

    def __init__(self):
        self.held: dict[int, str] = {}

    def write(self, index, weights):
        self.held[index] = weights

    def clear(self, index):
        self.held.pop(index, None)


def test_the_pool_loads_once_keeps_lru_and_never_replaces_an_adapter_in_use():
    bank = _Bank()
    pool = AdapterPool(2, bank.write, bank.clear)
    a = pool.acquire(("a", "r1"), lambda: "A")
    assert pool.acquire(("a", "r1"), lambda: pytest.fail("loaded twice")) == a == 1
    b = pool.acquire(("b", "r1"), lambda: "B")
    assert b == 2 and pool.loads == 2 and pool.users == 3
    with pytest.raises(Busy, match="--max-adapters"):
        pool.acquire(("c", "r1"), lambda: "C")  # both indices are speaking
    pool.release(("a", "r1"))
    pool.release(("a", "r1"))
    c = pool.acquire(("c", "r1"), lambda: "C")  # a is unused and least recent: c takes its index
    assert c == a and bank.held == {1: "C", 2: "B"} and pool.loaded == 2
    pool.release(("b", "r1"))
    pool.release(("c", "r1"))
    assert pool.users == 0 and pool.in_use == 0
    assert pool.forget("b") == 1 and bank.held == {1: "C"} and pool.loaded == 1


def test_a_failed_load_gives_its_index_back():
    bank = _Bank()
    pool = AdapterPool(1, bank.write, bank.clear)

    def broken():
        raise ValueError("corrupt")

    with pytest.raises(ValueError):
        pool.acquire(("a", "r1"), broken)
    assert pool.loaded == 0 and pool.acquire(("b", "r1"), lambda: "B") == 1


# ---- the runner: rows of different adapters in one step ------------------------------------------------

MAX_SLOTS = 4
MAX_ROWS = 48


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint_dir):
    return load_checkpoint(str(tiny_checkpoint_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def adapter_dirs(checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    dirs = {}
    for name, seed, rank in (("alpha", 1, 4), ("beta", 2, 2), ("gamma", 3, 4)):
        make_peft_adapter(checkpoint.model, root / name, seed=seed, rank=rank)
        dirs[name] = root / name
    return dirs


def _runner_with_bank(checkpoint, adapter_dirs, **kw):
    model = copy.deepcopy(checkpoint.model)
    bank = AdapterBank(model, num_adapters=2, max_rank=4)
    bank.write(1, load_adapter(adapter_dirs["alpha"], model))
    bank.write(2, load_adapter(adapter_dirs["beta"], model))
    runner = ModelRunner(model, checkpoint.codec, MAX_SLOTS, MAX_ROWS, adapters=True, **kw)
    return runner, model


def _start(runner, slot, prompt_rows, seed, adapter_index):
    tokens, mask = text_prompt(
        seed=100 * slot + prompt_rows, num_rows=prompt_rows, text_vocab=runner.model.config.text_vocab_size
    )
    sampling = SamplingParams(seed=seed, greedy=True)
    runner.start_slot(slot, sampling, adapter_index)
    runner.prefill(slot, tokens, mask, 0, True)
    return Stream(slot=slot, prompt_rows=prompt_rows, sampling=sampling)


# (slot, prompt rows, seed, adapter index): base, alpha, beta, and alpha again in one batch
MIXED = [(0, 5, 1, 0), (1, 9, 2, 1), (2, 7, 3, 2), (3, 12, 4, 1)]


def _run_mixed(runner, rows=MIXED, frames=6):
    streams = [_start(runner, *row) for row in rows]
    for _ in range(frames):
        step(runner, streams)
    return streams


def test_a_step_mixing_base_and_two_adapters_gives_each_row_its_solo_codes(checkpoint, adapter_dirs):
    runner, model = _runner_with_bank(checkpoint, adapter_dirs)
    together = _run_mixed(runner)
    for row, stream in zip(MIXED, together, strict=True):
        alone = _run_mixed(runner, [row])[0]
        assert_same_frames(stream, alone)
        # and the single-stream reference loop with the same adapter agrees
        slot, prompt_rows, _, adapter_index = row
        tokens, mask = text_prompt(
            seed=100 * slot + prompt_rows, num_rows=prompt_rows, text_vocab=model.config.text_vocab_size
        )
        reference = generate(model, tokens, mask, SamplingParams(greedy=True), 6, adapter_index=adapter_index)
        np.testing.assert_array_equal(stream.all_codes(), reference.numpy())
    base, alpha, beta = together[0].all_codes(), together[1].all_codes(), together[2].all_codes()
    plain = ModelRunner(checkpoint.model, checkpoint.codec, MAX_SLOTS, MAX_ROWS)
    assert_same_frames(
        _run_mixed(plain, [(0, 5, 1, 0)])[0], together[0]
    )  # the bank adds nothing to base rows
    assert not np.array_equal(alpha, _run_mixed(plain, [(1, 9, 2, 0)])[0].all_codes()), (
        "alpha changes nothing"
    )
    assert not np.array_equal(base, beta)


def test_compiled_steps_with_adapters_build_at_warm_up_and_match_eager(checkpoint, adapter_dirs):
    eager_runner, _ = _runner_with_bank(checkpoint, adapter_dirs)
    expected = _run_mixed(eager_runner) + _run_mixed(eager_runner, [(0, 30, 5, 0), (2, 20, 6, 2)])
    torch._dynamo.reset()
    try:
        runner, _ = _runner_with_bank(
            checkpoint, adapter_dirs, compile=True, compile_any_device=True, compile_backend="aot_eager"
        )
        lines: list[str] = []
        runner.warm_up(progress=lines.append)
        shapes = runner.step_shapes()
        assert sum(lora for _, _, lora in shapes) == len(shapes) // 2, "each shape has its adapter variant"
        assert any("LoRA adapters" in line for line in lines)
        graphs = runner.compile_stats()["compiled_graphs"]
        actual = _run_mixed(runner) + _run_mixed(runner, [(0, 30, 5, 0), (2, 20, 6, 2)])
        stats = runner.compile_stats()
        assert stats["recompiles_after_warmup"] == 0 and stats["compiled_graphs"] == graphs, stats
        assert stats["graph_breaks"] == 0, stats
    finally:
        torch._dynamo.reset()
    for a, e in zip(actual, expected, strict=True):
        assert_same_frames(a, e)


# ---- the engine ----------------------------------------------------------------------------------------


@pytest.fixture()
def library(tmp_path, adapter_dirs):
    voices = VoiceLibrary(tmp_path / "voices", builtin_dir=None)
    reference = [(0.1 * np.sin(np.arange(24_000) / 9.0).astype(np.float32), 24_000, "hello there")]
    voices.create("plain", "Plain", 0, reference)
    for name, directory in adapter_dirs.items():
        voices.create(name, name.title(), 0, reference, adapter_dir=directory)
    return voices


def _request(voice_id, seed=1, frames=8, text="Good morning to you all.") -> SynthesisRequest:
    return SynthesisRequest(
        text=text,
        voice_id=voice_id,
        sampling=SamplingParams(seed=seed, greedy=True),
        max_seconds=frames * 0.08,
    )


def _engine(checkpoint, voices, **kw):
    kw.setdefault("max_slots", 4)
    kw.setdefault("realtime_admission", False)
    return CsmEngine(copy.deepcopy(checkpoint), voices, **kw)


async def _finish(handle) -> Finished:
    events = [event async for event in handle.events()]
    return events[-1]


def test_the_engine_batches_fine_tuned_and_base_voices_and_frees_every_adapter(checkpoint, library):
    voice_ids = ["plain", "alpha", "beta", "alpha"]

    async def together(engine):
        handles = [engine.submit(_request(v, seed=i)) for i, v in enumerate(voice_ids)]
        return await asyncio.gather(*(_finish(h) for h in handles)), engine.stats().adapters

    async def alone(engine):
        return [await _finish(engine.submit(_request(v, seed=i))) for i, v in enumerate(voice_ids)]

    batched, adapters = run_with_engine(_engine(checkpoint, library), together)
    solo = run_with_engine(_engine(checkpoint, library), alone)
    for a, b in zip(batched, solo, strict=True):
        assert a.finish_reason == b.finish_reason == "length", (a, b)
        np.testing.assert_array_equal(a.codes, b.codes)
    assert not np.array_equal(batched[0].codes, batched[1].codes)
    assert adapters["loads"] == 2 and adapters["in_use"] == 0 and adapters["loaded"] == 2, adapters


def test_cancelling_a_fine_tuned_stream_frees_its_slot_and_its_adapter(checkpoint, library):
    async def body(engine):
        handle = engine.submit(_request("alpha", frames=200))
        async for event in handle.events():
            if type(event).__name__ == "AudioChunk":
                handle.cancel()
        mid = engine.stats()
        follow = await _finish(engine.submit(_request("beta")))
        return mid, follow, engine.stats()

    mid, follow, after = run_with_engine(_engine(checkpoint, library), body)
    assert mid.active_sessions == 0 and mid.adapters["in_use"] == 0, mid
    assert follow.finish_reason == "length"
    assert after.adapters["in_use"] == 0 and after.active_sessions == 0


def test_more_fine_tuned_voices_at_once_than_the_bank_holds_get_busy_not_wrong_audio(checkpoint, library):
    async def body(engine):
        first = engine.submit(_request("alpha", frames=40))
        second = engine.submit(_request("beta", frames=4))
        results = await asyncio.gather(_finish(first), _finish(second))
        later = await _finish(
            engine.submit(_request("gamma", frames=4))
        )  # alpha is done: its index is reused
        return results, later, engine.stats().adapters

    (first, second), later, adapters = run_with_engine(_engine(checkpoint, library, max_adapters=1), body)
    assert first.finish_reason == "length"
    assert second.finish_reason == "error" and isinstance(second.error, Busy), second
    assert "max-adapters" in str(second.error)
    assert later.finish_reason == "length" and adapters["in_use"] == 0 and adapters["loaded"] == 1


def test_an_adapter_for_another_model_is_a_clear_error_and_leaks_nothing(checkpoint, library, tmp_path):
    wide = copy.deepcopy(checkpoint.model)
    make_peft_adapter(wide, tmp_path / "other", seed=5, rank=4, targets=("q_proj",))
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(tmp_path / "other" / "adapter_model.safetensors"))
    save_file({k: torch.zeros(v.shape[0], v.shape[1] * 2) if "lora_A" in k else v for k, v in tensors.items()},
              str(tmp_path / "other" / "adapter_model.safetensors"))  # fmt: skip
    reference = [(0.1 * np.ones(24_000, dtype=np.float32), 24_000, "hello")]
    library.create("foreign", "Foreign", 0, reference, adapter_dir=tmp_path / "other")

    async def body(engine):
        # refused at submit, from the adapter's header: before a slot, a queue place or any audio
        with pytest.raises(AdapterError, match="another model"):
            engine.submit(_request("foreign"))
        good = await _finish(engine.submit(_request("alpha")))
        return good, engine.stats()

    good, stats = run_with_engine(_engine(checkpoint, library), body)
    assert good.finish_reason == "length"
    assert stats.active_sessions == 0 and stats.adapters["in_use"] == 0 and stats.adapters["loaded"] == 1


def test_a_merged_voice_speaks_like_the_bank_and_other_fine_tuned_voices_are_refused(checkpoint, library):
    async def one(engine, voice_id):
        return await _finish(engine.submit(_request(voice_id)))

    banked = run_with_engine(_engine(checkpoint, library), lambda e: one(e, "alpha"))
    merged_engine = _engine(checkpoint, library, merge_voice="alpha")
    merged = run_with_engine(merged_engine, lambda e: one(e, "alpha"))
    np.testing.assert_array_equal(merged.codes, banked.codes)
    assert merged_engine.stats().adapters["merged_voice"] == "alpha"

    async def other(engine):
        with pytest.raises(BadRequest, match="merged voice 'alpha'"):
            engine.submit(_request("beta"))

    run_with_engine(_engine(checkpoint, library, merge_voice="alpha"), other)
    with pytest.raises(BadRequest, match="--max-adapters 0"):
        run_with_engine(_engine(checkpoint, library, max_adapters=0), lambda e: one(e, "beta"))


def test_the_voice_prefix_cache_keys_on_the_adapter(library, adapter_dirs):
    plain, alpha = library.get("plain"), library.get("alpha")
    assert [s.text for s in plain.segments] == [s.text for s in alpha.segments]
    assert plain.revision != alpha.revision, "same references, another adapter: another cached prefix"
    assert alpha.adapter_dir is not None and (alpha.adapter_dir / "adapter_model.safetensors").is_file()
    assert library.get("alpha").info().adapter and not plain.info().adapter
