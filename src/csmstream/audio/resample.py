"""Bring any audio to what CSM and Mimi use: mono float32 at 24 kHz."""

from __future__ import annotations

import numpy as np
import soxr

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.errors import BadRequest


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(S,) or (S, C) → (S,) float32, channels averaged (a downmix, not a pick)."""
    if samples.ndim == 1:
        return samples.astype(np.float32, copy=False)
    if samples.ndim != 2:
        raise BadRequest(f"audio must have shape (samples,) or (samples, channels), got {samples.shape}")
    return samples.astype(np.float32, copy=False).mean(axis=1)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """(S,) float32 at `from_rate` → (S',) float32 at `to_rate` (soxr, high quality)."""
    if from_rate <= 0 or to_rate <= 0:
        raise BadRequest(f"sample rates must be positive, got {from_rate} → {to_rate}")
    if from_rate == to_rate:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples.astype(np.float32, copy=False), from_rate, to_rate, quality="HQ").astype(
        np.float32, copy=False
    )


def to_mono_24k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Any (S,) / (S, C) audio at any rate → (S',) float32 mono at 24 kHz; rejects empty or non-finite audio."""
    samples = np.asarray(samples)
    if samples.size == 0:
        raise BadRequest("audio is empty")
    if not np.issubdtype(samples.dtype, np.floating):
        if samples.dtype == np.int16:
            samples = samples.astype(np.float32) / 32768.0
        elif samples.dtype == np.int32:
            samples = samples.astype(np.float32) / 2147483648.0
        else:
            raise BadRequest(f"unsupported audio sample type {samples.dtype}")
    mono = to_mono(samples)
    if not np.all(np.isfinite(mono)):
        raise BadRequest("audio contains NaN or infinite samples")
    return resample(mono, sample_rate, SAMPLE_RATE)
