"""The audio waiting to be played: filled by the network side, drained by the sound card's callback
thread, emptied at once on barge-in. Plain numpy under one lock, so it is testable without a device."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np


class PcmBuffer:
    """A FIFO of int16 mono samples. `pull(n)` always returns n samples: silence where it ran dry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chunks: deque[np.ndarray] = deque()  # each (S,) int16
        self._offset = 0  # samples of _chunks[0] already pulled
        self._pending = 0
        self.played_samples = 0  # real samples handed to the device (silence not counted)
        self.dropped_samples = 0  # samples thrown away by clear()

    @property
    def pending_samples(self) -> int:
        with self._lock:
            return self._pending

    def push(self, pcm: np.ndarray) -> None:
        samples = np.asarray(pcm)
        assert samples.ndim == 1 and samples.dtype == np.int16, (
            f"want (S,) int16, got {samples.shape} {samples.dtype}"
        )
        if samples.size == 0:
            return
        with self._lock:
            self._chunks.append(samples.copy())  # the caller may reuse its array
            self._pending += samples.size

    def pull(self, num_samples: int) -> np.ndarray:
        out = np.zeros(num_samples, dtype=np.int16)  # (n,) silence unless filled below
        filled = 0
        with self._lock:
            while filled < num_samples and self._chunks:
                head = self._chunks[0]
                take = min(num_samples - filled, head.size - self._offset)
                out[filled : filled + take] = head[self._offset : self._offset + take]
                filled += take
                self._offset += take
                if self._offset == head.size:
                    self._chunks.popleft()
                    self._offset = 0
            self._pending -= filled
            self.played_samples += filled
        return out

    def clear(self) -> int:
        """Drop everything not yet played (barge-in); returns how many samples were dropped."""
        with self._lock:
            dropped = self._pending
            self._chunks.clear()
            self._offset = 0
            self._pending = 0
            self.dropped_samples += dropped
        return dropped
