"""Gated loudness, normalisation and the peak limiter, on synthetic signals."""

from __future__ import annotations

import numpy as np
import pytest

from csmstream.audio.clip_quality import measure_clip
from csmstream.audio.loudness import (
    PEAK_CEILING,
    TARGET_DBFS,
    active_level_dbfs,
    limit_peaks,
    normalize_loudness,
)

RATE = 24_000


def sine(seconds: float, amplitude: float, frequency_hz: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)


def test_level_of_a_sine_and_pauses_do_not_count():
    assert active_level_dbfs(sine(2.0, 0.1)) == pytest.approx(20 * np.log10(0.1 / np.sqrt(2)), abs=0.05)
    with_pauses = np.concatenate([sine(1.0, 0.1), np.zeros(3 * RATE, np.float32), sine(1.0, 0.1)])
    assert active_level_dbfs(with_pauses) == pytest.approx(active_level_dbfs(sine(2.0, 0.1)), abs=0.1)
    assert active_level_dbfs(np.zeros(RATE, np.float32)) < -200


@pytest.mark.parametrize("amplitude", [0.01, 0.1, 0.5])
def test_normalising_reaches_the_target(amplitude):
    out = normalize_loudness(sine(3.0, amplitude))
    assert active_level_dbfs(out) == pytest.approx(TARGET_DBFS, abs=0.1)
    assert out.dtype == np.float32 and np.abs(out).max() <= PEAK_CEILING


def test_peaks_are_limited_smoothly_and_the_rest_is_untouched():
    audio = sine(1.0, 0.2)
    audio[RATE // 2 : RATE // 2 + 50] = 0.99  # a spike that would clip after gain
    out = limit_peaks(audio * 4, ceiling=0.89)
    assert np.abs(out).max() <= 0.89
    assert np.allclose(out[: RATE // 4], audio[: RATE // 4] * 4), "far from the spike nothing changes"
    loud = audio * 4
    mask = np.abs(loud) > 0.05
    gain = out[mask] / loud[mask]
    assert gain.min() == pytest.approx(0.89 / 3.96, rel=0.01)
    assert np.abs(np.diff(gain)).max() < 0.02, "the gain dips smoothly, not in one step"


def test_silence_and_very_quiet_audio_are_not_blown_up():
    assert np.array_equal(normalize_loudness(np.zeros(RATE, np.float32)), np.zeros(RATE, np.float32))
    hum = sine(1.0, 1e-4)  # -83 dBFS: below the gate, left as it is
    assert np.array_equal(normalize_loudness(hum), hum)


def test_clip_quality_sees_clipping_silence_and_noise():
    clean = np.concatenate([np.zeros(RATE // 2, np.float32), sine(2.0, 0.3), np.zeros(RATE // 2, np.float32)])
    clean += np.random.default_rng(0).standard_normal(len(clean)).astype(np.float32) * 1e-3
    quality = measure_clip(clean)
    assert not quality.clipped and not quality.silent and quality.snr_db > 30
    assert measure_clip(np.clip(sine(2.0, 3.0), -1, 1)).clipped
    assert measure_clip(np.zeros(RATE, np.float32)).silent
    assert measure_clip(np.random.default_rng(1).standard_normal(RATE).astype(np.float32) * 0.1).noisy
