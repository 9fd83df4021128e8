"""What speech recognition hands back: the text and how sure Whisper was of it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Transcript:
    """What Whisper heard, with how sure it was."""

    text: str
    avg_logprob: float  # mean log-probability of the text's tokens: near 0 is confident, below -1 is a guess
    no_speech_prob: float  # 0..1: Whisper's belief that the audio holds no speech at all


NOTHING_HEARD = Transcript("", avg_logprob=-10.0, no_speech_prob=1.0)  # audio too short to decode
