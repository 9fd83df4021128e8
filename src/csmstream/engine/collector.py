"""The bridge from the engine thread to one request's consumer in the asyncio loop.

The engine thread never waits on a consumer: `push` hands the event to the loop with
`call_soon_threadsafe` and returns. The collector is bounded: when the consumer falls more than
`max_pending_chunks` audio chunks behind, `push` reports overflow and the engine ends the request with an
error instead of buffering without limit (a slow client never stalls a step and never eats the memory).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable

from csmstream.engine.base import RequestHandle
from csmstream.engine.events import AudioChunk, Event, Finished


class Collector(RequestHandle):
    def __init__(
        self,
        request_id: str,
        loop: asyncio.AbstractEventLoop,
        on_cancel: Callable[[], None],
        max_pending_chunks: int = 256,
    ):
        self.request_id = request_id
        self._loop = loop
        self._on_cancel = on_cancel
        self._max_pending_chunks = max_pending_chunks
        self._events: deque[Event] = deque()  # touched only in the loop thread
        self._ready = asyncio.Event()
        self._pending_chunks = 0  # chunks pushed but not yet taken by the consumer
        self._count_lock = threading.Lock()
        self._finished = False

    # ---- engine thread side --------------------------------------------------------------------------
    def push(self, event: Event) -> bool:
        """Hand an event to the consumer. Returns False (and drops the chunk) when the consumer is too far
        behind; the caller then finishes the request with an error."""
        if isinstance(event, AudioChunk):
            with self._count_lock:
                if self._pending_chunks >= self._max_pending_chunks:
                    return False
                self._pending_chunks += 1
        try:
            self._loop.call_soon_threadsafe(self._deliver, event)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            return False
        return True

    # ---- loop side -----------------------------------------------------------------------------------
    def _deliver(self, event: Event) -> None:
        self._events.append(event)
        self._ready.set()

    async def events(self) -> AsyncIterator[Event]:  # type: ignore[override]
        while True:
            while not self._events:
                self._ready.clear()
                await self._ready.wait()
            event = self._events.popleft()
            if isinstance(event, AudioChunk):
                with self._count_lock:
                    self._pending_chunks -= 1
            yield event
            if isinstance(event, Finished):
                self._finished = True
                return

    def cancel(self) -> None:
        if not self._finished:
            self._on_cancel()
