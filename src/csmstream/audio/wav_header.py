"""RIFF/WAVE headers, for files whose length is known and for streams whose length is not.

A stream's header is written before its length is known. The common convention (used by ffmpeg on
pipes and by hosted speech APIs) is to put the largest 32-bit value in both size fields; readers then
take the data chunk to run to the end of the file.
"""

from __future__ import annotations

import struct
from typing import Literal

SampleFormat = Literal["pcm16", "float32"]

UNKNOWN_SIZE = 0xFFFFFFFF
HEADER_BYTES = 44  # RIFF(12) + fmt chunk(8 + 16) + data chunk header(8)
RIFF_SIZE_OFFSET = 4
DATA_SIZE_OFFSET = 40

_FORMAT_TAGS = {"pcm16": (1, 16), "float32": (3, 32)}  # WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT


def bytes_per_sample(sample_format: SampleFormat) -> int:
    return _FORMAT_TAGS[sample_format][1] // 8


def wav_header(
    sample_rate: int,
    num_channels: int = 1,
    sample_format: SampleFormat = "pcm16",
    data_bytes: int | None = None,
) -> bytes:
    """The 44-byte canonical header; `data_bytes=None` means "streaming, length unknown"."""
    assert sample_format in _FORMAT_TAGS, f"unknown wav sample format {sample_format!r}"
    assert sample_rate > 0 and num_channels > 0, f"bad wav layout: {sample_rate} Hz, {num_channels} channels"
    format_tag, bits = _FORMAT_TAGS[sample_format]
    block_align = num_channels * bits // 8
    if data_bytes is None:
        riff_size = data_size = UNKNOWN_SIZE
    else:
        data_size = data_bytes
        riff_size = min(HEADER_BYTES - 8 + data_bytes, UNKNOWN_SIZE)
    fmt_chunk = struct.pack(
        "<4sIHHIIHH",
        b"fmt ",
        16,
        format_tag,
        num_channels,
        sample_rate,
        sample_rate * block_align,
        block_align,
        bits,
    )
    return (
        struct.pack("<4sI4s", b"RIFF", riff_size, b"WAVE")
        + fmt_chunk
        + struct.pack("<4sI", b"data", min(data_size, UNKNOWN_SIZE))
    )


def size_fields(data_bytes: int) -> tuple[bytes, bytes]:
    """(RIFF size field, data size field) for a finished file of `data_bytes` of samples."""
    riff_size = min(HEADER_BYTES - 8 + data_bytes, UNKNOWN_SIZE)
    return struct.pack("<I", riff_size), struct.pack("<I", min(data_bytes, UNKNOWN_SIZE))
