"""Streaming wav: a header claiming the maximum length, then raw PCM16 as it comes.

The header goes out with the first bytes of the stream (even before any samples), so a player can
start at once; readers treat the data chunk as running to the end of the file.
"""

from __future__ import annotations

import numpy as np

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.audio.encoders.base import AudioEncoder
from csmstream.audio.pcm import float_to_pcm16_bytes
from csmstream.audio.wav_header import wav_header


class WavStreamEncoder(AudioEncoder):
    format_name = "wav"
    content_type = "audio/wav"

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__(sample_rate)
        self._header_sent = False

    def _header_once(self) -> bytes:
        if self._header_sent:
            return b""
        self._header_sent = True
        return wav_header(self.sample_rate, 1, "pcm16", data_bytes=None)

    def _encode(self, samples: np.ndarray) -> bytes:
        return self._header_once() + float_to_pcm16_bytes(samples)

    def _finish(self) -> bytes:
        return self._header_once()  # an empty stream is still a (header-only) wav
