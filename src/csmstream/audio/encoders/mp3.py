"""MP3 through LAME (lameenc): constant bit rate, frames come out as soon as LAME completes them.

LAME takes int16 and only the MPEG sample rates (8–48 kHz family); 24 kHz is MPEG-2 Layer III, whose
bit rates go up to 160 kbps.
"""

from __future__ import annotations

import lameenc
import numpy as np

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.audio.encoders.base import AudioEncoder
from csmstream.audio.pcm import float_to_pcm16_bytes
from csmstream.errors import BadRequest

MP3_SAMPLE_RATES = (8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000)
DEFAULT_MP3_KBPS = 128
LAME_QUALITY = 2  # 0 best/slowest … 9 worst/fastest; 2 is LAME's "recommended"; mono 24 kHz is cheap anyway


class Mp3Encoder(AudioEncoder):
    format_name = "mp3"
    content_type = "audio/mpeg"

    def __init__(self, sample_rate: int = SAMPLE_RATE, bit_rate_kbps: int = DEFAULT_MP3_KBPS) -> None:
        super().__init__(sample_rate)
        if sample_rate not in MP3_SAMPLE_RATES:
            raise BadRequest(f"mp3 cannot encode {sample_rate} Hz; supported rates: {MP3_SAMPLE_RATES}")
        if sample_rate < 32_000:
            bit_rate_kbps = min(bit_rate_kbps, 160)  # the MPEG-2 / 2.5 ceiling
        self._lame = lameenc.Encoder()
        self._lame.set_in_sample_rate(sample_rate)
        self._lame.set_out_sample_rate(sample_rate)  # LAME would otherwise pick a rate to suit the bit rate
        self._lame.set_channels(1)
        self._lame.set_bit_rate(bit_rate_kbps)
        self._lame.set_quality(LAME_QUALITY)

    def _encode(self, samples: np.ndarray) -> bytes:
        return bytes(self._lame.encode(float_to_pcm16_bytes(samples)))

    def _finish(self) -> bytes:
        if self.num_samples_in == 0:
            return b""  # LAME refuses to flush a stream it never started; no audio, no frames
        return bytes(self._lame.flush())
