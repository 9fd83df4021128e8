"""A simple single-stream generation loop (CLI, tests, reference for the batched engine)."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from csmstream.errors import TextTooLong
from csmstream.model.csm import CsmModel
from csmstream.model.kv_cache import KVCache
from csmstream.model.sampling import BatchSampling, SamplingParams


@torch.inference_mode()
def generate_frames(
    model: CsmModel,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    params: SamplingParams,
    max_frames: int,
    cache: KVCache | None = None,
    adapter_index: int | None = None,
) -> Iterator[torch.Tensor]:
    """Prompt rows tokens, mask (T, K + 1) → yields (K,) int64 codes, one frame at a time, as they are made.

    Stops at the all-zero end frame (not yielded) or after `max_frames` frames. `cache` (slot 0 is used)
    defaults to a fresh one sized for the prompt plus `max_frames`; a smaller given cache ends the loop
    when it is full. `adapter_index`: speak through that index of the model's attached AdapterBank.
    """
    num_rows = tokens.shape[0]
    assert tokens.shape == mask.shape and tokens.dim() == 2, (
        f"tokens {tuple(tokens.shape)} and mask {tuple(mask.shape)} must both be (T, K + 1)"
    )
    device = model.codebook0_head.weight.device
    if cache is None:
        cache = model.new_kv_cache(num_slots=1, max_rows=num_rows + max(max_frames, 0))
    if num_rows == 0 or num_rows >= cache.max_rows:
        raise TextTooLong(f"the prompt has {num_rows} rows; the cache holds {cache.max_rows}")
    # every generated frame but the last is fed back as one row, so the cache bounds the frame count
    max_frames = min(max_frames, cache.max_rows - num_rows + 1)
    sampling = BatchSampling.from_params([params.with_seed()], device=device)
    slot = torch.zeros(1, dtype=torch.int64, device=device)
    adapter_ids = None if adapter_index is None else torch.full_like(slot, adapter_index)

    # 1. prefill the whole prompt
    embeds = model.embed_rows(tokens[None].to(device), mask[None].to(device))
    hidden = model.backbone_forward(
        embeds, cache, slot, torch.zeros_like(slot), kv_len=num_rows, adapter_ids=adapter_ids
    )[:, -1]
    # 2. one frame per step: backbone state → codes → the row fed back
    for frame_index in range(max_frames):
        sampling.frame_index.fill_(frame_index)
        codes = model.generate_frame(hidden, sampling, adapter_ids=adapter_ids)  # (1, K)
        if model.is_end_frame(codes)[0]:
            return
        yield codes[0]
        if frame_index + 1 == max_frames:
            return
        row_tokens, row_mask = model.frame_rows(codes)
        position = num_rows + frame_index
        start = torch.full_like(slot, position)
        hidden = model.backbone_forward(
            model.embed_rows(row_tokens, row_mask),
            cache,
            slot,
            start,
            kv_len=position + 1,
            adapter_ids=adapter_ids,
        )[:, -1]


def generate(
    model: CsmModel,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    params: SamplingParams,
    max_frames: int,
    cache: KVCache | None = None,
    adapter_index: int | None = None,
) -> torch.Tensor:
    """All frames of `generate_frames` at once: (T, K) int64 codes (T may be 0)."""
    frames = list(generate_frames(model, tokens, mask, params, max_frames, cache, adapter_index))
    if not frames:
        device = model.codebook0_head.weight.device
        return torch.zeros(0, model.config.num_codebooks, dtype=torch.int64, device=device)
    return torch.stack(frames)
