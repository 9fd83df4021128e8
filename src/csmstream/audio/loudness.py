"""Loudness of speech, and bringing clips to one loudness.

The level measured is the RMS of the *active* part of a clip (a simple gate in the spirit of EBU R128 /
ITU-R BS.1770, without its K-weighting): 50 ms blocks below an absolute floor (-60 dBFS) or more than 20 dB
under the mean of the rest are pauses and do not count, so a sentence with long pauses measures as loud as
the same sentence without them. Normalising applies one gain to reach the target, then a peak limiter keeps
the result under the ceiling (a smooth gain dip around each over-loud peak, not a hard clip).
"""

from __future__ import annotations

import numpy as np

from csmstream.audio.constants import SAMPLE_RATE

TARGET_DBFS = -20.0  # speech level of references and training clips (about -23 LUFS for speech)
PEAK_CEILING = 0.89  # -1 dBFS: headroom for resampling and lossy encoders
BLOCK_SECONDS = 0.05
ABSOLUTE_GATE_DBFS = -60.0
RELATIVE_GATE_DB = 20.0
MAX_GAIN_DB = 30.0  # never lift near-silence into loud noise
LIMITER_WINDOW_SECONDS = 0.005  # how far on either side of a peak the limiter's gain dip reaches
_EPSILON = 1e-12


def to_dbfs(rms: float) -> float:
    return 20.0 * float(np.log10(max(rms, _EPSILON)))


def block_rms(
    samples: np.ndarray, sample_rate: int = SAMPLE_RATE, block_seconds: float = BLOCK_SECONDS
) -> np.ndarray:
    """(S,) → (N,) RMS of consecutive blocks (a partial last block counts when it is at least half a block)."""
    block = max(1, int(round(block_seconds * sample_rate)))
    samples = np.asarray(samples, dtype=np.float64)
    num_whole = len(samples) // block
    rms = np.sqrt(np.mean(samples[: num_whole * block].reshape(num_whole, block) ** 2, axis=1))
    tail = samples[num_whole * block :]
    if len(tail) >= block // 2 and len(tail) > 0:
        rms = np.append(rms, np.sqrt(np.mean(tail**2)))
    return rms


def active_level_dbfs(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Gated RMS level of the clip in dBFS; -inf-like (-240) for silence."""
    rms = block_rms(samples, sample_rate)
    if rms.size == 0:
        return to_dbfs(0.0)
    power = rms**2
    loud = power[power > 10 ** (ABSOLUTE_GATE_DBFS / 10)]
    if loud.size == 0:
        return to_dbfs(0.0)
    relative_gate = np.mean(loud) * 10 ** (-RELATIVE_GATE_DB / 10)
    active = loud[loud > relative_gate]
    return 10.0 * float(np.log10(max(float(np.mean(active)), _EPSILON)))


def limit_peaks(
    samples: np.ndarray, ceiling: float = PEAK_CEILING, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """(S,) → (S,) float32 with |x| ≤ ceiling: each over-loud peak is turned down smoothly over a few ms
    around it (the gain needed at each sample, widened by a sliding minimum and smoothed). Only the stretches
    around peaks are touched, so long recordings cost little."""
    x = np.asarray(samples, dtype=np.float32)
    magnitude = np.abs(x)
    over = np.flatnonzero(magnitude > ceiling)
    if over.size == 0:
        return x.copy()
    half = max(1, int(LIMITER_WINDOW_SECONDS * sample_rate))
    gain = np.ones(len(x), dtype=np.float32)
    # stretches of peaks closer than a few windows are limited together
    breaks = np.flatnonzero(np.diff(over) > 4 * half)
    for first, last in zip(np.r_[0, breaks + 1], np.r_[breaks, over.size - 1], strict=True):
        start, end = max(0, over[first] - 2 * half), min(len(x), over[last] + 2 * half + 1)
        gain[start:end] = _dip(magnitude[start:end], ceiling, half)
    return np.clip(x * gain, -ceiling, ceiling).astype(np.float32)  # rounding: never above the ceiling


def _dip(magnitude: np.ndarray, ceiling: float, half: int) -> np.ndarray:
    """(L,) magnitudes → (L,) smooth gain ≤ what each sample needs to stay under `ceiling`."""
    needed = np.minimum(1.0, ceiling / np.maximum(magnitude, _EPSILON))  # (L,)
    width = 2 * half + 1
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(needed, half, mode="edge"), width)  # (L, width)
    widened = windows.min(axis=1)  # the dip reaches `half` samples before and after each peak
    kernel = np.hanning(width + 2)[1:-1]
    kernel /= kernel.sum()
    # a window-wide average of the widened dip: at a peak it stays at most what that peak needs
    return np.convolve(np.pad(widened, half, mode="edge"), kernel, mode="valid").astype(np.float32)


def normalize_loudness(
    samples: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    target_dbfs: float = TARGET_DBFS,
    ceiling: float = PEAK_CEILING,
) -> np.ndarray:
    """(S,) → (S,) float32 at `target_dbfs` active level, peaks ≤ `ceiling`. Silence comes back unchanged;
    the gain is at most +30 dB."""
    x = np.asarray(samples, dtype=np.float32)
    level = active_level_dbfs(x, sample_rate)
    if level <= ABSOLUTE_GATE_DBFS:
        return x.copy()
    gain_db = min(target_dbfs - level, MAX_GAIN_DB)
    return limit_peaks(x * np.float32(10 ** (gain_db / 20)), ceiling, sample_rate)
