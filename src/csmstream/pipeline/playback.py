"""Where the listener is in the assistant's audio, estimated on the server: the client plays what it
receives at 1× from the moment the first chunk arrives, and waits (silence) when it runs dry."""

from __future__ import annotations

from collections.abc import Callable


class PlaybackClock:
    """Feed it every chunk as it is sent; ask how many samples have played by now."""

    def __init__(self, sample_rate: int, clock: Callable[[], float]) -> None:
        self.sample_rate = sample_rate
        self._clock = clock
        self.sent_samples = 0
        self._runs: list[tuple[float, int]] = []  # (wall time playback resumed, samples sent before it)
        self._playing_until = float("-inf")  # wall time the audio sent so far finishes playing

    def sent(self, num_samples: int) -> None:
        now = self._clock()
        if (
            now >= self._playing_until
        ):  # the client ran dry (or this is the first chunk): playback restarts now
            self._runs.append((now, self.sent_samples))
            self._playing_until = now
        self._playing_until += num_samples / self.sample_rate
        self.sent_samples += num_samples

    def played_samples(self) -> int:
        now = self._clock()
        for resumed_at, samples_before in reversed(self._runs):
            if now >= resumed_at:
                played = samples_before + int((now - resumed_at) * self.sample_rate)
                return min(played, self.sent_samples)
        return 0

    def playing(self) -> bool:
        """True while sent audio is still playing (or waiting to play) at the client."""
        return self.sent_samples > 0 and self._clock() < self._playing_until
