"""Choosing a voice's reference clips from many candidate clips of one speaker.

CSM takes a voice from a few seconds of clean speech with its transcript: 5 to 20 s in all works well (less
and the voice is vague, more and every request pays for a long prompt). Candidates come scored (higher is
cleaner, see `voices/clone.py`); the best ones are taken while the total stays within the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.errors import BadRequest

DEFAULT_MIN_SECONDS = 5.0
DEFAULT_MAX_SECONDS = 20.0


@dataclass(frozen=True)
class ReferenceCandidate:
    audio: np.ndarray  # (S,) float32 mono 24 kHz
    text: str
    score: float = 0.0  # higher is better (cleaner speech)

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def total_seconds(candidates: Sequence[ReferenceCandidate]) -> float:
    return sum(candidate.seconds for candidate in candidates)


def pick_references(
    candidates: Sequence[ReferenceCandidate],
    min_seconds: float = DEFAULT_MIN_SECONDS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> list[ReferenceCandidate]:
    """Best-scored first while the total stays ≤ max_seconds; BadRequest if the best selection has < min_seconds.

    A candidate that would overflow the budget is skipped, and a shorter one further down may still fit.
    Ties keep the input order (stable sort), so the same candidates always give the same picks. Candidates
    without text or audio are never picked. The picks come back in score order (best first).
    """
    if min_seconds > max_seconds:
        raise BadRequest(f"min_seconds ({min_seconds}) must not exceed max_seconds ({max_seconds})")
    usable = [c for c in candidates if c.text.strip() and len(c.audio) > 0]
    ranked = sorted(usable, key=lambda c: -c.score)
    picked: list[ReferenceCandidate] = []
    total = 0.0
    for candidate in ranked:
        if total + candidate.seconds <= max_seconds + 1e-9:
            picked.append(candidate)
            total += candidate.seconds
    if total + 1e-9 < min_seconds:
        available = total_seconds(usable)
        raise BadRequest(
            f"only {total:.1f} s of clear speech; at least {min_seconds:g} s needed "
            f"({len(usable)} usable clip(s), {available:.1f} s in all)"
        )
    return picked
