"""Capturing the microphone as 24 kHz mono PCM16 blocks (sounddevice `InputStream`).

The device's callback thread hands each block to the event loop; the loop side reads them with
`await mic.read()`. If the loop falls behind, the oldest blocks are dropped rather than letting
the delay grow: in a live conversation stale audio is worse than a gap.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.clients.errors import NoAudioDevice
from csmstream.clients.sound_device import DeviceChoice, choose_device, load_sounddevice

BLOCK_MS = 40
MAX_QUEUED_BLOCKS = 50  # 2 s of audio at 40 ms


class Microphone:
    """Blocks of (S,) int16 at `sample_rate`, about `block_ms` long each."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, block_ms: int = BLOCK_MS) -> None:
        self.sample_rate = sample_rate
        self.device: DeviceChoice = choose_device("input", sample_rate)
        self._sd = load_sounddevice()
        self._block_samples = self.device.sample_rate * block_ms // 1000
        self._resampler: Any = None
        if self.device.sample_rate != sample_rate:
            import soxr

            self._resampler = soxr.ResampleStream(self.device.sample_rate, sample_rate, 1, dtype="int16")
        self._queue: asyncio.Queue[np.ndarray] = asyncio.Queue(maxsize=MAX_QUEUED_BLOCKS)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream: Any = None
        self.dropped_blocks = 0

    def start(self) -> None:
        """Start capturing; call from the event loop that will `read()`."""
        self._loop = asyncio.get_running_loop()
        try:
            self._stream = self._sd.InputStream(
                samplerate=self.device.sample_rate,
                channels=1,
                dtype="int16",
                blocksize=self._block_samples,
                callback=self._callback,
            )
            self._stream.start()
        except Exception as exc:  # PortAudioError: busy, unplugged, no permission
            raise NoAudioDevice(f"cannot record from {self.device.name!r}: {exc}") from None

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        block = indata[:, 0].copy()  # (frames,) int16; PortAudio reuses its buffer
        if self._resampler is not None:
            block = self._resampler.resample_chunk(block)
        assert self._loop is not None, "start() sets the loop before the stream runs"
        try:
            self._loop.call_soon_threadsafe(self._put, block)
        except RuntimeError:
            pass  # the loop is closed: we are shutting down

    def _put(self, block: np.ndarray) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped_blocks += 1
        self._queue.put_nowait(block)

    async def read(self) -> np.ndarray:
        return await self._queue.get()

    def close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.stop()
            finally:
                self._stream.close()
                self._stream = None
