"""The user's audio as it arrives, addressable by stream time, so a turn can be cut out of it once VAD has
decided where it started and ended (decisions come a few hundred ms after the fact)."""

from __future__ import annotations

import numpy as np


class InputAudioBuffer:
    """Keeps a window of the recent input; `start_sample` is the absolute index of its first kept sample."""

    def __init__(self, sample_rate: int, max_seconds: float = 120.0) -> None:
        self.sample_rate = sample_rate
        self.max_samples = int(max_seconds * sample_rate)
        self._chunks: list[np.ndarray] = []  # (S,) float32 each
        self.start_sample = 0
        self.end_sample = 0  # absolute index one past the newest sample

    @property
    def num_samples(self) -> int:
        return self.end_sample - self.start_sample

    def append(self, samples: np.ndarray) -> None:
        if len(samples) == 0:
            return
        self._chunks.append(samples.astype(np.float32, copy=True))
        self.end_sample += len(samples)
        if self.num_samples > self.max_samples:  # a turn that never ends: keep the newest audio only
            self.drop_before(self.end_sample - self.max_samples)

    def ms_to_sample(self, ms: float) -> int:
        return int(round(ms * self.sample_rate / 1000))

    def slice(self, from_sample: int, to_sample: int) -> np.ndarray:
        """(S,) float32 of [from, to) clamped to what is kept."""
        from_sample = max(from_sample, self.start_sample)
        to_sample = min(to_sample, self.end_sample)
        if to_sample <= from_sample:
            return np.zeros(0, dtype=np.float32)
        kept = np.concatenate(self._chunks) if len(self._chunks) != 1 else self._chunks[0]
        self._chunks = [kept]  # later slices of the same turn need no concatenation
        return kept[from_sample - self.start_sample : to_sample - self.start_sample].copy()

    def drop_before(self, sample: int) -> None:
        """Forget audio before absolute index `sample`."""
        sample = min(max(sample, self.start_sample), self.end_sample)
        to_drop = sample - self.start_sample
        while to_drop > 0 and self._chunks:
            head = self._chunks[0]
            if len(head) <= to_drop:
                self._chunks.pop(0)
                to_drop -= len(head)
            else:
                self._chunks[0] = head[to_drop:]
                to_drop = 0
        self.start_sample = sample

    def take_all(self) -> np.ndarray:
        """(S,) float32 of everything kept; the buffer is empty afterwards."""
        audio = self.slice(self.start_sample, self.end_sample)
        self.drop_before(self.end_sample)
        return audio
