"""A client that stops reading gets its request cancelled with `busy`, and the engine is never held up.

In process, with an in-test engine and a fake socket whose writes stall: on a real loopback socket the
kernel's send buffer (up to 4 MB with autotuning) would first absorb a minute of audio."""

from __future__ import annotations

import asyncio
import json

import numpy as np
from starlette.websockets import WebSocketState

from csmstream.config import Settings
from csmstream.engine.base import EngineStats, RequestHandle, SpeechEngine
from csmstream.engine.events import AudioChunk, Finished, Started
from csmstream.server.context import ServerContext
from csmstream.server.metrics import ServerMetrics
from csmstream.server.options import ServerOptions
from csmstream.server.tts_ws import TtsConnection

CHUNK_SAMPLES = 1920
MAX_CHUNKS = 2000  # 160 s of audio: far more than a 16 kB outbox holds


class EndlessHandle(RequestHandle):
    """Makes chunks as fast as the event loop allows until cancelled (an engine that never waits)."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.cancelled = False
        self.num_chunks = 0

    async def events(self):
        yield Started()
        while self.num_chunks < MAX_CHUNKS and not self.cancelled:
            yield AudioChunk(seq=self.num_chunks, pcm=np.zeros(CHUNK_SAMPLES, np.float32), start_frame=0)
            self.num_chunks += 1
            await asyncio.sleep(0)
        seconds = self.num_chunks * CHUNK_SAMPLES / 24_000
        yield Finished("cancelled" if self.cancelled else "length", seconds, 1.0, 0.1)

    def cancel(self) -> None:
        self.cancelled = True


class EndlessEngine(SpeechEngine):
    name = "test"
    model_name = "endless"
    sample_rate = 24_000

    def __init__(self) -> None:
        self.handles: list[EndlessHandle] = []

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def submit(self, request) -> RequestHandle:
        self.handles.append(EndlessHandle(request.request_id))
        return self.handles[-1]

    def stats(self) -> EngineStats:
        active = sum(not h.cancelled and h.num_chunks < MAX_CHUNKS for h in self.handles)
        return EngineStats(active, 0, 4, 4, None)


class StalledSocket:
    """Accepts `free_frames` writes, then every write waits until `unstall` (a client that stopped reading)."""

    def __init__(self, free_frames: int) -> None:
        self.application_state = WebSocketState.CONNECTED
        self.incoming: asyncio.Queue[dict] = asyncio.Queue()
        self.sent: list[str | bytes] = []
        self._free_frames = free_frames
        self.unstalled = asyncio.Event()

    async def accept(self) -> None: ...

    async def receive(self) -> dict:
        return await self.incoming.get()

    async def _write(self, frame) -> None:
        if len(self.sent) >= self._free_frames:
            await self.unstalled.wait()
        self.sent.append(frame)

    async def send_text(self, text: str) -> None:
        await self._write(text)

    async def send_bytes(self, data: bytes) -> None:
        await self._write(data)

    async def close(self, code: int = 1000) -> None:
        self.application_state = WebSocketState.DISCONNECTED


def test_stalled_client_request_is_cancelled_with_busy_while_the_engine_runs_on():
    async def main():
        engine = EndlessEngine()
        ctx = ServerContext(
            Settings(), engine, None, ServerOptions(ws_send_buffer_bytes=16 * 1024), ServerMetrics()
        )
        socket = StalledSocket(free_frames=3)
        connection = asyncio.create_task(TtsConnection(socket, ctx).serve())
        message = {"type": "synthesize", "text": "Hi.", "request_id": "s", "format": "pcm_f32le"}
        await socket.incoming.put({"type": "websocket.receive", "text": json.dumps(message)})
        for _ in range(2000):  # until the engine side has seen the cancel
            await asyncio.sleep(0.001)
            if engine.handles and engine.handles[0].cancelled:
                break
        handle = engine.handles[0]
        assert handle.cancelled, "the request of a client that does not read must be cancelled"
        assert handle.num_chunks < MAX_CHUNKS
        socket.unstalled.set()  # the client reads again: it must find the error after the audio it missed
        for _ in range(2000):
            await asyncio.sleep(0.001)
            texts = [json.loads(f) for f in socket.sent if isinstance(f, str)]
            if texts and texts[-1]["type"] in ("error", "completion"):
                break
        await socket.incoming.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(connection, timeout=10)
        return handle, texts

    handle, texts = asyncio.run(main())
    assert texts[-1]["type"] == "error" and texts[-1]["code"] == "busy", texts[-1]
    assert texts[-1]["request_id"] == "s"
    chunks = [t for t in texts if t["type"] == "audio_chunk"]
    # what was queued before the cancel still arrives, in order; far less than the engine could make
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    assert 0 < len(chunks) * CHUNK_SAMPLES * 4 <= 16 * 1024 + CHUNK_SAMPLES * 4 * 2
