"""The held-out split: whole source files, chosen by a seeded hash, so it is the same on every run with the
same --seed and held-out speech is never a neighbour of a training clip.

Sources are taken in hash order until they hold `fraction` of the audio, at least one source (when there
are two or more) and never all of them. With a single source file there is no other way to hold anything
out: its last clips in time are held out instead (a contiguous tail, still never overlapping training).
"""

from __future__ import annotations

import hashlib


def _order(source: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}\0{source}".encode()).hexdigest()


def heldout_sources(seconds_by_source: dict[str, float], fraction: float, seed: int) -> set[str]:
    """The sources whose clips are held out."""
    if fraction <= 0 or len(seconds_by_source) < 2:
        return set()
    total = sum(seconds_by_source.values())
    chosen: set[str] = set()
    held = 0.0
    for source in sorted(seconds_by_source, key=lambda s: _order(s, seed)):
        if len(chosen) == len(seconds_by_source) - 1 or (chosen and held >= fraction * total):
            break
        chosen.add(source)
        held += seconds_by_source[source]
    return chosen


def heldout_tail(num_clips: int, fraction: float) -> int:
    """How many of a single source's last clips to hold out: at least one of two or more, never all."""
    if fraction <= 0 or num_clips < 2:
        return 0
    return min(num_clips - 1, max(1, round(fraction * num_clips)))
