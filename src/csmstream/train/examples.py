"""A dataset clip → the rows of one training example, laid out exactly as inference lays out a prompt.

What is learnt is what is generated: at inference the prompt is [references / context segments] then the text
rows of the utterance, and the model continues with the utterance's frames and the all-zero end frame. A
training example is the same rows with the frames filled in:

    [context clip: text rows, frames, end frame]   (optional, not learnt: like a voice reference)
    target text rows                               (not learnt)
    target frames, all-zero end frame              (learnt)

`learn` marks the learnt rows; `codes` holds the codes every row carries (zeros on text rows), so
`objective.amortised_labels(codes, learn)` turns a batch into labels for `csm_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from csmstream.model.tokenizer import Segment, TextTokenizer, segment_rows
from csmstream.train.dataset import Clip, Dataset


@dataclass
class Example:
    clip_id: str
    tokens: torch.Tensor  # (T, K + 1) int64
    mask: torch.Tensor  # (T, K + 1) bool
    learn: torch.Tensor  # (T,) bool: the target's frames and end frame
    context_id: str | None = None  # the clip prepended as context, if any

    @property
    def num_rows(self) -> int:
        return self.tokens.shape[0]

    @property
    def num_learnt_frames(self) -> int:
        return int(self.learn.sum())


@dataclass
class Batch:
    tokens: torch.Tensor  # (B, T, K + 1) int64, padded at the end of each row sequence
    mask: torch.Tensor  # (B, T, K + 1) bool, False on padding
    codes: torch.Tensor  # (B, T, K) int64: the audio codes each row carries (0 on text rows and padding)
    learn: torch.Tensor  # (B, T) bool, False on padding

    @property
    def num_learnt_frames(self) -> int:
        return int(self.learn.sum())

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            *(t.to(device, non_blocking=True) for t in (self.tokens, self.mask, self.codes, self.learn))
        )


def build_example(
    tokenizer: TextTokenizer,
    target: Segment,
    context: Segment | None = None,
    num_codebooks: int = 32,
    clip_id: str = "",
    context_id: str | None = None,
) -> Example:
    """Rows of `context` (if any; codes required) then `target` (codes required), target audio rows learnt."""
    assert target.codes is not None, "the target segment needs its codes"
    parts = []
    if context is not None:
        assert context.codes is not None, "a context segment needs its codes"
        parts.append(segment_rows(tokenizer, context, num_codebooks))
    target_tokens, target_mask = segment_rows(tokenizer, target, num_codebooks)
    parts.append((target_tokens, target_mask))
    tokens = torch.cat([p[0] for p in parts])
    mask = torch.cat([p[1] for p in parts])
    num_target_text_rows = len(tokenizer.segment_ids(target.speaker, target.text))
    learn = torch.zeros(tokens.shape[0], dtype=torch.bool)
    learn[tokens.shape[0] - target_tokens.shape[0] + num_target_text_rows :] = True  # frames + end frame
    return Example(clip_id=clip_id, tokens=tokens, mask=mask, learn=learn, context_id=context_id)


def collate(examples: list[Example], num_codebooks: int) -> Batch:
    """Examples → one batch padded at the end to the longest (padding: mask False, learn False)."""
    assert examples, "a batch needs at least one example"
    batch, num_rows = len(examples), max(e.num_rows for e in examples)
    tokens = torch.zeros(batch, num_rows, num_codebooks + 1, dtype=torch.int64)
    mask = torch.zeros(batch, num_rows, num_codebooks + 1, dtype=torch.bool)
    learn = torch.zeros(batch, num_rows, dtype=torch.bool)
    for b, example in enumerate(examples):
        tokens[b, : example.num_rows] = example.tokens
        mask[b, : example.num_rows] = example.mask
        learn[b, : example.num_rows] = example.learn
    codes = torch.where(mask[..., :num_codebooks], tokens[..., :num_codebooks], 0)  # (B, T, K)
    return Batch(tokens=tokens, mask=mask, codes=codes, learn=learn)


class ExampleMaker:
    """Builds examples from a dataset's clips; codes are read once and kept (1 h of codes ≈ 12 MB)."""

    def __init__(self, dataset: Dataset, tokenizer: TextTokenizer, max_rows: int) -> None:
        self.dataset = dataset
        self.tokenizer = tokenizer
        self.max_rows = max_rows
        self.num_codebooks = dataset.num_codebooks
        self._codes: dict[str, torch.Tensor] = {}

    def codes(self, clip: Clip) -> torch.Tensor:
        """(frames, K) int64 codes of a clip (cached)."""
        if clip.id not in self._codes:
            self._codes[clip.id] = self.dataset.codes(clip)
        return self._codes[clip.id]

    def num_rows(self, clip: Clip) -> int:
        """Rows the clip takes as a segment: text rows + frames + the end frame."""
        return len(self.tokenizer.segment_ids(clip.speaker, clip.text)) + clip.frames + 1

    def fits(self, clip: Clip) -> bool:
        return self.num_rows(clip) <= self.max_rows

    def example(self, clip: Clip, context: Clip | None = None) -> Example:
        """The example of `clip`, after `context` when given and when both fit in `max_rows` together."""
        if context is not None and self.num_rows(context) + self.num_rows(clip) > self.max_rows:
            context = None
        return build_example(
            self.tokenizer,
            self._segment(clip),
            self._segment(context) if context is not None else None,
            self.num_codebooks,
            clip_id=clip.id,
            context_id=context.id if context is not None else None,
        )

    def _segment(self, clip: Clip) -> Segment:
        return Segment(speaker=clip.speaker, text=clip.text, codes=self.codes(clip))
