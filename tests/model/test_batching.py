"""Batched slots at different positions must compute what each slot computes alone."""

from __future__ import annotations

import torch
from model_helpers import TINY_TEXT_VOCAB, text_rows

from csmstream.model.sampling import BatchSampling, SamplingParams


def _prompt(seed: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, TINY_TEXT_VOCAB, (length,), generator=torch.Generator().manual_seed(seed))
    tokens, mask = text_rows(ids)
    return tokens[None], mask[None]


@torch.no_grad()
def _prefill(model, cache, slot: int, tokens, mask) -> torch.Tensor:
    start = torch.zeros(1, dtype=torch.int64)
    hidden = model.backbone_forward(
        model.embed_rows(tokens, mask), cache, torch.tensor([slot]), start, kv_len=32
    )
    return hidden[:, -1]


@torch.no_grad()
def test_two_slots_at_different_positions_match_solo_runs(tiny_model):
    model = tiny_model
    prompts = [_prompt(seed=10, length=5), _prompt(seed=11, length=12)]
    params = [SamplingParams(seed=7), SamplingParams(seed=8, temperature=0.7, topk=20)]
    num_frames = 6

    def run(slots: list[int]) -> list[torch.Tensor]:
        """Generate with the requests of `slots` batched together; returns each one's (frames, K) codes."""
        cache = model.new_kv_cache(num_slots=4, max_rows=32)
        # slots 3 and 1: out of order, and not 0..B-1, so the gather path is exercised
        slot_of = {0: 3, 1: 1}
        hidden = torch.cat([_prefill(model, cache, slot_of[i], *prompts[i]) for i in slots])
        positions = torch.tensor([prompts[i][0].shape[1] for i in slots])
        sampling = BatchSampling.from_params([params[i] for i in slots])
        frames = []
        for n in range(num_frames):
            sampling.frame_index = torch.full((len(slots),), n)
            codes = model.generate_frame(hidden, sampling)
            frames.append(codes)
            tokens, mask = model.frame_rows(codes)
            slot_ids = torch.tensor([slot_of[i] for i in slots])
            hidden = model.backbone_forward(
                model.embed_rows(tokens, mask), cache, slot_ids, positions + n, 32
            )[:, -1]
        codes = torch.stack(frames, dim=1)  # (B, frames, K)
        return [codes[b] for b in range(len(slots))]

    batched = run([0, 1])
    alone = [run([0])[0], run([1])[0]]
    assert not torch.equal(alone[0], alone[1]), "both requests made the same codes: the test proves little"
    assert torch.equal(batched[0], alone[0])
    assert torch.equal(batched[1], alone[1])


@torch.no_grad()
def test_batched_backbone_hidden_states_match_solo(tiny_model):
    """Prefill of one slot beside a decode step of another, in one call (rows padded to the same T)."""
    model = tiny_model
    tokens_a, mask_a = _prompt(seed=20, length=9)
    tokens_b, mask_b = _prompt(seed=21, length=4)
    solo = model.new_kv_cache(num_slots=2, max_rows=32)
    expected_a = _prefill(model, solo, 0, tokens_a, mask_a)
    _prefill(model, solo, 1, tokens_b[:, :3], mask_b[:, :3])
    expected_b_row = model.backbone_forward(
        model.embed_rows(tokens_b[:, 3:], mask_b[:, 3:]), solo, torch.tensor([1]), torch.tensor([3]), 32
    )[:, -1]

    batched = model.new_kv_cache(num_slots=2, max_rows=32)
    _prefill(model, batched, 1, tokens_b[:, :3], mask_b[:, :3])
    # one call: slot 0 prefills rows 0..8, slot 1 extends at row 3 (its extra rows land past what it reads)
    tokens = torch.cat((tokens_a, torch.cat((tokens_b[:, 3:], tokens_b[:, :1].expand(1, 8, -1)), dim=1)))
    mask = torch.cat((mask_a, torch.cat((mask_b[:, 3:], mask_b[:, :1].expand(1, 8, -1)), dim=1)))
    hidden = model.backbone_forward(model.embed_rows(tokens, mask), batched, None, torch.tensor([0, 3]), 32)
    assert torch.allclose(hidden[0, -1], expected_a[0], atol=1e-5)
    assert torch.allclose(hidden[1, 0], expected_b_row[0], atol=1e-5)
