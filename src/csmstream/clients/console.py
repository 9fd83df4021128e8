"""Lines typed at the terminal, read by a daemon thread so that the event loop never blocks on the
keyboard and the program can exit while a read is pending."""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import TextIO


class LineReader:
    """`await reader.readline()` → the next line without its newline, or None at end of input."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdin
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._read, name="stdin-reader", daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self._stream:
                self._deliver(line.rstrip("\r\n"))
        except (OSError, ValueError):
            pass  # stdin closed under us: treat it as the end of input
        self._deliver(None)

    def _deliver(self, line: str | None) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, line)
        except RuntimeError:
            pass  # the loop has closed: the program is exiting

    async def readline(self) -> str | None:
        return await self._queue.get()
