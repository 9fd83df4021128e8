"""Test signals and comparison helpers shared by the audio tests."""

from __future__ import annotations

import io

import av
import numpy as np


def speech_like(duration_s: float = 1.5, sample_rate: int = 24_000, seed: int = 0) -> np.ndarray:
    """(S,) float32: a gliding harmonic tone with a syllable-rate envelope, peak about 0.6."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(duration_s * sample_rate))) / sample_rate
    f0 = 140.0 + 40.0 * np.sin(2 * np.pi * 0.7 * t)  # Hz, a slowly moving pitch
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voice = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 9))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t)  # ~4 syllables per second
    signal = voice * envelope
    return (0.6 * signal / np.max(np.abs(signal))).astype(np.float32)


def uneven_chunks(samples: np.ndarray, sizes=(1, 0, 333, 1920, 7, 4000, 2500, 12345)) -> list[np.ndarray]:
    """Cut (S,) into chunks of awkward sizes (incl. empty and 1-sample ones), the rest as one last chunk."""
    chunks, start = [], 0
    for size in sizes:
        chunks.append(samples[start : start + size])
        start += size
    chunks.append(samples[start:])
    assert sum(c.size for c in chunks) == samples.size, "chunks must cover the signal exactly"
    return chunks


def decode_with_av(data: bytes) -> tuple[np.ndarray, int]:
    """Encoded bytes → ((S,) float32 of the first channel, sample_rate) via ffmpeg."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=stream.rate)
        blocks = []
        for frame in container.decode(stream):
            blocks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        blocks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
        rate = stream.rate
    return (np.concatenate(blocks) if blocks else np.zeros(0, np.float32)), rate


def aligned_correlation(reference: np.ndarray, decoded: np.ndarray, max_lag: int = 4000) -> tuple[float, int]:
    """(Pearson correlation at the best lag, that lag in samples); lag > 0 means `decoded` is late."""
    size = reference.size + decoded.size
    spectrum = np.fft.rfft(decoded, size) * np.conj(np.fft.rfft(reference, size))
    cross = np.fft.irfft(spectrum, size)  # cross[k] = sum_n decoded[n + k] * reference[n], k mod size
    lags = np.arange(-max_lag, max_lag + 1)
    lag = int(lags[np.argmax(cross[lags % size])])
    if lag >= 0:
        ref, dec = reference, decoded[lag:]
    else:
        ref, dec = reference[-lag:], decoded
    n = min(ref.size, dec.size)
    assert n > 1000, f"too little overlap to compare ({n} samples)"
    return float(np.corrcoef(ref[:n], dec[:n])[0, 1]), lag
