"""Our CsmModel against transformers' CsmForConditionalGeneration holding identical random weights."""

from __future__ import annotations

import torch
from model_helpers import TINY_TEXT_VOCAB, audio_rows, text_rows

from csmstream.model.sampling import BatchSampling, SamplingParams

TOLERANCE = 1e-4


def _mixed_rows(seed: int, num_text: int = 6, num_audio: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Text rows followed by audio rows, like a prompt with a context segment: tokens, mask (1, T, 33)."""
    generator = torch.Generator().manual_seed(seed)
    text_tokens, text_mask = text_rows(torch.randint(0, TINY_TEXT_VOCAB, (num_text,), generator=generator))
    audio_tokens, audio_mask = audio_rows(torch.randint(0, 2048, (num_audio, 32), generator=generator))
    return torch.cat((text_tokens, audio_tokens))[None], torch.cat((text_mask, audio_mask))[None]


@torch.no_grad()
def test_embeddings_match_transformers(tiny_pair):
    ours, theirs = tiny_pair
    tokens, mask = _mixed_rows(seed=0)
    embeds = ours.embed_rows(tokens, mask)[0]
    expected_text = theirs.embed_text_tokens(tokens[0, :6, 32])
    expected_audio = theirs.backbone_model.embed_tokens(tokens[:, 6:, :32])[0]
    assert torch.allclose(embeds[:6], expected_text, atol=1e-6), "text rows embed differently"
    assert torch.allclose(embeds[6:], expected_audio, atol=1e-5), "audio rows embed differently"


@torch.no_grad()
def test_embed_rows_ignores_masked_columns(tiny_model):
    tokens, mask = _mixed_rows(seed=1)
    garbage = torch.where(mask, tokens, torch.full_like(tokens, 10**6))  # out-of-range ids where masked
    assert torch.equal(tiny_model.embed_rows(garbage, mask), tiny_model.embed_rows(tokens, mask))


@torch.no_grad()
def test_backbone_logits_match_transformers(tiny_pair):
    ours, theirs = tiny_pair
    tokens, mask = _mixed_rows(seed=2)
    embeds = ours.embed_rows(tokens, mask)
    expected = theirs(inputs_embeds=embeds).logits  # (1, T, V)
    start = torch.zeros(1, dtype=torch.int64)
    # without a cache, and through a cache slot in two chunks (prefill, then rows one by one)
    no_cache = ours.codebook0_logits(ours.backbone_forward(embeds, None, None, start))
    cache = ours.new_kv_cache(num_slots=3, max_rows=32)
    slot = torch.tensor([2])
    first = ours.backbone_forward(embeds[:, :7], cache, slot, start, kv_len=16)
    rest = [
        ours.backbone_forward(embeds[:, t : t + 1], cache, slot, start + t, kv_len=16) for t in range(7, 11)
    ]
    cached = ours.codebook0_logits(torch.cat([first, *rest], dim=1))
    assert expected.abs().max() > 0.1, "reference logits are degenerate; the comparison would be empty"
    assert (no_cache - expected).abs().max() < TOLERANCE
    assert (cached - expected).abs().max() < TOLERANCE


@torch.no_grad()
def test_depth_decoder_logits_match_transformers(tiny_pair):
    ours, theirs = tiny_pair
    generator = torch.Generator().manual_seed(4)
    hidden = torch.randn(3, 64, generator=generator)
    codes = torch.randint(0, 2048, (3, 32), generator=generator)
    # transformers: position 0 is a placeholder replaced by the backbone state, then codes 0..30
    placeholder_ids = torch.nn.functional.pad(codes[:, :-1], (1, 0))
    expected = theirs.depth_decoder(input_ids=placeholder_ids, backbone_last_hidden_state=hidden).logits
    actual = ours.depth_decoder_logits(hidden, codes)
    assert actual.shape == expected.shape == (3, 31, 2051)
    assert (actual - expected).abs().max() < TOLERANCE


@torch.no_grad()
def test_greedy_frames_match_transformers_generate(tiny_pair):
    ours, theirs = tiny_pair
    num_frames = 20
    ids = torch.randint(0, TINY_TEXT_VOCAB, (1, 9), generator=torch.Generator().manual_seed(5))
    expected = theirs.generate(
        input_ids=ids, max_new_tokens=num_frames, do_sample=False, depth_decoder_do_sample=False
    )[0]  # (num_frames, K)

    tokens, mask = text_rows(ids[0])
    cache = ours.new_kv_cache(num_slots=1, max_rows=64)
    start = torch.zeros(1, dtype=torch.int64)
    hidden = ours.backbone_forward(ours.embed_rows(tokens[None], mask[None]), cache, None, start, kv_len=64)
    sampling = BatchSampling.from_params([SamplingParams(greedy=True)])
    frames = []
    for n in range(num_frames):
        codes = ours.generate_frame(hidden[:, -1], sampling)
        frames.append(codes[0])
        row_tokens, row_mask = ours.frame_rows(codes)
        position = torch.tensor([ids.shape[1] + n])
        hidden = ours.backbone_forward(
            ours.embed_rows(row_tokens, row_mask), cache, None, position, kv_len=64
        )
    actual = torch.stack(frames)
    assert expected.shape == (num_frames, 32), f"transformers stopped early: {tuple(expected.shape)}"
    assert len(set(actual[:, 0].tolist())) > 1, "codebook 0 never changes: the test would prove little"
    assert torch.equal(actual, expected)


@torch.no_grad()
def test_backbone_matches_transformers_far_into_the_sequence(tiny_pair):
    """Rows at positions ~1500, where Llama-3 RoPE scaling of the low frequencies matters."""
    ours, theirs = tiny_pair
    tokens, mask = _mixed_rows(seed=6)
    embeds = ours.embed_rows(tokens, mask)
    start = 1500
    positions = torch.arange(start, start + embeds.shape[1])[None]
    expected = theirs(inputs_embeds=embeds, position_ids=positions).logits
    actual = ours.codebook0_logits(ours.backbone_forward(embeds, None, None, torch.tensor([start])))
    assert (actual - expected).abs().max() < TOLERANCE


def test_llama3_rope_frequencies_match_transformers():
    """CSM-1B's real settings (head_dim 64 backbone, 128 depth decoder), against transformers' own function."""
    from transformers import CsmConfig as TheirConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    from csmstream.model.csm_config import RopeConfig
    from csmstream.model.llama import rope_inverse_frequencies

    rope = {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 32.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 2048,
    }
    for head_dim in (64, 128):
        config = TheirConfig(
            hidden_size=head_dim * 4, num_attention_heads=4, head_dim=head_dim, rope_parameters=rope
        )
        expected, _ = ROPE_INIT_FUNCTIONS["llama3"](config, torch.device("cpu"))
        actual = rope_inverse_frequencies(RopeConfig.from_dict({"rope_parameters": rope}, "test"), head_dim)
        assert torch.allclose(actual, expected, rtol=1e-6, atol=0), f"head_dim {head_dim}"
        assert not torch.allclose(actual, 1 / 500000.0 ** (torch.arange(0, head_dim, 2) / head_dim)), (
            "unscaled"
        )
