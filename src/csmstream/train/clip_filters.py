"""Which clips a fine-tuning dataset keeps, and why the others are left out (one reason each).

too_short / too_long   outside --min-seconds / --max-seconds (1-20 s by default)
clipped                more than 0.1 % of samples at full scale
silent                 no speech loud enough (gated level under -55 dBFS)
no_speech              the VAD found none in the file, or Whisper heard no words
transcript_mismatch    the given transcript and Whisper's differ by more than half their words
"""

from __future__ import annotations

from dataclasses import dataclass

from csmstream.audio.clip_quality import ClipQuality
from csmstream.pipeline.stt import Transcript
from csmstream.text.word_error_rate import word_error_rate

TOO_SHORT = "too_short"
TOO_LONG = "too_long"
CLIPPED = "clipped"
SILENT = "silent"
NO_SPEECH = "no_speech"
TRANSCRIPT_MISMATCH = "transcript_mismatch"
MAX_NO_SPEECH_PROB = 0.6


@dataclass(frozen=True)
class ClipLimits:
    min_seconds: float = 1.0
    max_seconds: float = 20.0
    max_word_error_rate: float = 0.5


def audio_reason(quality: ClipQuality, limits: ClipLimits) -> str | None:
    """Why the audio alone rules the clip out, or None."""
    if quality.seconds < limits.min_seconds:
        return TOO_SHORT
    if quality.seconds > limits.max_seconds:
        return TOO_LONG
    if quality.silent:
        return SILENT
    if quality.clipped:
        return CLIPPED
    return None


def heard_reason(heard: Transcript, given: str | None, limits: ClipLimits) -> str | None:
    """Why what Whisper heard rules the clip out, or None."""
    if given is None:
        if not heard.text.strip() or heard.no_speech_prob > MAX_NO_SPEECH_PROB:
            return NO_SPEECH
        return None
    if word_error_rate(given, heard.text) > limits.max_word_error_rate:
        return TRANSCRIPT_MISMATCH
    return None
