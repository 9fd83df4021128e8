"""Streaming voice-activity detection: feed audio chunks of any size, get `speech_started` / `speech_stopped`.

Decisions, per 32 ms model window with speech probability p:
- speech starts when p ≥ `threshold` and speech then lasts `min_speech_ms` (so a cough or a click does not
  count); the event is reported once confirmed, but its `at_ms` is the onset;
- speech stops after `silence_duration_ms` of p < `threshold - 0.15` (a hysteresis band, so a soft syllable
  does not end the turn); its `at_ms` is where the silence began. A caller that decides the end of a turn
  itself (`turn_end.py`) reads `silence_ms` and calls `end_speech()` sooner; `silence_duration_ms` is then
  its backstop.
Times are milliseconds of audio fed since the detector started (or since `reset`).

Why not silero-vad's own `VADIterator` (checked against silero-vad 6.2.3):
- it reports `start` on the first 32 ms window at or above the threshold: no minimum speech duration, so a
  cough or a click would start a turn, and in a conversation cut the assistant off (barge-in). The decision
  below waits for `min_speech_ms`, tolerating short dips between syllables. (Its end-of-speech rule is ours:
  `threshold - 0.15` for `min_silence_duration_ms`.)
- it lives in `silero_vad.utils_vad`, which imports torch, and importing the `silero_vad` package calls
  `torch.set_num_threads(1)` for the whole process (measured: 2 threads before, 1 after), which would slow the
  speech model on a CPU; it takes and returns torch tensors;
- it drives a model object holding one stream's state (`OnnxWrapper`: one ONNX session per stream); here
  one session is shared and each stream keeps only its state (`vad_model.py`).
`SileroVADSequence`, the package's torch-free front-end, starts from a zero state on every call: it scores
whole recordings, not a stream fed 20 ms at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import soxr

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.errors import BadRequest
from csmstream.pipeline.vad_model import VAD_SAMPLE_RATE, WINDOW_MS, WINDOW_SAMPLES, SileroVadModel

HYSTERESIS = 0.15  # speech continues until p drops this far below the start threshold
MAX_ONSET_DIP_MS = 64.0  # a candidate onset survives a dip this long (gaps between syllables)


@dataclass(frozen=True)
class VadConfig:
    threshold: float = 0.5
    min_speech_ms: float = 250.0
    silence_duration_ms: float = 500.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise BadRequest(f"VAD threshold must be between 0 and 1, got {self.threshold}")
        if self.min_speech_ms < 0 or self.silence_duration_ms <= 0:
            raise BadRequest("VAD min_speech_ms must be ≥ 0 and silence_duration_ms > 0")

    @property
    def end_threshold(self) -> float:
        return max(self.threshold - HYSTERESIS, 0.01)


@dataclass(frozen=True)
class VadEvent:
    kind: Literal["speech_started", "speech_stopped"]
    at_ms: float  # onset of speech / start of the silence that ended it, in stream time
    detected_ms: float  # stream time at which the decision was made (at_ms + the confirmation delay)


class StreamingVad:
    """One audio stream's detector. Not thread-safe; cheap to create once the model is loaded."""

    def __init__(
        self, model: SileroVadModel, config: VadConfig | None = None, sample_rate: int = SAMPLE_RATE
    ) -> None:
        if sample_rate <= 0:
            raise BadRequest(f"sample rate must be positive, got {sample_rate}")
        self.config = config or VadConfig()
        self.sample_rate = sample_rate
        self._model_stream = model.new_stream()
        self.reset()

    def reset(self) -> None:
        self._model_stream.reset()
        self._resampler = (
            None
            if self.sample_rate == VAD_SAMPLE_RATE
            else soxr.ResampleStream(self.sample_rate, VAD_SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        )
        self._pending = np.zeros(0, dtype=np.float32)  # (S,) 16 kHz samples not yet a whole window
        self._num_windows = 0
        self._speaking = False
        self._onset_ms: float | None = None  # a candidate onset, not yet min_speech_ms long
        self._voiced_ms = 0.0  # speech time since the candidate onset
        self._dip_ms = 0.0  # low-probability time inside the candidate
        self._silence_ms = 0.0  # trailing silence while speaking
        self.last_probability = 0.0

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def silence_ms(self) -> float:
        """Trailing silence of the speech under way (0 when not speaking, or while the user speaks)."""
        return self._silence_ms if self._speaking else 0.0

    def end_speech(self) -> VadEvent | None:
        """End the speech under way now, at the start of its trailing silence (a turn-end decider, not
        silence alone, decided it). None when nobody is speaking."""
        if not self._speaking:
            return None
        now_ms = self.stream_ms
        end_ms = now_ms - self._silence_ms
        self._speaking, self._silence_ms = False, 0.0
        return VadEvent("speech_stopped", end_ms, now_ms)

    @property
    def stream_ms(self) -> float:
        """Audio analysed so far, in ms."""
        return self._num_windows * WINDOW_MS

    def push(self, audio: bytes | np.ndarray) -> list[VadEvent]:
        """Feed PCM16 little-endian bytes, or an int16 / float32 (S,) array, at `sample_rate`."""
        samples = as_float32(audio)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples, last=False)
        return self._run(samples)

    def flush(self) -> list[VadEvent]:
        """End of input: analyse what the resampler still holds (a partial last window is dropped)."""
        if self._resampler is None:
            return []
        tail = self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        return self._run(tail)

    def _run(self, samples_16k: np.ndarray) -> list[VadEvent]:
        buffer = np.concatenate([self._pending, samples_16k]) if self._pending.size else samples_16k
        num_whole = len(buffer) // WINDOW_SAMPLES
        events: list[VadEvent] = []
        for i in range(num_whole):
            p = self._model_stream.probability(buffer[i * WINDOW_SAMPLES : (i + 1) * WINDOW_SAMPLES])
            event = self._decide(p)
            if event is not None:
                events.append(event)
        self._pending = buffer[num_whole * WINDOW_SAMPLES :].copy()
        return events

    def _decide(self, p: float) -> VadEvent | None:
        """Advance the state machine by one window with speech probability `p`."""
        cfg = self.config
        window_start_ms = self._num_windows * WINDOW_MS
        self._num_windows += 1
        now_ms = self._num_windows * WINDOW_MS
        self.last_probability = p

        if self._speaking:
            if p >= cfg.threshold:
                self._silence_ms = 0.0
            elif (
                p < cfg.end_threshold or self._silence_ms > 0
            ):  # once silence began, the band counts as silence
                self._silence_ms += WINDOW_MS
                if self._silence_ms >= cfg.silence_duration_ms:
                    self._speaking = False
                    end_ms = now_ms - self._silence_ms
                    self._silence_ms = 0.0
                    return VadEvent("speech_stopped", end_ms, now_ms)
            return None

        if self._onset_ms is None:
            if p < cfg.threshold:
                return None
            self._onset_ms, self._voiced_ms, self._dip_ms = window_start_ms, 0.0, 0.0
        if p >= cfg.end_threshold:
            self._voiced_ms += WINDOW_MS
            self._dip_ms = 0.0
        else:
            self._dip_ms += WINDOW_MS
            if self._dip_ms > MAX_ONSET_DIP_MS:  # too short to be speech: a noise burst
                self._onset_ms = None
                return None
        if self._voiced_ms >= max(cfg.min_speech_ms, WINDOW_MS):
            onset_ms, self._onset_ms = self._onset_ms, None
            self._speaking, self._silence_ms = True, 0.0
            return VadEvent("speech_started", onset_ms, now_ms)
        return None


def as_float32(audio: bytes | np.ndarray) -> np.ndarray:
    """PCM16 little-endian bytes or an int16 / float (S,) array → (S,) float32 in [-1, 1]."""
    if isinstance(audio, bytes | bytearray | memoryview):
        if len(audio) % 2:
            raise BadRequest("PCM16 audio must have an even number of bytes")
        return np.frombuffer(audio, dtype="<i2").astype(np.float32) / 32768.0
    samples = np.asarray(audio)
    if samples.ndim != 1:
        raise BadRequest(f"audio must be mono (S,), got shape {samples.shape}")
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / 32768.0
    if np.issubdtype(samples.dtype, np.floating):
        return samples.astype(np.float32, copy=False)
    raise BadRequest(f"unsupported audio sample type {samples.dtype}")
