"""FLAC streamed as it is encoded: "fLaC", the STREAMINFO block, then frames.

The STREAMINFO goes out before the length is known, so it says "total samples: unknown" (0) and has
no MD5, exactly as ffmpeg writes FLAC to a pipe. ffmpeg, browsers and libFLAC stream such files;
libsndfile (soundfile) cannot seek in them, so `csmstream.audio.io.read_audio` falls back to PyAV.
Frames are 80 ms (one Mimi frame), so output follows the generated audio closely.
"""

from __future__ import annotations

import struct

import numpy as np

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.audio.encoders.av_codec import FramedAvEncoder
from csmstream.audio.encoders.base import AudioEncoder

FLAC_FRAME_MS = 80
_STREAMINFO_TYPE = 0
_LAST_METADATA_BLOCK = 0x80


class FlacEncoder(AudioEncoder):
    format_name = "flac"
    content_type = "audio/flac"

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__(sample_rate)
        frame_size = sample_rate * FLAC_FRAME_MS // 1000
        self._codec = FramedAvEncoder("flac", sample_rate, "s16", options={"frame_size": str(frame_size)})
        streaminfo = self._codec.extradata
        assert len(streaminfo) == 34, (
            f"expected a 34-byte STREAMINFO from the FLAC encoder, got {len(streaminfo)}"
        )
        block_header = struct.pack(">B", _LAST_METADATA_BLOCK | _STREAMINFO_TYPE) + len(streaminfo).to_bytes(
            3, "big"
        )
        self._header = b"fLaC" + block_header + streaminfo
        self._header_sent = False

    def _header_once(self) -> bytes:
        if self._header_sent:
            return b""
        self._header_sent = True
        return self._header

    def _encode(self, samples: np.ndarray) -> bytes:
        return self._header_once() + b"".join(self._codec.feed(samples))

    def _finish(self) -> bytes:
        return self._header_once() + b"".join(self._codec.flush())
