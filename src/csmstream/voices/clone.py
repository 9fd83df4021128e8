"""A voice from plain recordings, no transcript needed: find the speech, transcribe it, keep the cleanest.

    recording(s) ─▶ 24 kHz mono ─▶ VAD spans (1-10 s) ─▶ acoustic checks ─▶ Whisper (best first)
                ─▶ pick_references (5-20 s) ─▶ loudness-normalised (audio, 24000, text) segments

The caller gives the segments to `VoiceLibrary.create`. Whisper only transcribes as many candidates as it
takes to have a choice (best acoustic scores first), so a long recording costs little more than a short one.
"""

from __future__ import annotations

import functools
import math
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from csmstream.audio.clip_quality import ClipQuality, measure_clip
from csmstream.audio.constants import SAMPLE_RATE
from csmstream.audio.loudness import normalize_loudness
from csmstream.audio.resample import to_mono_24k
from csmstream.audio.speech_segments import SegmentConfig
from csmstream.errors import BadRequest, CsmstreamError
from csmstream.voices.references import (
    DEFAULT_MAX_SECONDS,
    DEFAULT_MIN_SECONDS,
    ReferenceCandidate,
    pick_references,
)

# Reference clips: long enough to carry the voice, short enough to be one or two sentences.
CLONE_SEGMENTS = SegmentConfig(max_seconds=10.0, min_piece_seconds=1.0, pad_seconds=0.15)
MIN_CLIP_SECONDS = 1.0
PREFERRED_SECONDS = (2.0, 10.0)
MAX_NO_SPEECH_PROB = 0.6  # Whisper thinks the clip holds no speech
MIN_AVG_LOGPROB = -1.0  # Whisper is guessing: the words (or the audio) are unclear
CHOICE_FACTOR = 1.5  # transcribe candidates until they total this × max_seconds


@dataclass(frozen=True)
class Recording:
    samples: np.ndarray  # (S,) or (S, C), any sample rate
    sample_rate: int
    name: str  # for messages: the file name


@dataclass
class _Candidate:
    audio: np.ndarray  # (S,) float32 24 kHz
    position: tuple[int, int]  # (recording index, start sample): picks are returned in speaking order
    quality: ClipQuality
    acoustic_score: float


def acoustic_score(quality: ClipQuality) -> float:
    """0..2, higher is cleaner: SNR (up to 40 dB counts) plus how well the length fits 2-10 s."""
    snr_part = min(max(quality.snr_db, 0.0), 40.0) / 40.0
    low, high = PREFERRED_SECONDS
    if quality.seconds < low:
        length_part = quality.seconds / low
    elif quality.seconds > high:
        length_part = high / quality.seconds
    else:
        length_part = 1.0
    return snr_part + length_part


def rejection(quality: ClipQuality) -> str | None:
    """Why a clip cannot be a reference, or None."""
    if quality.seconds < MIN_CLIP_SECONDS:
        return "too short"
    if quality.clipped:
        return "clipped"
    if quality.too_quiet:
        return "too quiet"
    if quality.noisy:
        return "too noisy"
    return None


_transcriber_lock = threading.Lock()


@functools.cache
def _load_default_transcriber():
    from csmstream.pipeline.stt import load_stt

    return load_stt(cpu_threads=0)  # a one-off job: every core (CTranslate2's default)


def default_transcriber():
    """The bundled Whisper tiny.en, loaded once per process; a CsmstreamError that says what to do if missing."""
    from csmstream.pipeline.stt import SttError

    with _transcriber_lock:
        try:
            return _load_default_transcriber()
        except SttError as exc:
            raise CsmstreamError(
                f"a voice without a transcript needs speech recognition, which is not available ({exc}); "
                "give the exact words spoken instead (--transcript, or the transcript field)"
            ) from exc


