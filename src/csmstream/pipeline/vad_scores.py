"""Speech probabilities of a whole recording with the Silero model, for cutting it into speech spans
(`audio/speech_segments.py`). Unlike `vad.py` (a stream fed as it arrives), this scores a file in one go."""

from __future__ import annotations

import functools

import numpy as np

from csmstream.audio.resample import resample
from csmstream.audio.speech_segments import SegmentConfig, SpeechSpan, speech_spans
from csmstream.pipeline.vad_model import VAD_SAMPLE_RATE, WINDOW_MS, WINDOW_SAMPLES, SileroVadModel

WINDOW_SECONDS = WINDOW_MS / 1000


@functools.cache
def shared_vad_model() -> SileroVadModel:
    """One Silero model per process (it is thread-safe to share: each call gets its own stream)."""
    return SileroVadModel()


def speech_probabilities(
    samples: np.ndarray, sample_rate: int, model: SileroVadModel | None = None
) -> np.ndarray:
    """(S,) float mono at `sample_rate` → (N,) float32 probability of speech per 32 ms window."""
    samples_16k = resample(np.asarray(samples, dtype=np.float32), sample_rate, VAD_SAMPLE_RATE)
    stream = (model or shared_vad_model()).new_stream()
    num_windows = len(samples_16k) // WINDOW_SAMPLES
    windows = samples_16k[: num_windows * WINDOW_SAMPLES].reshape(num_windows, WINDOW_SAMPLES)  # (N, 512)
    return np.array([stream.probability(window) for window in windows], dtype=np.float32)


def find_speech(
    samples: np.ndarray,
    sample_rate: int,
    config: SegmentConfig | None = None,
    model: SileroVadModel | None = None,
) -> list[SpeechSpan]:
    """(S,) mono audio → its spans of speech (in samples at `sample_rate`), see speech_segments.py."""
    probabilities = speech_probabilities(samples, sample_rate, model)
    return speech_spans(samples, sample_rate, probabilities, WINDOW_SECONDS, config)
