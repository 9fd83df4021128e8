"""A small synchronous `/v1/realtime` client for the tests: a reader thread stamps every server event with
its arrival time, so a test can send audio at real-time pace and look at what came back meanwhile."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

SAMPLE_RATE = 24_000
CHUNK_MS = 40


@dataclass(frozen=True)
class Received:
    at: float  # time.monotonic() when the event arrived
    event: dict[str, Any]

    @property
    def type(self) -> str:
        return self.event["type"]


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


class RealtimeClient:
    def __init__(self, url: str) -> None:
        self.ws = connect(url, open_timeout=30, close_timeout=5, max_size=None)
        self.received: list[Received] = []
        self._changed = threading.Condition()
        self.closed = False
        self._reader = threading.Thread(target=self._read, daemon=True, name="realtime-reader")
        self._reader.start()

    def _read(self) -> None:
        try:
            for frame in self.ws:
                assert isinstance(frame, str), f"the server sent a binary frame of {len(frame)} bytes"
                item = Received(time.monotonic(), json.loads(frame))
                with self._changed:
                    self.received.append(item)
                    self._changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            with self._changed:
                self.closed = True
                self._changed.notify_all()

    def __enter__(self) -> RealtimeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.ws.close()
        self._reader.join(timeout=10)

    # ---- sending

    def send(self, kind: str, **fields: Any) -> None:
        self.ws.send(json.dumps({"type": kind, **fields}))

    def send_raw(self, frame: str | bytes) -> None:
        self.ws.send(frame)

    def append(self, audio: np.ndarray) -> None:
        self.send("input_audio_buffer.append", audio=base64.b64encode(pcm16(audio)).decode("ascii"))

    def stream(self, audio: np.ndarray, chunk_ms: int = CHUNK_MS) -> list[float]:
        """Send `audio` in `chunk_ms` appends at real-time pace (as a microphone would); returns the send
        time of each chunk."""
        chunk = SAMPLE_RATE * chunk_ms // 1000
        start = time.monotonic()
        sent_at = []
        for index, offset in enumerate(range(0, len(audio), chunk)):
            delay = start + index * chunk_ms / 1000 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent_at.append(time.monotonic())
            self.append(audio[offset : offset + chunk])
        return sent_at

    # ---- reading

    def wait_for(
        self, kind: str, timeout_s: float = 60.0, where: Callable[[dict], bool] | None = None, after: int = 0
    ) -> Received:
        """The first event of `kind` (matching `where`) at index ≥ `after` in `received`; waits for it."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for item in self.received[after:]:
                    if item.type == kind and (where is None or where(item.event)):
                        return item
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed:
                    seen = [r.type for r in self.received[after:]]
                    raise AssertionError(f"no {kind} within {timeout_s} s; after index {after} got {seen}")
                self._changed.wait(remaining)

    def index(self, item: Received) -> int:
        with self._changed:
            return self.received.index(item)

    def of_type(self, kind: str) -> list[dict]:
        with self._changed:
            return [r.event for r in self.received if r.type == kind]

    def audio_of(self, response_id: str) -> bytes:
        """The PCM16 bytes of every `response.audio.delta` of one response, in order."""
        deltas = [e for e in self.of_type("response.audio.delta") if e["response_id"] == response_id]
        return b"".join(base64.b64decode(e["delta"]) for e in deltas)

    def mark(self) -> int:
        """An index to pass as `after` (events arriving from now on)."""
        with self._changed:
            return len(self.received)

    def wait_next(self, after: int, timeout_s: float = 30.0) -> Received:
        """The event at index `after` (the first one arriving after `mark()` returned `after`)."""
        start = after
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self.received) <= start:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed:
                    raise AssertionError(f"no event within {timeout_s} s")
                self._changed.wait(remaining)
            return self.received[start]