def clone_segments(
    recordings: Sequence[Recording],
    transcriber=None,
    vad_model=None,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    progress: bool = False,
) -> list[tuple[np.ndarray, int, str]]:
    """Recordings of one speaker → the best 5-20 s of clean speech as (audio (S,) float32, 24000, text)
    segments in speaking order. BadRequest when there is no speech, or too little clean speech."""
    from csmstream.pipeline.vad_scores import find_speech

    if not recordings:
        raise BadRequest("give at least one recording")
    names = ", ".join(r.name for r in recordings)
    candidates: list[_Candidate] = []
    left_out: Counter[str] = Counter()
    found_speech = False
    for index, recording in enumerate(recordings):
        try:
            mono = to_mono_24k(recording.samples, recording.sample_rate)  # (S,) float32 24 kHz
        except BadRequest as exc:
            raise BadRequest(f"{recording.name}: {exc}") from exc
        for span in find_speech(mono, SAMPLE_RATE, CLONE_SEGMENTS, vad_model):
            found_speech = True
            audio = mono[span.start_sample : span.end_sample]
            quality = measure_clip(audio)
            reason = rejection(quality)
            if reason is not None:
                left_out[reason] += 1
                continue
            candidates.append(_Candidate(audio, (index, span.start_sample), quality, acoustic_score(quality)))
    if not found_speech:
        raise BadRequest(
            f"no speech found in {names}: the voice detector heard nothing like a person speaking. "
            "Record 5 to 20 s of one person talking, close to the microphone"
        )

    transcribed = _transcribe_best(candidates, transcriber, max_seconds, left_out, progress)
    if not transcribed:
        raise BadRequest(
            f"no speech found in {names}: nothing in it could be understood as words{_why(left_out)}. "
            "Record 5 to 20 s of one person talking clearly, close to the microphone"
        )
    try:
        picked = pick_references([ref for ref, _ in transcribed], min_seconds, max_seconds)
    except BadRequest as exc:
        raise BadRequest(
            f"{names}: {exc}{_why(left_out)}. Record more speech of one person, close to the microphone "
            "and with little background noise"
        ) from None
    position = {id(ref): candidate.position for ref, candidate in transcribed}
    picked.sort(key=lambda ref: position[id(ref)])
    return [(normalize_loudness(ref.audio), SAMPLE_RATE, ref.text) for ref in picked]


def _transcribe_best(
    candidates: list[_Candidate], transcriber, max_seconds: float, left_out: Counter[str], progress: bool
) -> list[tuple[ReferenceCandidate, _Candidate]]:
    """Transcribe the best-sounding candidates until there is enough to choose from; → (reference, candidate)."""
    from tqdm.auto import tqdm

    if not candidates:
        return []
    transcriber = transcriber or default_transcriber()
    ranked = sorted(candidates, key=lambda c: -c.acoustic_score)
    accepted: list[tuple[ReferenceCandidate, _Candidate]] = []
    accepted_seconds = 0.0
    with tqdm(total=len(ranked), desc="transcribing", unit="clip", disable=not progress, leave=False) as bar:
        for candidate in ranked:
            if accepted_seconds >= CHOICE_FACTOR * max_seconds:
                break
            heard = transcriber.transcribe_detailed(candidate.audio, SAMPLE_RATE)
            bar.update(1)
            if not heard.text.strip() or heard.no_speech_prob > MAX_NO_SPEECH_PROB:
                left_out["no words heard"] += 1
                continue
            if heard.avg_logprob < MIN_AVG_LOGPROB:
                left_out["unclear"] += 1
                continue
            confidence = math.exp(heard.avg_logprob) * (1.0 - heard.no_speech_prob)  # 0..1
            score = candidate.acoustic_score + confidence
            accepted.append((ReferenceCandidate(candidate.audio, heard.text, score), candidate))
            accepted_seconds += candidate.quality.seconds
    return accepted


def _why(left_out: Counter[str]) -> str:
    if not left_out:
        return ""
    parts = ", ".join(f"{count} {reason}" for reason, count in left_out.most_common())
    return f" (stretches left out: {parts})"
