"""What a conversation tells its transport (the server's `/v1/realtime` handler), in order.

The names follow the OpenAI Realtime API events they map to: `SpeechStarted` →
`input_audio_buffer.speech_started`, `AudioDelta` → `response.audio.delta`, and so on. Times are
milliseconds of input audio since the conversation started, as that API counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

ResponseStatus = Literal["completed", "cancelled", "failed"]


@dataclass(frozen=True)
class SpeechStarted:
    item_id: str  # the user item this speech will become
    audio_start_ms: int


@dataclass(frozen=True)
class SpeechStopped:
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True)
class InputCommitted:
    """The input buffer became a user item (by VAD or by `commit()`); its transcript follows."""

    item_id: str


@dataclass(frozen=True)
class TranscriptionDelta:
    """Words of the user's turn recognised while it is spoken (`...input_audio_transcription.delta`); the
    deltas joined are the transcript so far, and `TranscriptionCompleted` has the final one."""

    item_id: str
    delta: str


@dataclass(frozen=True)
class TranscriptionCompleted:
    item_id: str
    text: str  # may be empty: the audio held no words


@dataclass(frozen=True)
class ResponseCreated:
    response_id: str
    item_id: str  # the assistant item this response writes
    text_only: bool = False  # written, not spoken: `TranscriptDelta`s but no audio, no `AudioDone`


@dataclass(frozen=True)
class TranscriptDelta:
    """Text of the assistant's speech, sent as that speech starts playing (captions stay with the audio);
    in a text-only response, the answer's text as the LLM writes it."""

    response_id: str
    item_id: str
    text: str


@dataclass(frozen=True)
class AudioDelta:
    response_id: str
    item_id: str
    pcm: np.ndarray  # (S,) float32 mono, 24 kHz

    def pcm16_bytes(self) -> bytes:
        """The audio as PCM16 little-endian bytes (what the realtime API sends, base64-encoded)."""
        clipped = np.clip(self.pcm, -1.0, 1.0)
        return (clipped * 32767.0).round().astype("<i2").tobytes()


@dataclass(frozen=True)
class AudioDone:
    response_id: str
    item_id: str


@dataclass(frozen=True)
class TranscriptDone:
    response_id: str
    item_id: str
    text: str  # the whole spoken text (after barge-in: only what was heard)


@dataclass(frozen=True)
class ResponseDone:
    response_id: str
    item_id: str
    status: ResponseStatus
    error: str | None = None
    timings_ms: dict[str, float] | None = None  # stage → ms after the user's speech ended (turn_timings.py)


@dataclass(frozen=True)
class Error:
    code: str  # the CsmstreamError code: llm_unavailable, stt_error, busy, response_in_progress, ...
    message: str


PipelineEvent = (
    SpeechStarted
    | SpeechStopped
    | InputCommitted
    | TranscriptionDelta
    | TranscriptionCompleted
    | ResponseCreated
    | TranscriptDelta
    | AudioDelta
    | AudioDone
    | TranscriptDone
    | ResponseDone
    | Error
)
