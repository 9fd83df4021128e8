"""What a listener hears: audio arriving in chunks, played in real time through a jitter buffer.

Playback starts once `jitter_s` of audio is buffered (or the whole utterance has arrived), then the playback
clock runs in real time. When it reaches past the audio received before the utterance is complete, the
buffer has run dry: the listener hears an underrun (silence in the middle of speech), and playback waits
until `jitter_s` is buffered again (or the rest has arrived). An underrun lasts from the moment the buffer
ran dry to the moment playback restarts.

Pure bookkeeping on the times it is given (seconds on any clock), so it is exact in real time and in tests
with a simulated clock alike; the moment the buffer ran dry is computed, not polled.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Playback:
    underruns: int
    underrun_s: float  # silence heard mid-utterance, all underruns together

    @property
    def underrun_ms(self) -> float:
        return self.underrun_s * 1000.0


class JitterBuffer:
    """One utterance's playback. Call `receive` for each chunk, then `end` when the utterance is complete
    (all its audio received) or `stop` when the listener stops early (a cancel, a hang-up, a failure)."""

    def __init__(self, jitter_s: float) -> None:
        if jitter_s < 0:
            raise ValueError(f"jitter_s must be ≥ 0, got {jitter_s}")
        self.jitter_s = jitter_s
        self.received_s = 0.0  # audio received so far
        self._played_s = 0.0  # audio position where playback last (re)started
        self._playing_since: float | None = None  # clock time playback last (re)started; None while buffering
        self._dry_since: float | None = None  # clock time the buffer ran dry (an underrun being heard)
        self._complete = False
        self._stopped = False
        self.underruns = 0
        self.underrun_s = 0.0

    @property
    def playing(self) -> bool:
        return self._playing_since is not None

    def receive(self, now_s: float, audio_s: float) -> None:
        """A chunk of `audio_s` seconds arrived at `now_s`."""
        if self._complete or self._stopped:
            return  # audio after the end, or after the listener stopped, is not heard
        self._check_dry(now_s)
        self.received_s += audio_s
        self._maybe_start(now_s)

    def end(self, now_s: float) -> None:
        """The utterance is complete at `now_s`: whatever is buffered plays out, with no underrun after."""
        if self._complete or self._stopped:
            return
        self._check_dry(now_s)
        self._complete = True
        self._maybe_start(now_s)

    def stop(self, now_s: float) -> None:
        """The listener stops at `now_s`; silence being heard until then counts."""
        if self._complete or self._stopped:
            return
        self._check_dry(now_s)
        if self._dry_since is not None:
            self.underrun_s += max(0.0, now_s - self._dry_since)
            self._dry_since = None
        self._stopped = True
        self._playing_since = None

    def drained_at_s(self) -> float | None:
        """When the last audio received will have been played (the clock time), once playing; else None."""
        if self._playing_since is None:
            return None
        return self._playing_since + (self.received_s - self._played_s)

    def playback(self) -> Playback:
        return Playback(self.underruns, self.underrun_s)

    def _check_dry(self, now_s: float) -> None:
        if self._playing_since is None:
            return
        dry_at_s = self.drained_at_s()
        assert dry_at_s is not None, "playing"
        if dry_at_s < now_s:  # the playback clock reached past the audio received
            self.underruns += 1
            self._dry_since = dry_at_s
            self._played_s, self._playing_since = self.received_s, None

    def _maybe_start(self, now_s: float) -> None:
        buffered_s = self.received_s - self._played_s
        if self._playing_since is not None or buffered_s <= 0:
            return
        if buffered_s >= self.jitter_s or self._complete:
            if self._dry_since is not None:
                self.underrun_s += now_s - self._dry_since
                self._dry_since = None
            self._playing_since = now_s


def play_back(chunks: list[tuple[float, float]], jitter_s: float) -> Playback:
    """Chunks (arrival time, audio seconds) of a complete utterance through a jitter buffer; the utterance
    counts as complete when its last chunk arrives."""
    buffer = JitterBuffer(jitter_s)
    for at_s, audio_s in chunks:
        buffer.receive(at_s, audio_s)
    if chunks:
        buffer.end(chunks[-1][0])
    return buffer.playback()
