"""The outbound queue of one WebSocket connection, drained by its single sender task.

Why one queue and one sender: an `audio_chunk` in binary mode is a JSON frame followed by a binary frame,
and that pair must never be split by another request's frame. Queue items are whole pairs, and only the
sender task writes to the socket, so pairs stay atomic without a lock.

Why bounded: the engine must never wait for a client. Audio is accepted only while the bytes waiting here
stay under a limit; past it `put_audio` refuses and the caller cancels its request. Control messages
(status, completion, error: small, a few per request) are always accepted up to a hard cap; past it the
client has stopped reading altogether: the outbox drops everything and closes (`overflowed`), and the
connection is closed.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass

# Control messages never exceed this many bytes in the queue; a client that lets this many pile up is gone.
CONTROL_CAP_BYTES = 1024 * 1024


@dataclass(frozen=True)
class OutItem:
    text: str  # a JSON message
    data: bytes | None = None  # the binary frame that must follow it directly (binary audio mode)
    is_audio: bool = False

    @property
    def num_bytes(self) -> int:
        return len(self.text) + (len(self.data) if self.data is not None else 0)


class Outbox:
    def __init__(self, max_audio_bytes: int) -> None:
        assert max_audio_bytes > 0, "the audio budget must be positive"
        self.max_audio_bytes = max_audio_bytes
        self._items: collections.deque[OutItem] = collections.deque()
        self._audio_bytes = 0  # audio queued or being sent
        self._control_bytes = 0
        self._ready = asyncio.Event()
        self._closed = False
        self.overflowed = False

    @property
    def audio_bytes(self) -> int:
        return self._audio_bytes

    def put_audio(self, text: str, data: bytes | None) -> bool:
        """Queue one audio chunk (JSON, optional binary frame); False (nothing queued) when over budget.

        A chunk alone larger than the budget is still accepted into an empty queue, so a small budget
        slows nobody who reads."""
        item = OutItem(text, data, is_audio=True)
        if self._closed:
            return False
        if self._audio_bytes > 0 and self._audio_bytes + item.num_bytes > self.max_audio_bytes:
            return False
        self._audio_bytes += item.num_bytes
        self._push(item)
        return True

    def put_control(self, text: str) -> None:
        if self._closed:
            return
        item = OutItem(text)
        if self._control_bytes + item.num_bytes > CONTROL_CAP_BYTES:
            self.overflowed = True
            self._items.clear()
            self.close()
            return
        self._control_bytes += item.num_bytes
        self._push(item)

    def _push(self, item: OutItem) -> None:
        self._items.append(item)
        self._ready.set()

    async def get(self) -> OutItem | None:
        """The next item, or None once closed. Call `done(item)` after sending it."""
        while not self._items:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def done(self, item: OutItem) -> None:
        """The item has been written: its bytes leave the budget."""
        if item.is_audio:
            self._audio_bytes -= item.num_bytes
        else:
            self._control_bytes -= item.num_bytes
        assert self._audio_bytes >= 0 and self._control_bytes >= 0, "outbox byte accounting went negative"

    def close(self) -> None:
        """Refuse new items; `get` returns what is queued, then None."""
        self._closed = True
        self._ready.set()
