"""CSM's training objective on our `CsmModel`, matching transformers' `CsmForConditionalGeneration.forward`.

Labels are (B, T, K) audio codes aligned with the prompt rows: `labels[b, t]` is the frame that row t holds,
and the loss teaches the model to predict it from rows 0..t-1 (the shift is done here, as transformers does).

- `-100` in `labels[..., 0]`: no backbone loss at that frame (text rows, padding, context not to learn).
- a frame whose codebooks 1..K-1 are all negative (`-100`, or `-101` = "backbone only"): no depth-decoder loss.
  `-101` is Sesame's compute amortisation: the depth decoder trains on a random subset (1/16) of the frames.
  transformers' (B, T, K) labels write those frames `[code0, -100, ..., -100]`; `-101` is accepted in their place.

loss = backbone_loss + depth_loss, both token means (cross-entropy, `ignore_index=-100`):
- backbone_loss: `codebook0_head(hidden[t - 1])` against `labels[t, 0]`, averaged over the labelled frames;
- depth_loss: for each depth frame t, the depth decoder fed [hidden[t - 1], embeddings of labels[t, 0..K-2]]
  (teacher forcing on the labels themselves), its positions 1..K-1 against `labels[t, 1..K-1]`, averaged over
  every (frame, codebook) label, not per frame. `hidden` is the backbone's final (normed) hidden state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from csmstream.model.csm import CsmModel

IGNORE = -100  # no loss
BACKBONE_ONLY = -101  # codebook 0 counts, the depth decoder skips the frame


@dataclass
class CsmLoss:
    loss: torch.Tensor  # backbone_loss + depth_loss
    backbone_loss: torch.Tensor
    depth_loss: torch.Tensor
    num_backbone_frames: int
    num_depth_frames: int


def _mean_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Token-mean cross-entropy in float32 over targets != -100; 0 (still in the graph) when there are none."""
    logits = logits.reshape(-1, logits.shape[-1]).float()
    targets = targets.reshape(-1)
    if not (targets != IGNORE).any():
        return logits.sum() * 0.0  # transformers would return NaN here; a zero keeps a training step sane
    return F.cross_entropy(logits, targets, ignore_index=IGNORE, reduction="mean")


def csm_loss(model: CsmModel, tokens: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> CsmLoss:
    """tokens, mask (B, T, K + 1) prompt rows and labels (B, T, K) (see the module docstring) → the losses.

    Rows attend causally among themselves (no cache, positions 0..T-1); padding belongs at the end of a row
    sequence, with `-100` labels. A frame at row 0 cannot be learnt (nothing precedes it).
    """
    k = model.config.num_codebooks
    assert labels.shape == tokens.shape[:-1] + (k,), (
        f"labels {tuple(labels.shape)} must be (B, T, {k}) for tokens {tuple(tokens.shape)}"
    )
    assert not (labels[..., 0] == BACKBONE_ONLY).any(), (
        "-101 marks codebooks 1..K-1; codebook 0 holds the code"
    )
    labels = labels.masked_fill(labels == BACKBONE_ONLY, IGNORE)

    batch = tokens.shape[0]
    start = torch.zeros(batch, dtype=torch.int64, device=tokens.device)
    hidden = model.backbone_forward(model.embed_rows(tokens, mask), None, None, start)  # (B, T, D)

    # backbone: row t - 1 predicts codebook 0 of frame t (transformers pads the labels with -100 and shifts)
    backbone_targets = labels[:, 1:, 0]
    backbone_logits = model.codebook0_head(hidden[:, :-1])  # (B, T - 1, V)
    backbone_loss = _mean_cross_entropy(backbone_logits, backbone_targets)

    # depth decoder: the frames whose codebooks 1..K-1 are not all ignored
    depth_frames = ~(labels[..., 1:] < 0).all(dim=-1)  # (B, T)
    assert not depth_frames[:, 0].any(), "a depth-decoder frame at row 0 has no backbone state before it"
    frame_labels = labels[depth_frames]  # (N, K)
    assert (frame_labels[:, :-1] >= 0).all(), (
        "a depth-decoder frame needs codes in codebooks 0..K-2: they are its teacher-forced inputs"
    )
    rows, cols = depth_frames.nonzero(as_tuple=True)
    depth_hidden = hidden[rows, cols - 1]  # (N, D): the state that predicted the frame
    if frame_labels.shape[0] > 0:
        # the last column is never an input, only a target: keep -100 out of the embedding lookup
        codes = torch.cat((frame_labels[:, :-1], frame_labels[:, -1:].clamp(min=0)), dim=1)
        depth_logits = model.depth_decoder_logits(depth_hidden, codes)  # (N, K - 1, V)
        depth_loss = _mean_cross_entropy(depth_logits, frame_labels[:, 1:])
    else:
        depth_loss = hidden.sum() * 0.0

    return CsmLoss(
        loss=backbone_loss + depth_loss,
        backbone_loss=backbone_loss,
        depth_loss=depth_loss,
        num_backbone_frames=int((backbone_targets != IGNORE).sum()),
        num_depth_frames=int(frame_labels.shape[0]),
    )


def amortised_labels(
    codes: torch.Tensor,
    learn_mask: torch.Tensor,
    fraction: float = 1 / 16,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """codes (B, T, K) and learn_mask (B, T) bool ("learn this frame") → labels (B, T, K) for `csm_loss`.

    Frames not learnt are all `-100`. Every learnt frame keeps its codebook-0 code; a random `fraction` of
    them (at least one when any frame is learnt) keeps all its codes for the depth decoder, the others get
    `-101` in codebooks 1..K-1. The draw is `round(fraction * n)` frames without replacement, from `generator`.
    """
    assert codes.shape[:-1] == learn_mask.shape, (
        f"codes {tuple(codes.shape)} and learn_mask {tuple(learn_mask.shape)} disagree"
    )
    assert 0.0 <= fraction <= 1.0, f"fraction must be in [0, 1], got {fraction}"
    learn_mask = learn_mask.bool()
    labels = torch.full_like(codes, IGNORE)
    labels[..., 0] = torch.where(learn_mask, codes[..., 0], IGNORE)
    labels[..., 1:] = torch.where(learn_mask[..., None], BACKBONE_ONLY, IGNORE)
    learnt = learn_mask.nonzero(as_tuple=True)
    n = learnt[0].shape[0]
    if n == 0 or fraction == 0.0:
        return labels
    count = max(1, round(fraction * n))
    chosen = torch.randperm(n, generator=generator)[:count].to(codes.device)
    rows, cols = learnt[0][chosen], learnt[1][chosen]
    labels[rows, cols] = codes[rows, cols]
    return labels
