"""The single-stream loop: streaming == whole, seeds, stopping, limits."""

from __future__ import annotations

import pytest
import torch
from model_helpers import text_rows

from csmstream.errors import TextTooLong
from csmstream.model.generate import generate, generate_frames
from csmstream.model.sampling import SamplingParams


def _prompt(length: int = 8):
    return text_rows(torch.randint(0, 300, (length,), generator=torch.Generator().manual_seed(length)))


def test_streamed_frames_equal_the_whole_result(tiny_model):
    tokens, mask = _prompt()
    params = SamplingParams(seed=42)
    streamed = list(generate_frames(tiny_model, tokens, mask, params, max_frames=6))
    whole = generate(tiny_model, tokens, mask, params, max_frames=6)
    assert whole.shape == (6, 32) and whole.dtype == torch.int64
    assert torch.equal(torch.stack(streamed), whole)


def test_same_seed_same_audio_different_seed_different_audio(tiny_model):
    tokens, mask = _prompt()
    first = generate(tiny_model, tokens, mask, SamplingParams(seed=1), max_frames=4)
    again = generate(tiny_model, tokens, mask, SamplingParams(seed=1), max_frames=4)
    other = generate(tiny_model, tokens, mask, SamplingParams(seed=2), max_frames=4)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert first.max() < 2048


def test_stops_at_the_all_zero_frame_without_yielding_it(tiny_model, monkeypatch):
    """The model makes 3 real frames then the end frame: 3 frames come out, generation stops."""
    real_generate_frame = tiny_model.generate_frame
    calls = []

    def ends_after_three(hidden, sampling, depth_cache=None, adapter_ids=None):
        calls.append(int(sampling.frame_index[0]))
        codes = real_generate_frame(hidden, sampling, depth_cache)
        return torch.zeros_like(codes) if len(calls) == 4 else codes

    monkeypatch.setattr(tiny_model, "generate_frame", ends_after_three)
    tokens, mask = _prompt()
    frames = generate(tiny_model, tokens, mask, SamplingParams(seed=3), max_frames=10)
    assert frames.shape == (3, 32) and frames.any(dim=1).all()
    assert calls == [0, 1, 2, 3], "frame indices must count the request's frames"


def test_a_small_cache_bounds_the_frames_and_a_too_long_prompt_is_refused(tiny_model):
    tokens, mask = _prompt(8)
    cache = tiny_model.new_kv_cache(num_slots=1, max_rows=12)
    # rows 0..7 prompt, rows 8..11 hold frames 0..3 fed back; frame 4 needs no row of its own
    assert generate(tiny_model, tokens, mask, SamplingParams(seed=0), 100, cache=cache).shape == (5, 32)
    with pytest.raises(TextTooLong):
        generate(tiny_model, tokens, mask, SamplingParams(), 4, cache=tiny_model.new_kv_cache(1, 8))
