"""Streaming audio encoders: `make_encoder(fmt, sample_rate)` → an `AudioEncoder`.

enc = make_encoder("mp3")
for chunk in pcm_chunks:            # (S,) float32 in [-1, 1]
    send(enc.encode(chunk))         # may be b"" while the codec fills a frame
send(enc.finish())
"""

from __future__ import annotations

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.audio.encoders.base import AudioEncoder
from csmstream.audio.encoders.flac import FlacEncoder
from csmstream.audio.encoders.mp3 import Mp3Encoder
from csmstream.audio.encoders.opus import OpusEncoder
from csmstream.audio.encoders.pcm import PcmF32Encoder, PcmS16Encoder
from csmstream.audio.encoders.wav import WavStreamEncoder
from csmstream.errors import BadRequest

__all__ = ["AudioEncoder", "SUPPORTED_FORMATS", "make_encoder"]

# format name → encoder class; "pcm" is the OpenAI API's name for raw 16-bit little-endian
_ENCODERS: dict[str, type[AudioEncoder]] = {
    "pcm": PcmS16Encoder,
    "pcm_s16le": PcmS16Encoder,
    "pcm_f32le": PcmF32Encoder,
    "wav": WavStreamEncoder,
    "mp3": Mp3Encoder,
    "opus": OpusEncoder,
    "flac": FlacEncoder,
}

SUPPORTED_FORMATS: tuple[str, ...] = tuple(_ENCODERS)


def make_encoder(fmt: str, sample_rate: int = SAMPLE_RATE) -> AudioEncoder:
    """A fresh encoder for one stream; raises BadRequest for an unknown format or an unusable rate."""
    cls = _ENCODERS.get(fmt.strip().lower()) if isinstance(fmt, str) else None
    if cls is None:
        raise BadRequest(f"unsupported audio format {fmt!r}; supported: {', '.join(SUPPORTED_FORMATS)}")
    encoder = cls(sample_rate)
    encoder.format_name = fmt.strip().lower()
    return encoder
