"""A PyAV (ffmpeg) audio encoder fed with arbitrary-sized chunks.

Codecs want whole frames (Opus: 20 ms; our FLAC: 80 ms). This wrapper buffers the remainder between
calls, hands the codec whole frames only, and lets a final short frame through at the end (both
libopus and FLAC accept a short last frame).
"""

from __future__ import annotations

import av
import numpy as np

from csmstream.audio.pcm import float_to_int16


class FramedAvEncoder:
    """`feed((S,) float32) -> [packet bytes]`, `flush() -> [packet bytes]`; mono only."""

    def __init__(
        self,
        codec_name: str,
        sample_rate: int,
        sample_format: str,
        *,
        bit_rate: int | None = None,
        options: dict[str, str] | None = None,
    ) -> None:
        assert sample_format in ("flt", "s16"), f"unsupported sample format {sample_format}"
        self.sample_rate = sample_rate
        self.sample_format = sample_format
        self._codec = av.CodecContext.create(codec_name, "w")
        self._codec.sample_rate = sample_rate
        self._codec.format = sample_format
        self._codec.layout = "mono"
        if bit_rate is not None:
            self._codec.bit_rate = bit_rate
        if options:
            self._codec.options = dict(options)
        self._codec.open()
        self.frame_size = int(self._codec.frame_size)
        assert self.frame_size > 0, f"{codec_name} did not report a frame size"
        self.extradata = bytes(self._codec.extradata or b"")
        self._pending: list[np.ndarray] = []  # float32 chunks not yet handed to the codec
        self._num_pending = 0
        self._next_pts = 0
        self.num_samples_fed = 0

    def feed(self, samples: np.ndarray) -> list[bytes]:
        """Buffer (S,) float32; encode every whole frame now available."""
        self.num_samples_fed += samples.size
        if samples.size:
            self._pending.append(samples)
            self._num_pending += samples.size
        if self._num_pending < self.frame_size:
            return []
        buffered = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        num_whole = (buffered.size // self.frame_size) * self.frame_size
        rest = buffered[num_whole:]
        self._pending = [rest] if rest.size else []
        self._num_pending = rest.size
        packets: list[bytes] = []
        for start in range(0, num_whole, self.frame_size):
            packets += self._encode_frame(buffered[start : start + self.frame_size])
        return packets

    def flush(self) -> list[bytes]:
        """Encode the short last frame (if any) and drain the codec's delay line."""
        packets: list[bytes] = []
        if self._num_pending:
            packets += self._encode_frame(np.concatenate(self._pending))
            self._pending, self._num_pending = [], 0
        packets += [bytes(p) for p in self._codec.encode(None) if p.size]
        return packets

    def _encode_frame(self, samples: np.ndarray) -> list[bytes]:
        data = samples if self.sample_format == "flt" else float_to_int16(samples)
        frame = av.AudioFrame.from_ndarray(data.reshape(1, -1), format=self.sample_format, layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self._next_pts
        self._next_pts += samples.size
        return [bytes(p) for p in self._codec.encode(frame) if p.size]
