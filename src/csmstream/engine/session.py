"""The scheduler's view of one request: plain bookkeeping, no tensors."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from csmstream.engine.request import FRAME_MS, SynthesisRequest


class Phase(enum.Enum):
    WAITING = "waiting"  # in the queue, no slot
    PREFILLING = "prefilling"  # has a slot, prompt rows still being written into its KV cache row
    DECODING = "decoding"  # makes one frame per step it is scheduled in
    FINISHED = "finished"


@dataclass(eq=False)
class Session:
    request: SynthesisRequest
    submitted_at_s: float
    max_frames: int = 0  # set when the prompt is known: min(max seconds, rows left in the window)
    prompt_rows: int = 0  # rows of the whole prompt (prefix + rest)
    prefilled_rows: int = 0  # rows already in the KV cache (a cached voice prefix counts)
    prefix_rows: int = 0  # rows of the voice reference prefix: a prefill chunk ends there so it can be cached
    num_frames: int = 0  # frames generated so far
    slot: int | None = None
    phase: Phase = Phase.WAITING
    started_at_s: float | None = None  # admitted into a slot
    first_audio_at_s: float | None = None  # first chunk handed to the collector
    cancel_requested: bool = False
    queue_position: int = 0  # last position told to the client (0: never queued)
    extra: dict = field(default_factory=dict)  # the engine's per-session state (prompt tensors, pcm buffer)

    @property
    def request_id(self) -> str:
        return self.request.request_id

    def lead_ms(self, now_s: float) -> float:
        """How far generation runs ahead of real-time playback (which starts at the first chunk).
        Negative = the listener is waiting for audio. Before any audio the stream counts as behind."""
        if self.first_audio_at_s is None:
            return -FRAME_MS
        played_ms = (now_s - self.first_audio_at_s) * 1000.0
        return self.num_frames * FRAME_MS - played_ms
