"""Our Ogg page writer against ffmpeg's Ogg muxer (CRCs) and against a reference-free parser (lacing)."""

from __future__ import annotations

import io
import struct

import av
import numpy as np
import pytest

from csmstream.audio.encoders.ogg import OggStreamWriter, ogg_crc


def parse_pages(data: bytes) -> list[dict]:
    """Split an Ogg byte stream into pages (header fields, segment table, body)."""
    pages, offset = [], 0
    while offset < len(data):
        assert data[offset : offset + 4] == b"OggS", f"no capture pattern at {offset}"
        _, flags, granule, serial, sequence, crc, num_segments = struct.unpack_from(
            "<BBqIIIB", data, offset + 4
        )
        segments = list(data[offset + 27 : offset + 27 + num_segments])
        body_start = offset + 27 + num_segments
        end = body_start + sum(segments)
        page = data[offset:end]
        pages.append(
            dict(
                flags=flags,
                granule=granule,
                serial=serial,
                sequence=sequence,
                crc=crc,
                segments=segments,
                body=data[body_start:end],
                zeroed=page[:22] + b"\0\0\0\0" + page[26:],
            )
        )
        offset = end
    return pages


def packets_of(pages: list[dict]) -> list[bytes]:
    packets, current = [], b""
    for page in pages:
        position = 0
        for lacing in page["segments"]:
            current += page["body"][position : position + lacing]
            position += lacing
            if lacing < 255:
                packets.append(current)
                current = b""
    assert current == b"", "a packet was left unterminated"
    return packets


def test_crc_matches_ffmpeg_muxer_pages():
    sink = io.BytesIO()
    with av.open(sink, mode="w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=24_000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 4800), np.float32), format="flt", layout="mono")
        frame.sample_rate, frame.pts = 24_000, 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    pages = parse_pages(sink.getvalue())
    assert len(pages) >= 3, "expected header pages and at least one audio page"
    for page in pages:
        assert ogg_crc(page["zeroed"]) == page["crc"], "CRC differs from ffmpeg's"


@pytest.mark.parametrize("sizes", [[0], [1, 254, 255, 256], [510, 3], [70_000], [100] * 300])
def test_packets_survive_lacing_and_page_splits(sizes):
    rng = np.random.default_rng(len(sizes))
    packets = [rng.integers(0, 256, size, dtype=np.uint8).tobytes() for size in sizes]
    writer = OggStreamWriter(serial=1234)
    data = writer.write([(p, i + 1) for i, p in enumerate(packets)], eos=True)
    pages = parse_pages(data)
    assert packets_of(pages) == packets
    assert all(len(p["segments"]) <= 255 for p in pages), "at most 255 segments per page"
    assert [p["sequence"] for p in pages] == list(range(len(pages)))
    assert pages[0]["flags"] & 0x02 and not any(p["flags"] & 0x02 for p in pages[1:]), (
        "BOS on the first page only"
    )
    assert pages[-1]["flags"] & 0x04 and not any(p["flags"] & 0x04 for p in pages[:-1]), (
        "EOS on the last page only"
    )
    assert pages[-1]["granule"] == len(packets), "the last page carries the last packet's granule"
    for previous, page in zip(pages, pages[1:], strict=False):
        continued = previous["segments"][-1] == 255
        assert bool(page["flags"] & 0x01) == continued, "continuation flag must mark a split packet"
        if continued and page is not pages[-1] and all(s == 255 for s in page["segments"]):
            assert page["granule"] == -1, "no packet ends on this page"
    for page in pages:
        assert ogg_crc(page["zeroed"]) == page["crc"]
        assert page["serial"] == 1234


def test_each_write_ends_with_a_complete_page():
    writer = OggStreamWriter()
    first = writer.write([(b"a" * 300, 10)])
    second = writer.write([(b"b" * 20, 20), (b"c" * 20, 30)])
    assert writer.write([]) == b"", "nothing to write, no page"
    pages = parse_pages(first) + parse_pages(second)
    assert packets_of(pages) == [b"a" * 300, b"b" * 20, b"c" * 20]
    assert [p["granule"] for p in pages] == [10, 30]
