"""A player with no sound card for the tests: the real `PcmBuffer`, drained only when the test says so
(as if the speaker were slow), so 'audio still playing' is under the test's control."""

from __future__ import annotations

import numpy as np

from csmstream.clients.pcm_buffer import PcmBuffer

SAMPLE_RATE = 24_000


class BufferPlayer:
    def __init__(self, instant: bool = False) -> None:
        """`instant`: the speaker plays everything the moment it arrives (nothing stays pending)."""
        self.instant = instant
        self.buffer = PcmBuffer()
        self.received_samples = 0
        self.clears = 0

    def play(self, pcm: np.ndarray) -> None:
        self.received_samples += pcm.size
        self.buffer.push(pcm)
        if self.instant:
            self.play_out()

    def clear(self) -> float:
        self.clears += 1
        return self.buffer.clear() / SAMPLE_RATE

    @property
    def pending_seconds(self) -> float:
        return self.buffer.pending_samples / SAMPLE_RATE

    def play_out(self) -> None:
        """The speaker plays everything queued."""
        self.buffer.pull(self.buffer.pending_samples)

    def close(self) -> None:
        pass
