"""What a caller asks of an engine: one utterance to synthesize, with its voice, sampling and chunking."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.errors import BadRequest

if TYPE_CHECKING:  # keep this module (and the scheduler) importable without torch
    from csmstream.model.sampling import SamplingParams
    from csmstream.model.tokenizer import Segment

FRAME_SAMPLES = SAMPLE_RATE * 80 // 1000  # 1920: 80 ms of 24 kHz audio, one Mimi frame
FRAME_MS = 80.0

# First chunk after 2 frames (160 ms of audio) so playback starts early, then bigger chunks (fewer messages).
DEFAULT_CHUNK_SCHEDULE_FRAMES: tuple[int, ...] = (2, 4, 8, 12)


# The longest `max_seconds` a request may ask for, on every engine and protocol.
MAX_SECONDS = 600.0


def check_max_seconds(max_seconds: float | None) -> None:
    """`BadRequest` unless `max_seconds` is None (no limit asked for) or in (0, MAX_SECONDS]."""
    if max_seconds is not None and not 0 < max_seconds <= MAX_SECONDS:
        raise BadRequest(f"`max_seconds` must be in (0, {MAX_SECONDS:g}], got {max_seconds:g}")


def new_request_id() -> str:
    return "req_" + uuid.uuid4().hex[:16]


def validate_chunk_schedule(frames: tuple[int, ...]) -> tuple[int, ...]:
    if not frames or any((not isinstance(n, int)) or n < 1 or n > 250 for n in frames):
        raise BadRequest("chunk schedule must be a non-empty list of frame counts between 1 and 250")
    return tuple(frames)


def chunk_frames_at(schedule: tuple[int, ...], chunk_index: int) -> int:
    """Frames in chunk number `chunk_index`; the last entry repeats."""
    return schedule[min(chunk_index, len(schedule) - 1)]


# A chunk goes out early when the listener's buffer would not last until the scheduled chunk is complete,
# with this margin. Big chunks save messages only while generation is well ahead: near real time a 12-frame
# chunk (960 ms of audio) takes almost 960 ms to make, longer than a small jitter buffer lasts.
LOW_BUFFER_MARGIN_MS = 100.0


def chunk_is_due(
    pending_frames: int,
    chunk_index: int,
    schedule: tuple[int, ...],
    listener_buffer_ms: float | None = None,
    ms_per_frame: float | None = None,
) -> bool:
    """Whether the frames made since the last chunk go out now: the schedule's size is reached, or the
    listener would run dry before it is — `listener_buffer_ms` (audio sent and not yet played; None before
    the first chunk) is less than the rest of the chunk takes to make at `ms_per_frame`, plus a margin."""
    if pending_frames <= 0:
        return False
    target_frames = chunk_frames_at(schedule, chunk_index)
    if pending_frames >= target_frames:
        return True
    if listener_buffer_ms is None or ms_per_frame is None:
        return False
    return listener_buffer_ms < (target_frames - pending_frames) * ms_per_frame + LOW_BUFFER_MARGIN_MS


@dataclass(frozen=True)
class SynthesisRequest:
    """One utterance. `context` segments (earlier turns) follow the voice's reference segments in the prompt."""

    text: str
    voice_id: str | None = None
    speaker: int | None = None  # None: the voice's speaker (or 0 without a voice)
    context: tuple[Segment, ...] = ()
    sampling: SamplingParams | None = None  # None: the engine's defaults
    max_seconds: float | None = None  # None: the engine's default
    chunk_schedule_frames: tuple[int, ...] = DEFAULT_CHUNK_SCHEDULE_FRAMES
    request_id: str = field(default_factory=new_request_id)
    # a later unit of a request whose audio is already being heard (engine/unit_chain.py): it takes the next
    # free slot before any new request and is never refused as `busy`, so a long text does not stall midway
    continues: bool = False
    # chunks go out before the schedule says when the listener would otherwise run dry (False: the schedule
    # exactly, for tests of it)
    adaptive_chunks: bool = True
