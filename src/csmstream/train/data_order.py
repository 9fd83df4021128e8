"""Which clips go into which batch, in which order: a pure function of (seed, epoch), so a resumed run that
knows its (epoch, batch index) sees exactly the batches an uninterrupted run would have seen.

An epoch: the training clips shuffled, each given (with probability `context_probability`) another clip of
the same speaker as context, then packed into batches of at most `batch_frames` rows (padded rows count:
B × longest). Examples are sorted by length within windows of 64 so that batches waste little padding,
and the batches themselves are shuffled. A clip longer than `batch_frames` goes alone in its batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from csmstream.train.dataset import Clip

SORT_WINDOW = 64  # examples sorted by length within windows of this many

Planned = tuple[Clip, Clip | None]  # (target clip, context clip or None)


def pack(
    items: Sequence[Planned], num_rows: Callable[[Planned], int], batch_frames: int
) -> list[list[Planned]]:
    """Consecutive items → batches of at most `batch_frames` padded rows (len × longest); never empty."""
    batches: list[list[Planned]] = []
    current: list[Planned] = []
    longest = 0
    for item in items:
        rows = num_rows(item)
        if current and (len(current) + 1) * max(longest, rows) > batch_frames:
            batches.append(current)
            current, longest = [], 0
        current.append(item)
        longest = max(longest, rows)
    if current:
        batches.append(current)
    return batches


def plan_epoch(
    clips: Sequence[Clip],
    num_rows: Callable[[Clip], int],
    seed: int,
    epoch: int,
    batch_frames: int,
    context_probability: float,
    max_rows: int,
) -> list[list[Planned]]:
    """The batches of one training epoch (see the module docstring). `num_rows(clip)`: the rows of a clip
    as one segment; a context that would push an example past `max_rows` is left out."""
    rng = np.random.default_rng([seed, epoch])
    by_speaker: dict[int, list[Clip]] = {}
    for clip in clips:
        by_speaker.setdefault(clip.speaker, []).append(clip)

    planned: list[Planned] = []
    for index in rng.permutation(len(clips)):
        clip = clips[int(index)]
        others = [c for c in by_speaker[clip.speaker] if c.id != clip.id]
        # both draws always happen, so the order of later draws does not depend on earlier outcomes
        use_context = rng.random() < context_probability
        pick = int(rng.integers(len(others))) if others else 0
        context = others[pick] if use_context and others else None
        if context is not None and num_rows(context) + num_rows(clip) > max_rows:
            context = None
        planned.append((clip, context))

    def example_rows(item: Planned) -> int:
        clip, context = item
        return num_rows(clip) + (num_rows(context) if context is not None else 0)

    batches: list[list[Planned]] = []
    for start in range(0, len(planned), SORT_WINDOW):
        window = sorted(planned[start : start + SORT_WINDOW], key=example_rows)
        batches.extend(pack(window, example_rows, batch_frames))
    order = rng.permutation(len(batches))
    return [batches[int(i)] for i in order]


def plan_eval(
    clips: Sequence[Clip], num_rows: Callable[[Clip], int], batch_frames: int
) -> list[list[Planned]]:
    """Held-out batches: every clip once, no context, sorted by length (a fixed order: no randomness)."""
    items: list[Planned] = sorted(((clip, None) for clip in clips), key=lambda item: num_rows(item[0]))
    return pack(items, lambda item: num_rows(item[0]), batch_frames)


@dataclass
class DataCursor:
    """Where the training run is in its data: epoch and batch index within that epoch's plan."""

    epoch: int = 0
    batch_index: int = 0

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch_index": self.batch_index}


class BatchStream:
    """Endless batches of training clips in plan order; `cursor` is the position to save and restore."""

    def __init__(
        self,
        clips: Sequence[Clip],
        num_rows: Callable[[Clip], int],
        seed: int,
        batch_frames: int,
        context_probability: float,
        max_rows: int,
        cursor: DataCursor | None = None,
    ) -> None:
        assert clips, "no training clips"
        self.clips = list(clips)
        self.num_rows = num_rows
        self.seed = seed
        self.batch_frames = batch_frames
        self.context_probability = context_probability
        self.max_rows = max_rows
        self.cursor = cursor or DataCursor()
        self._plan: tuple[int, list[list[Planned]]] | None = None

    def plan(self, epoch: int) -> list[list[Planned]]:
        if self._plan is None or self._plan[0] != epoch:
            batches = plan_epoch(
                self.clips,
                self.num_rows,
                self.seed,
                epoch,
                self.batch_frames,
                self.context_probability,
                self.max_rows,
            )
            self._plan = (epoch, batches)
        return self._plan[1]

    @property
    def batches_per_epoch(self) -> int:
        return len(self.plan(self.cursor.epoch))

    def next(self) -> tuple[list[Planned], bool]:
        """The next batch, and whether it was the last of its epoch (the cursor then moves to the next)."""
        batches = self.plan(self.cursor.epoch)
        batch = batches[self.cursor.batch_index]
        self.cursor.batch_index += 1
        epoch_ended = self.cursor.batch_index >= len(batches)
        if epoch_ended:
            self.cursor.epoch += 1
            self.cursor.batch_index = 0
        return batch, epoch_ended
