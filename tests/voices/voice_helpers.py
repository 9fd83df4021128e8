"""Audio and libraries for the voice tests: tones stand in for speech (the library never listens)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from csmstream.voices.library import VoiceLibrary


def tone(
    seconds: float, sample_rate: int = 24_000, frequency_hz: float = 220.0, amplitude: float = 0.3
) -> np.ndarray:
    """(S,) float32 sine."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)


def segment(
    seconds: float = 1.0, text: str = "hello there", sample_rate: int = 24_000, frequency_hz: float = 220.0
):
    return (tone(seconds, sample_rate, frequency_hz), sample_rate, text)


def make_builtin_dir(root: Path, voice_ids: tuple[str, ...] = ("default", "calm")) -> Path:
    """A built-in voice folder written by a scratch library (the same format the repo ships)."""
    builtin_dir = root / "builtin"
    writer = VoiceLibrary(builtin_dir, builtin_dir=None)
    for index, voice_id in enumerate(voice_ids):
        writer.create(
            voice_id, voice_id.title(), index, [segment(1.0, f"I am {voice_id}.", frequency_hz=300 + index)]
        )
    return builtin_dir
