"""Ogg framing (RFC 3533), just enough to stream one logical bitstream.

We write the pages ourselves instead of using a muxer so that every `encode()` call can end with a
flushed page: a muxer holds packets until a page is full, which would delay audio already encoded.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

_CRC_POLY = 0x04C11DB7  # Ogg's CRC-32: this polynomial, MSB first, initial value 0, no final xor


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ _CRC_POLY) if crc & 0x80000000 else (crc << 1)
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()  # immutable


def ogg_crc(data: bytes) -> int:
    crc = 0
    table = _CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


MAX_SEGMENTS_PER_PAGE = 255
NO_GRANULE = -1  # a page on which no packet ends
_FLAG_CONTINUED, _FLAG_BOS, _FLAG_EOS = 0x01, 0x02, 0x04


class OggStreamWriter:
    """Packs packets into pages. `write(packets)` returns complete pages holding all of them."""

    def __init__(self, serial: int | None = None) -> None:
        self.serial = int.from_bytes(os.urandom(4), "little") if serial is None else serial
        self._sequence = 0
        self._started = False
        self._ended = False

    def write(self, packets: Sequence[tuple[bytes, int]], *, eos: bool = False) -> bytes:
        """`packets` = [(packet bytes, granule position after that packet)]; returns whole pages.

        The packets are laced into as few pages as fit (255 segments each); a page's granule is that of
        the last packet ending on it. `eos=True` marks the last page and closes the stream.
        """
        assert not self._ended, "Ogg stream already ended"
        if not packets and not eos:
            return b""
        pages = []
        # 1. lacing values of all packets, remembering where each packet ends
        segments: list[int] = []
        ends: list[tuple[int, int]] = []  # (index of a packet's last segment, its granule)
        for data, granule in packets:
            full, rest = divmod(len(data), 255)
            segments.extend([255] * full + [rest])
            ends.append((len(segments) - 1, granule))
        payload = b"".join(data for data, _ in packets)
        # 2. cut into pages of at most 255 segments
        start_segment, payload_offset, end_index, continued = 0, 0, 0, False
        while start_segment < len(segments) or not pages:
            stop_segment = min(start_segment + MAX_SEGMENTS_PER_PAGE, len(segments))
            page_segments = segments[start_segment:stop_segment]
            granule = NO_GRANULE
            while end_index < len(ends) and ends[end_index][0] < stop_segment:
                granule = ends[end_index][1]
                end_index += 1
            num_bytes = sum(page_segments)
            last_page = stop_segment >= len(segments)
            flags = (_FLAG_CONTINUED if continued else 0) | (_FLAG_EOS if eos and last_page else 0)
            pages.append(
                self._page(
                    page_segments, payload[payload_offset : payload_offset + num_bytes], granule, flags
                )
            )
            continued = (
                bool(page_segments) and page_segments[-1] == 255
            )  # a packet runs over onto the next page
            payload_offset += num_bytes
            start_segment = stop_segment
        self._ended = eos
        return b"".join(pages)

    def _page(self, segments: list[int], body: bytes, granule: int, flags: int) -> bytes:
        if not self._started:
            flags |= _FLAG_BOS
            self._started = True
        header = struct.pack(
            "<4sBBqIIIB", b"OggS", 0, flags, granule, self.serial, self._sequence, 0, len(segments)
        ) + bytes(segments)
        self._sequence += 1
        page = bytearray(header + body)
        page[22:26] = struct.pack("<I", ogg_crc(bytes(page)))
        return bytes(page)
