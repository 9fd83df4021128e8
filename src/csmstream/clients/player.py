"""Playing streamed audio on the sound card as it arrives (sounddevice `OutputStream`).

The device's callback thread pulls from a `PcmBuffer`; the network side pushes into it. The stream runs
from `open` to `close` and plays silence while nothing is buffered, so a late chunk just starts playing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.clients.errors import NoAudioDevice
from csmstream.clients.pcm_buffer import PcmBuffer
from csmstream.clients.sound_device import DeviceChoice, choose_device, load_sounddevice


class StreamPlayer:
    """`play(pcm)` from the event loop; `clear()` to stop at once (barge-in); `drain()` to let it finish."""

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        sd = load_sounddevice()
        self.device: DeviceChoice = choose_device("output", sample_rate)
        self.sample_rate = sample_rate
        self.buffer = PcmBuffer()  # holds audio at the device's rate
        self._resampler: Any = None
        if self.device.sample_rate != sample_rate:
            import soxr

            self._resampler = soxr.ResampleStream(sample_rate, self.device.sample_rate, 1, dtype="int16")
        try:
            self._stream = sd.OutputStream(
                samplerate=self.device.sample_rate,
                channels=1,
                dtype="int16",
                callback=self._callback,
                latency="low",  # barge-in must cut the voice off quickly
            )
            self._stream.start()
        except Exception as exc:  # PortAudioError: the device vanished or is busy
            raise NoAudioDevice(f"cannot play on {self.device.name!r}: {exc}") from None

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        outdata[:, 0] = self.buffer.pull(frames)  # (frames, 1) int16

    def play(self, pcm: np.ndarray) -> None:
        """Queue (S,) int16 samples at `sample_rate`."""
        if self._resampler is not None:
            pcm = self._resampler.resample_chunk(pcm)
        self.buffer.push(pcm)

    def clear(self) -> float:
        """Drop what has not been played yet; returns the seconds dropped."""
        if self._resampler is not None:
            self._resampler.clear()
        return self.buffer.clear() / self.device.sample_rate

    @property
    def pending_seconds(self) -> float:
        return self.buffer.pending_samples / self.device.sample_rate

    async def drain(self, timeout_s: float = 120.0) -> None:
        """Wait until everything queued has been played (plus the device's own latency)."""
        deadline = time.monotonic() + timeout_s
        while self.buffer.pending_samples > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(float(getattr(self._stream, "latency", 0.0) or 0.0))

    def close(self) -> None:
        try:
            self._stream.stop()
        finally:
            self._stream.close()


def open_player(disabled: bool, sample_rate: int = SAMPLE_RATE) -> tuple[StreamPlayer | None, str | None]:
    """A started player, or (None, why not) when sound is off or there is no usable device."""
    if disabled:
        return None, "sound is turned off (CSMSTREAM_NO_AUDIO)"
    try:
        return StreamPlayer(sample_rate), None
    except NoAudioDevice as exc:
        return None, str(exc)
