"""Cutting a whole recording into spans of speech, from per-window speech probabilities (a VAD's output).

Pure functions over arrays, so they can be tested on synthetic signals:

1. windows with p ≥ threshold start speech, speech continues while p ≥ threshold - 0.15 (hysteresis);
2. voiced runs shorter than `min_speech_seconds` are dropped (clicks, coughs);
3. runs separated by less than `merge_gap_seconds` are merged (pauses inside a sentence);
4. each span is padded by `pad_seconds` on both sides (never past a neighbour or the recording's ends);
5. spans longer than `max_seconds` are split at their quietest point (lowest 50 ms energy) in the range
   that leaves both parts at least `min_piece_seconds`, repeatedly, until none is too long.

`pipeline/vad_scores.py` gives the probabilities for a recording with Silero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from csmstream.errors import BadRequest

HYSTERESIS = 0.15  # as pipeline/vad.py: speech continues until p drops this far below the threshold
QUIET_BLOCK_SECONDS = 0.05  # the energy resolution of the quietest-point search


@dataclass(frozen=True)
class SegmentConfig:
    threshold: float = 0.5
    min_speech_seconds: float = 0.25
    merge_gap_seconds: float = 0.3
    pad_seconds: float = 0.2
    max_seconds: float = 10.0
    min_piece_seconds: float = 1.0  # a split never leaves a part shorter than this

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise BadRequest(f"speech threshold must be between 0 and 1, got {self.threshold}")
        if self.max_seconds < 2 * self.min_piece_seconds:
            raise BadRequest(
                f"max_seconds ({self.max_seconds}) must be at least twice min_piece_seconds "
                f"({self.min_piece_seconds}) so a long span can be split"
            )


@dataclass(frozen=True)
class SpeechSpan:
    start_sample: int  # inclusive
    end_sample: int  # exclusive

    @property
    def num_samples(self) -> int:
        return self.end_sample - self.start_sample

    def seconds(self, sample_rate: int) -> float:
        return self.num_samples / sample_rate


def voiced_runs(probabilities: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(N,) per-window probabilities → [(first_window, end_window)) runs of speech, with hysteresis."""
    runs: list[tuple[int, int]] = []
    start: int | None = None
    low = max(threshold - HYSTERESIS, 0.01)
    for index, p in enumerate(np.asarray(probabilities, dtype=np.float64)):
        if start is None and p >= threshold:
            start = index
        elif start is not None and p < low:
            runs.append((start, index))
            start = None
    if start is not None:
        runs.append((start, len(probabilities)))
    return runs


def speech_spans(
    samples: np.ndarray,
    sample_rate: int,
    probabilities: np.ndarray,
    window_seconds: float,
    config: SegmentConfig | None = None,
) -> list[SpeechSpan]:
    """(S,) audio + (N,) speech probabilities, one per `window_seconds` window from the start → the spans of
    speech in samples of `samples`, in order, not overlapping, none longer than `config.max_seconds`."""
    config = config or SegmentConfig()
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise BadRequest(f"speech_spans wants mono audio (S,), got {samples.shape}")
    total = len(samples)
    window = window_seconds * sample_rate  # samples per window (may be fractional after resampling)

    def to_sample(window_index: int) -> int:
        return min(total, int(round(window_index * window)))

    runs = [
        (to_sample(a), to_sample(b))
        for a, b in voiced_runs(probabilities, config.threshold)
        if (b - a) * window_seconds >= config.min_speech_seconds
    ]
    merged: list[list[int]] = []
    merge_gap = int(config.merge_gap_seconds * sample_rate)
    for start, end in runs:
        if merged and start - merged[-1][1] < merge_gap:
            merged[-1][1] = end
        else:
            merged.append([start, end])

    pad = int(config.pad_seconds * sample_rate)
    padded: list[SpeechSpan] = []
    for index, (start, end) in enumerate(merged):
        # padding reaches at most halfway to a neighbour, so padded spans never overlap
        left_limit = 0 if index == 0 else (merged[index - 1][1] + start) // 2
        right_limit = total if index == len(merged) - 1 else (end + merged[index + 1][0]) // 2
        padded.append(SpeechSpan(max(left_limit, start - pad), min(right_limit, end + pad)))

    result: list[SpeechSpan] = []
    for span in padded:
        result.extend(
            split_long_span(samples, sample_rate, span, config.max_seconds, config.min_piece_seconds)
        )
    return [span for span in result if span.num_samples > 0]


def split_long_span(
    samples: np.ndarray,
    sample_rate: int,
    span: SpeechSpan,
    max_seconds: float,
    min_piece_seconds: float = 1.0,
) -> list[SpeechSpan]:
    """A span → pieces of at most `max_seconds`, each cut at the quietest 50 ms block allowed."""
    max_samples = int(max_seconds * sample_rate)
    min_piece = int(min_piece_seconds * sample_rate)
    block = max(1, int(QUIET_BLOCK_SECONDS * sample_rate))
    pieces: list[SpeechSpan] = []
    start, end = span.start_sample, span.end_sample
    while end - start > max_samples:
        # the cut keeps the first part within max_samples and both parts at least min_piece long
        lo, hi = start + min_piece, min(start + max_samples, end - min_piece)
        cut = _quietest_point(samples, lo, hi, block) if hi > lo else start + max_samples
        pieces.append(SpeechSpan(start, cut))
        start = cut
    pieces.append(SpeechSpan(start, end))
    return pieces


def _quietest_point(samples: np.ndarray, lo: int, hi: int, block: int) -> int:
    """The middle of the lowest-energy `block` whose middle lies in [lo, hi]."""
    first, last = max(0, lo - block // 2), min(len(samples), hi + block // 2)
    region = np.asarray(samples[first:last], dtype=np.float64) ** 2
    if len(region) < block:
        return (lo + hi) // 2
    energy = np.convolve(region, np.ones(block), mode="valid")  # energy[i]: block starting at first + i
    best = int(np.argmin(energy))
    return int(np.clip(first + best + block // 2, lo, hi))
