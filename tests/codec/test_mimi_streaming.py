"""The streaming decoder equals the whole-sequence decode, for any split, per slot, with resets and subsets."""

from __future__ import annotations

import random

import pytest
import torch
from codec_helpers import assert_audio_close, random_codes

FRAME = 1920


def _stream(mimi, codes: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    assert sum(sizes) == codes.shape[-1], "the split must cover the whole sequence"
    state = mimi.new_decoder_state(codes.shape[0])
    pieces, start = [], 0
    for size in sizes:
        piece = mimi.decode_step(codes[..., start : start + size], state)
        assert piece.shape[-1] == size * FRAME, f"{size} frames gave {piece.shape[-1]} samples"
        pieces.append(piece)
        start += size
    return torch.cat(pieces, dim=-1)


def _growing_split(num_frames: int) -> list[int]:
    sizes, size = [], 2
    while sum(sizes) < num_frames:
        sizes.append(min(size, num_frames - sum(sizes)))
        size += 2 if size < 4 else 4  # 2, 4, 8, 12, 16 ...
    return sizes


def _random_split(num_frames: int, seed: int) -> list[int]:
    rng, sizes = random.Random(seed), []
    while sum(sizes) < num_frames:
        sizes.append(min(rng.randint(1, 7), num_frames - sum(sizes)))
    return sizes


@pytest.mark.parametrize("split", ["frames", "growing", "random0", "random1"])
@pytest.mark.parametrize("pair_name", ["tiny_pair", "small_window_pair"])
def test_any_split_equals_whole_decode_and_transformers(pair_name, split, request):
    mimi, reference = request.getfixturevalue(pair_name)
    num_frames = 36  # 72 transformer positions: 7x the small window
    codes = random_codes(2, num_frames, seed=13)
    sizes = {
        "frames": [1] * num_frames,
        "growing": _growing_split(num_frames),
        "random0": _random_split(num_frames, 0),
        "random1": _random_split(num_frames, 1),
    }[split]
    with torch.no_grad():
        expected = reference.decode(codes).audio_values
    whole = mimi.decode(codes)
    assert_audio_close(whole, expected, "whole decode vs transformers")
    assert_audio_close(_stream(mimi, codes, sizes), whole, f"{split} split vs whole decode")


def test_long_sequence_with_real_window(tiny_pair):
    """300 frames = 600 positions, well past the real 250-position window (and past one decode chunk)."""
    mimi, reference = tiny_pair
    codes = random_codes(1, 300, seed=17)
    with torch.no_grad():
        expected = reference.decode(codes).audio_values
    assert_audio_close(_stream(mimi, codes, _random_split(300, 2)), expected, "300 frames streamed")


def test_reset_restarts_one_slot_and_leaves_the_others(small_window_pair):
    mimi, _ = small_window_pair
    before, after = 14, 9
    codes = random_codes(3, before + after, seed=19)
    restart_codes = random_codes(1, after, seed=23)
    state = mimi.new_decoder_state(3)
    first = mimi.decode_step(codes[..., :before], state)
    state.reset(torch.tensor([True, False, False]))
    second_codes = codes[..., before:].clone()
    second_codes[0] = restart_codes[0]
    second = mimi.decode_step(second_codes, state)

    assert_audio_close(second[:1], mimi.decode(restart_codes), "reset slot vs a fresh decode")
    whole = mimi.decode(codes)
    assert_audio_close(torch.cat([first, second], -1)[1:], whole[1:], "untouched slots vs their whole decode")
    assert not torch.allclose(second[:1], whole[:1, :, before * FRAME :]), "the reset had no effect"


def test_row_subsets_advance_only_their_slots(small_window_pair):
    mimi, _ = small_window_pair
    num_slots, num_frames = 4, 12
    codes = random_codes(num_slots, num_frames, seed=29)
    state = mimi.new_decoder_state(num_slots)
    done = [0] * num_slots
    outputs: list[list[torch.Tensor]] = [[] for _ in range(num_slots)]
    # Interleaved calls: slots in any order, different chunk lengths per call, some slots idle.
    schedule = [
        ([2, 0], 3),
        ([1], 5),
        ([3, 1, 0], 2),
        ([2], 4),
        (None, 1),
        ([0, 3], 6),
        ([1, 2], 5),
        ([3], 3),
    ]
    for rows, size in schedule:
        slot_list = list(range(num_slots)) if rows is None else rows
        size = min([size] + [num_frames - done[s] for s in slot_list])
        chunk = torch.stack([codes[s, :, done[s] : done[s] + size] for s in slot_list])
        row_tensor = None if rows is None else torch.tensor(rows)
        audio = mimi.decode_step(chunk, state, rows=row_tensor)
        for i, slot in enumerate(slot_list):
            outputs[slot].append(audio[i : i + 1])
            done[slot] += size
    assert done == [num_frames] * num_slots, f"schedule did not finish every slot: {done}"
    whole = mimi.decode(codes)
    for slot in range(num_slots):
        assert_audio_close(torch.cat(outputs[slot], -1), whole[slot : slot + 1], f"slot {slot}")


def test_inference_mode_and_positions(tiny_pair):
    mimi, _ = tiny_pair
    codes = random_codes(2, 5, seed=31)
    with torch.inference_mode():
        state = mimi.new_decoder_state(2)
        audio = torch.cat([mimi.decode_step(codes[..., t : t + 1], state) for t in range(5)], -1)
        whole = mimi.decode(codes)
    assert_audio_close(audio, whole, "under inference_mode")
    assert state.positions.tolist() == [10, 10], (
        f"2 positions per frame expected, got {state.positions.tolist()}"
    )


def test_bfloat16_stays_close(tiny_pair):
    mimi, _ = tiny_pair
    codes = random_codes(1, 6, seed=37)
    reference = mimi.decode(codes)
    low = type(mimi)(mimi.config).eval()
    low.load_state_dict(mimi.state_dict())
    low.to(torch.bfloat16)
    state = low.new_decoder_state(1)
    assert state.tensors["upsample"].dtype == torch.bfloat16, "state should follow the model dtype"
    audio = torch.cat([low.decode_step(codes[..., t : t + 2], state) for t in range(0, 6, 2)], -1)
    assert audio.dtype == torch.bfloat16 and torch.isfinite(audio).all(), "bf16 decode is not finite"
    relative = (audio.float() - reference).pow(2).mean().sqrt() / reference.pow(2).mean().sqrt()
    assert relative < 0.1, f"bf16 decode is off by {relative:.3f} relative RMS"


def test_empty_chunk_is_a_no_op(small_window_pair):
    mimi, _ = small_window_pair
    codes = random_codes(2, 6, seed=53)
    state = mimi.new_decoder_state(2)
    first = mimi.decode_step(codes[..., :3], state)
    empty = mimi.decode_step(codes[..., :0], state)
    assert empty.shape == (2, 1, 0), f"an empty chunk gave {tuple(empty.shape)}"
    rest = mimi.decode_step(codes[..., 3:], state)
    assert_audio_close(torch.cat([first, rest], -1), mimi.decode(codes), "stream with an empty chunk inside")
