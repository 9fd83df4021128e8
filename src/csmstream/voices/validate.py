"""What a voice may be: its id, name, speaker, and reference audio. Every failure is a `BadRequest`
whose message says what to change."""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.audio.resample import to_mono_24k
from csmstream.errors import BadRequest
from csmstream.voices.voice import VoiceSegment, frozen_audio

# Lower case so ids are equal on case-insensitive file systems; no dots or slashes so an id is never a path.
_log = logging.getLogger("csmstream.voices")

VOICE_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_SPEAKER_ID = 999
# Peak below this (-60 dBFS) is silence: nothing for the model to imitate.
SILENCE_PEAK = 1e-3
# An uploaded reference recording (the Voices page, POST /v1/voices): a few words are not enough for CSM to
# take a voice from; the page asks for 5 to 20 s. (The library itself, used by tests and scripts with short
# clips, keeps its looser per-segment bounds in VoiceLimits.)
MIN_UPLOAD_SECONDS = 5.0
AUDIO_FORMATS = "WAV, MP3, FLAC, OGG, Opus or M4A"


@dataclass(frozen=True)
class VoiceLimits:
    min_segment_seconds: float = 0.5
    max_segment_seconds: float = 30.0
    max_total_seconds: float = 60.0
    max_segments: int = 16
    max_text_chars: int = 1000
    max_name_chars: int = 100


def is_valid_voice_id(voice_id: object) -> bool:
    return isinstance(voice_id, str) and VOICE_ID_PATTERN.fullmatch(voice_id) is not None


def check_voice_id(voice_id: object) -> str:
    if not is_valid_voice_id(voice_id):
        raise BadRequest(
            f"invalid voice id {voice_id!r}: use 1-64 characters of a-z, 0-9, '_' or '-', "
            "starting with a letter or digit"
        )
    return voice_id  # type: ignore[return-value]


def slug_from_name(name: str) -> str:
    """'Ana María (calm)' → 'ana-maria-calm': a readable id for voices created without one."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:48].strip("-")
    return slug or "voice"


def check_name(name: str, limits: VoiceLimits) -> str:
    if not isinstance(name, str):
        raise BadRequest(f"voice name must be a string, got {type(name).__name__}")
    name = name.strip()
    if not name:
        raise BadRequest("voice name is empty")
    if len(name) > limits.max_name_chars:
        raise BadRequest(f"voice name is longer than {limits.max_name_chars} characters")
    return name


def check_speaker(speaker: object) -> int:
    # bool is an int in Python; True as a speaker id is a caller's mistake
    if isinstance(speaker, bool) or not isinstance(speaker, int | np.integer):
        raise BadRequest(f"speaker must be an integer, got {speaker!r}")
    if not 0 <= int(speaker) <= MAX_SPEAKER_ID:
        raise BadRequest(f"speaker must be between 0 and {MAX_SPEAKER_ID}, got {speaker}")
    return int(speaker)


def check_segment(
    audio: object, sample_rate: object, text: object, limits: VoiceLimits, index: int
) -> VoiceSegment:
    """One (audio, sample_rate, text) → a 24 kHz mono segment, or a BadRequest naming the segment."""
    where = f"segment {index + 1}"
    if not isinstance(text, str) or not text.strip():
        raise BadRequest(f"{where}: the transcript is empty; give the exact words spoken in the audio")
    text = " ".join(text.split())
    if len(text) > limits.max_text_chars:
        raise BadRequest(f"{where}: the transcript is longer than {limits.max_text_chars} characters")
    if not isinstance(audio, np.ndarray):
        raise BadRequest(f"{where}: audio must be a numpy array of samples, got {type(audio).__name__}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
        raise BadRequest(f"{where}: sample rate must be a positive integer, got {sample_rate!r}")
    if audio.dtype == np.bool_ or audio.dtype.kind not in "fiu":
        raise BadRequest(f"{where}: unsupported audio sample type {audio.dtype}")
    if audio.dtype.kind == "f" and audio.size and not np.all(np.isfinite(audio)):
        raise BadRequest(f"{where}: audio contains NaN or infinite samples")
    # Judge the length before resampling: a 2-hour upload must not be resampled just to be refused.
    num_samples = audio.shape[0] if audio.ndim >= 1 else 0
    seconds = num_samples / int(sample_rate)
    if seconds < limits.min_segment_seconds:
        raise BadRequest(
            f"{where}: audio is {seconds:.2f} s; at least {limits.min_segment_seconds:g} s is needed"
        )
    if seconds > limits.max_segment_seconds:
        raise BadRequest(
            f"{where}: audio is {seconds:.1f} s; at most {limits.max_segment_seconds:g} s is allowed"
        )
    try:
        mono = to_mono_24k(audio, int(sample_rate))  # (S,) float32 24 kHz
    except BadRequest as exc:
        raise BadRequest(f"{where}: {exc}") from exc
    peak = float(np.max(np.abs(mono))) if mono.size else 0.0
    if peak < SILENCE_PEAK:
        raise BadRequest(f"{where}: audio is silent (peak {peak:.1e}); record the speaker louder")
    if peak > 1.0:
        mono = mono / peak  # keep it in [-1, 1] so it survives any wav format
    assert mono.ndim == 1, f"to_mono_24k must return (S,), got {mono.shape}"
    return VoiceSegment(text=text, audio=frozen_audio(mono))


def check_segments(
    segments: list[tuple[np.ndarray, int, str]] | tuple[tuple[np.ndarray, int, str], ...], limits: VoiceLimits
) -> tuple[VoiceSegment, ...]:
    if not isinstance(segments, list | tuple) or not segments:
        raise BadRequest("a voice needs at least one reference segment (audio + transcript)")
    if len(segments) > limits.max_segments:
        raise BadRequest(f"a voice has at most {limits.max_segments} reference segments, got {len(segments)}")
    checked = []
    for index, segment in enumerate(segments):
        if not isinstance(segment, list | tuple) or len(segment) != 3:
            raise BadRequest(f"segment {index + 1}: expected (audio, sample_rate, transcript)")
        checked.append(check_segment(*segment, limits=limits, index=index))
    total_seconds = sum(s.audio.shape[0] for s in checked) / SAMPLE_RATE
    if total_seconds > limits.max_total_seconds:
        raise BadRequest(
            f"reference audio totals {total_seconds:.1f} s; at most {limits.max_total_seconds:g} s is allowed"
        )
    return tuple(checked)


def decode_reference_upload(
    data: bytes, filename: str | None = None, min_seconds: float = MIN_UPLOAD_SECONDS
) -> tuple[np.ndarray, int]:
    """An uploaded reference recording → ((S, C) float32 samples, sample_rate), or a `BadRequest` a person
    can act on: not a sound file at all (the decoders' own words go to the log, not to the user), or too short.
    """
    from csmstream.audio.io import read_audio

    what = f"“{filename}”" if filename else "the uploaded file"
    try:
        samples, sample_rate = read_audio(data)
    except BadRequest as exc:
        if "could not decode" not in str(exc):
            raise  # empty, no samples: already said plainly
        _log.info("voice upload %s is not audio: %s", what, exc)
        raise BadRequest(
            f"{what} is not a sound file the server can read. Upload a recording ({AUDIO_FORMATS}), "
            "or record one with the microphone."
        ) from None
    seconds = samples.shape[0] / sample_rate
    if seconds < min_seconds:
        raise BadRequest(
            f"the recording is only {seconds:.1f} s long; a voice needs at least {min_seconds:g} s of one "
            "person speaking (5 to 20 s works best). Upload or record a longer one."
        )
    return samples, sample_rate
