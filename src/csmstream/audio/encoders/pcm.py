"""Raw PCM: no header, no buffering; the cheapest format and the websocket protocol's default."""

from __future__ import annotations

import numpy as np

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.audio.encoders.base import AudioEncoder
from csmstream.audio.pcm import float_to_f32le_bytes, float_to_pcm16_bytes


class PcmS16Encoder(AudioEncoder):
    """Signed 16-bit little-endian samples."""

    format_name = "pcm_s16le"

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__(sample_rate)
        self.content_type = f"audio/pcm;rate={sample_rate};channels=1;encoding=s16le"

    def _encode(self, samples: np.ndarray) -> bytes:
        return float_to_pcm16_bytes(samples)

    def _finish(self) -> bytes:
        return b""


class PcmF32Encoder(AudioEncoder):
    """32-bit float little-endian samples."""

    format_name = "pcm_f32le"

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__(sample_rate)
        self.content_type = f"audio/pcm;rate={sample_rate};channels=1;encoding=f32le"

    def _encode(self, samples: np.ndarray) -> bytes:
        return float_to_f32le_bytes(samples)

    def _finish(self) -> bytes:
        return b""
