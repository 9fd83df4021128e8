"""What an engine sends back for one request, in order: Queued*, Started, AudioChunk*, Finished (always last)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from csmstream.errors import CsmstreamError

FinishReason = Literal["eos", "length", "cancelled", "error"]


@dataclass(frozen=True)
class Queued:
    position: int  # 1 = next to be admitted


@dataclass(frozen=True)
class Started:
    pass


@dataclass(frozen=True)
class AudioChunk:
    seq: int  # 0, 1, 2 ... per request
    pcm: np.ndarray  # (S,) float32 mono at the engine's sample rate
    start_frame: (
        int  # index of the first 80 ms frame in this chunk (CSM); sample offset / frame size otherwise
    )


@dataclass(frozen=True)
class Finished:
    finish_reason: FinishReason
    audio_seconds: float
    ttfa_ms: float | None  # submit → first chunk handed to the collector
    rtf: float | None  # wall time from start to finish / audio seconds (< 1 is faster than real time)
    error: CsmstreamError | None = None
    codes: np.ndarray | None = None  # (T, K) generated codes (CSM), for conversation context


Event = Queued | Started | AudioChunk | Finished
