"""Ogg Opus (RFC 7845) streamed page by page: libopus through PyAV, our own Ogg framing.

libopus runs at 8, 12, 16, 24 or 48 kHz. Our 24 kHz audio is encoded natively (no resampling; the
stream still decodes at 48 kHz, as all Opus does); other rates are resampled to 48 kHz with a
streaming soxr resampler, whose state carries across chunks so chunk edges are seamless.
Each `encode()` returns whole pages holding every packet completed so far: nothing waits for a page
to fill.
"""

from __future__ import annotations

import struct

import numpy as np
import soxr

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.audio.encoders.av_codec import FramedAvEncoder
from csmstream.audio.encoders.base import AudioEncoder
from csmstream.audio.encoders.ogg import OggStreamWriter

OPUS_NATIVE_RATES = (8_000, 12_000, 16_000, 24_000, 48_000)
OPUS_GRANULE_RATE = 48_000  # Ogg Opus granule positions always count 48 kHz samples
DEFAULT_OPUS_BIT_RATE = 32_000  # transparent enough for 24 kHz mono speech
FRAME_MS = 20
VENDOR = b"csmstream"


def opus_tags(vendor: bytes = VENDOR) -> bytes:
    """The mandatory second header packet: vendor string and no user comments."""
    return b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)


class OpusEncoder(AudioEncoder):
    format_name = "opus"
    content_type = "audio/ogg;codecs=opus"

    def __init__(self, sample_rate: int = SAMPLE_RATE, bit_rate: int = DEFAULT_OPUS_BIT_RATE) -> None:
        super().__init__(sample_rate)
        codec_rate = sample_rate if sample_rate in OPUS_NATIVE_RATES else OPUS_GRANULE_RATE
        self._resampler = (
            None
            if codec_rate == sample_rate
            else soxr.ResampleStream(sample_rate, codec_rate, 1, dtype="float32", quality="HQ")
        )
        self._codec = FramedAvEncoder(
            "libopus",
            codec_rate,
            "flt",
            bit_rate=bit_rate,
            options={"frame_duration": str(FRAME_MS), "application": "audio"},
        )
        head = self._codec.extradata
        assert head[:8] == b"OpusHead" and len(head) >= 19, "libopus did not produce an OpusHead header"
        self._head = head
        self._pre_skip = struct.unpack_from("<H", head, 10)[0]  # 48 kHz samples the decoder drops
        self._granule_per_codec_sample = OPUS_GRANULE_RATE // codec_rate
        self._frame_granules = self._codec.frame_size * self._granule_per_codec_sample
        self._num_packets = 0
        self._ogg = OggStreamWriter()
        self._headers_sent = False

    def _headers_once(self) -> bytes:
        if self._headers_sent:
            return b""
        self._headers_sent = True
        # the ID header must sit alone on the first page, the comment header starts the second
        return self._ogg.write([(self._head, 0)]) + self._ogg.write([(opus_tags(), 0)])

    def _encode(self, samples: np.ndarray) -> bytes:
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples, last=False)
        return self._headers_once() + self._pages(self._codec.feed(samples))

    def _finish(self) -> bytes:
        headers = self._headers_once()
        packets: list[bytes] = []
        if self._resampler is not None:
            packets += self._codec.feed(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        num_audio_samples = self._codec.num_samples_fed  # at the codec's rate
        if num_audio_samples == 0:
            # a stream needs one audio packet to be decodable: a silent frame, trimmed away by the end granule
            packets += self._codec.feed(np.zeros(self._codec.frame_size, np.float32))
        packets += self._codec.flush()
        # the last granule says where the audio really ends, so the decoder drops the encoder's padding
        end_granule = self._pre_skip + num_audio_samples * self._granule_per_codec_sample
        return headers + self._pages(packets, end_granule=end_granule)

    def _pages(self, packets: list[bytes], end_granule: int | None = None) -> bytes:
        """Whole pages for `packets`; `end_granule` given only for the last call (sets EOS)."""
        # a packet's granule = 48 kHz samples decoded through it, pre-skip included; every packet is
        # one whole frame (the encoder pads the short last one)
        laced = []
        for packet in packets:
            self._num_packets += 1
            laced.append((packet, self._num_packets * self._frame_granules))
        if end_granule is not None and laced:
            packet, granule = laced[-1]
            laced[-1] = (packet, min(granule, end_granule))
        return self._ogg.write(laced, eos=end_granule is not None)
