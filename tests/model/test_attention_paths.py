"""The fused attention path (GQA folded into query rows, one float bias per forward) against the path it
replaced (a bool mask with `enable_gqa`): GQA, rows at different positions, prefill T > 1 and decode T = 1,
cache reads gathered by slot or taken as a view."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from csmstream.model import llama
from csmstream.model.llama import attend, attention_bias

TOLERANCE = 1e-5


def _old_attend(q, keys, values, bias):
    """The replaced path: the bool mask of query t is the first group's block of rows of the folded bias."""
    allowed = bias[:, :, : q.shape[2]] == 0  # (B, 1, T, S)
    return F.scaled_dot_product_attention(
        q, keys, values, attn_mask=allowed, enable_gqa=keys.shape[1] != q.shape[1]
    )


@pytest.mark.parametrize("num_heads, num_kv_heads", [(8, 2), (4, 4), (6, 1)])
@pytest.mark.parametrize("num_rows", [1, 5])
def test_attend_equals_sdpa_with_a_bool_mask_and_gqa(num_heads, num_kv_heads, num_rows):
    generator = torch.Generator().manual_seed(num_heads * 10 + num_rows)
    batch, keys_len, head_dim = 3, 24, 16
    q = torch.randn(batch, num_heads, num_rows, head_dim, generator=generator)
    keys = torch.randn(batch, num_kv_heads, keys_len, head_dim, generator=generator)
    values = torch.randn(batch, num_kv_heads, keys_len, head_dim, generator=generator)
    # each row's queries at its own positions: rows end at different lengths, causal within the T new rows
    last = torch.tensor([4, 23, 11])[:, None] + torch.arange(num_rows) - (num_rows - 1)  # (B, T)
    allowed = torch.arange(keys_len)[None, None, :] <= last[:, :, None]  # (B, T, S)
    bias = attention_bias(allowed, num_heads // num_kv_heads, q.dtype)
    assert bias.shape == (batch, 1, num_heads // num_kv_heads * num_rows, keys_len)
    expected = F.scaled_dot_product_attention(
        q, keys, values, attn_mask=allowed[:, None], enable_gqa=num_heads != num_kv_heads
    )
    actual = attend(q, keys, values, bias)
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max() < TOLERANCE


def _backbone_calls(model, view: bool) -> list[torch.Tensor]:
    """Prefill chunks and decode steps of two slots at different positions through one cache."""
    generator = torch.Generator().manual_seed(7)
    dim = model.config.backbone.dim
    cache = model.new_kv_cache(num_slots=4, max_rows=48)
    slots = (
        None if view else torch.tensor([3, 1])
    )  # out of order: the gather path; None: slots 0, 1 as a view

    def call(num_rows: int, starts: list[int], kv_len: int) -> torch.Tensor:
        embeds = torch.randn(2, num_rows, dim, generator=generator)
        return model.backbone_forward(embeds, cache, slots, torch.tensor(starts), kv_len)

    outputs = [call(6, [0, 0], 16), call(4, [6, 2], 16)]  # prefill T = 6, then T = 4 at mixed positions
    outputs += [call(1, [10 + i, 6 + 3 * i], 48) for i in range(4)]  # decode T = 1, rows far apart
    outputs.append(
        model.backbone_forward(torch.randn(2, 5, dim, generator=generator), None, None, torch.zeros(2))
    )
    return outputs


@pytest.mark.parametrize("view", [False, True], ids=["gathered", "view"])
@torch.no_grad()
def test_backbone_equals_the_bool_mask_path(tiny_model, monkeypatch, view):
    assert tiny_model.config.backbone.num_kv_heads < tiny_model.config.backbone.num_heads, "GQA under test"
    fused = _backbone_calls(tiny_model, view)
    monkeypatch.setattr(llama, "attend", _old_attend)
    reference = _backbone_calls(tiny_model, view)
    for i, (a, b) in enumerate(zip(fused, reference, strict=True)):
        assert (a - b).abs().max() < TOLERANCE, f"call {i} differs by {(a - b).abs().max():.2e}"


@torch.no_grad()
def test_a_cache_view_equals_a_gather_of_the_same_slots(tiny_model):
    generator = torch.Generator().manual_seed(8)
    embeds = torch.randn(2, 3, tiny_model.config.backbone.dim, generator=generator)
    starts = torch.tensor([0, 5])
    outputs = []
    for slots in (None, torch.tensor([0, 1])):
        cache = tiny_model.new_kv_cache(num_slots=3, max_rows=32)
        outputs.append(tiny_model.backbone_forward(embeds, cache, slots, starts, kv_len=16))
    assert torch.equal(outputs[0], outputs[1])
