"""The CSM training objective against transformers' CsmForConditionalGeneration loss, same tiny checkpoint."""

from __future__ import annotations

import pytest
import torch

from csmstream.model.checkpoint import load_checkpoint
from csmstream.train.objective import BACKBONE_ONLY, IGNORE, amortised_labels, csm_loss

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def pair(tiny_checkpoint_dir):
    transformers = pytest.importorskip("transformers")
    ours = load_checkpoint(str(tiny_checkpoint_dir), device="cpu", dtype="float32", progress=False).model
    theirs = transformers.CsmForConditionalGeneration.from_pretrained(str(tiny_checkpoint_dir)).float().eval()
    return ours.eval(), theirs


def _batch(model, seed: int = 0):
    """Two prompts of text rows then audio rows (the second padded at the end), and (B, T, K) labels with
    ignored context frames, backbone-only (-101) frames and fully learnt frames."""
    generator = torch.Generator().manual_seed(seed)
    k = model.config.num_codebooks
    batch, num_text, num_audio = 2, 5, 9
    t = num_text + num_audio
    tokens = torch.zeros(batch, t, k + 1, dtype=torch.int64)
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    tokens[:, :num_text, k] = torch.randint(
        0, model.config.text_vocab_size, (batch, num_text), generator=generator
    )
    mask[:, :num_text, k] = True
    codes = torch.randint(0, model.config.codebook_size, (batch, num_audio, k), generator=generator)
    tokens[:, num_text:, :k] = codes
    mask[:, num_text:, :k] = True
    mask[1, -2:] = False  # padding at the end of the second prompt
    labels = torch.full((batch, t, k), IGNORE, dtype=torch.int64)
    labels[:, num_text:] = codes
    labels[:, num_text : num_text + 2] = IGNORE  # context audio the model should not learn
    labels[1, -2:] = IGNORE  # padding
    backbone_only = [(0, 8), (0, 9), (0, 12), (1, 7), (1, 10)]
    for b, row in backbone_only:
        labels[b, row, 1:] = BACKBONE_ONLY
    return tokens, mask, labels


def test_loss_matches_transformers(pair):
    ours, theirs = pair
    tokens, mask, labels = _batch(ours)
    assert (labels == BACKBONE_ONLY).any() and (labels[..., 0] == IGNORE).any()
    with torch.no_grad():
        actual = csm_loss(ours, tokens, mask, labels)
        # transformers' (B, T, K) labels: a backbone-only frame is [code0, -100, ..., -100]
        their_labels = labels.masked_fill(labels == BACKBONE_ONLY, IGNORE)
        expected = theirs(inputs_embeds=ours.embed_rows(tokens, mask), labels=their_labels)
    assert actual.num_depth_frames == 2 * 9 - 2 * 2 - 2 - 5 and actual.num_backbone_frames == 2 * 7 - 2
    assert expected.depth_decoder_loss > 1.0, "reference loss is degenerate"
    assert abs(actual.backbone_loss - expected.backbone_loss) < TOLERANCE
    assert abs(actual.depth_loss - expected.depth_decoder_loss) < TOLERANCE
    assert abs(actual.loss - expected.loss) < TOLERANCE


def test_gradients_reach_backbone_and_depth_decoder(pair):
    ours, _ = pair
    tokens, mask, labels = _batch(ours, seed=1)
    ours.zero_grad(set_to_none=True)
    csm_loss(ours, tokens, mask, labels).loss.backward()
    try:
        for name, parameter in ours.named_parameters():
            if name.startswith(
                ("backbone.", "depth_decoder.", "projection.", "codebook0_head", "audio_head")
            ):
                assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        assert ours.projection.weight.grad.abs().sum() > 0
        assert ours.audio_head.grad.abs().sum() > 0
        # the embeddings too: text rows feed the backbone, codes the backbone and the depth decoder
        assert ours.text_embeddings.weight.grad.abs().sum() > 0
        assert ours.depth_audio_embeddings.weight.grad.abs().sum() > 0
    finally:
        ours.zero_grad(set_to_none=True)


def test_amortised_labels_keep_codebook0_and_sample_a_sixteenth():
    k, batch, frames = 4, 4, 200
    codes = torch.randint(0, 2048, (batch, frames, k), generator=torch.Generator().manual_seed(0))
    learn = torch.rand(batch, frames, generator=torch.Generator().manual_seed(1)) < 0.8
    labels = amortised_labels(codes, learn, generator=torch.Generator().manual_seed(7))
    again = amortised_labels(codes, learn, generator=torch.Generator().manual_seed(7))
    assert torch.equal(labels, again), "same seed, different draw"
    assert torch.equal(labels[..., 0], torch.where(learn, codes[..., 0], IGNORE))
    assert (labels[~learn] == IGNORE).all()
    depth = (labels[..., 1:] >= 0).all(dim=-1)
    assert not (depth & ~learn).any()
    assert torch.equal(labels[depth], codes[depth])
    assert (labels[learn & ~depth][:, 1:] == BACKBONE_ONLY).all()
    assert int(depth.sum()) == round(int(learn.sum()) / 16)
    other = amortised_labels(codes, learn, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(other, labels), "the draw ignores the seed"
