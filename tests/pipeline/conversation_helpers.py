"""Scripted stand-ins for the parts of a conversation that are not under test: an LLM that says what the
test wants when the test lets it, and a speech engine whose audio length and codes are known exactly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import numpy as np

from csmstream.engine.base import EngineStats, RequestHandle, SpeechEngine
from csmstream.engine.events import AudioChunk, Event, Finished, Started
from csmstream.engine.request import FRAME_SAMPLES, SynthesisRequest
from csmstream.pipeline.llm.base import ChatMessage, LLMBackend

NUM_CODEBOOKS = 32


class ScriptedLLM(LLMBackend):
    """Yields `deltas` in order; a `gates[i]` event, when given, must be set before delta i is yielded."""

    name = "scripted"

    def __init__(self, deltas: Sequence[str], gates: dict[int, asyncio.Event] | None = None) -> None:
        self.deltas = list(deltas)
        self.gates = gates or {}
        self.calls: list[list[ChatMessage]] = []
        self.finished = False  # yielded every delta
        self.saw_cancel = False

    async def stream_chat(
        self, messages: list[ChatMessage], *, cancel: asyncio.Event | None = None
    ) -> AsyncIterator[str]:
        self.calls.append([dict(m) for m in messages])
        try:
            for i, delta in enumerate(self.deltas):
                gate = self.gates.get(i)
                if gate is not None:
                    waits = [asyncio.ensure_future(gate.wait())]
                    if cancel is not None:
                        waits.append(asyncio.ensure_future(cancel.wait()))
                    try:
                        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        for task in waits:
                            task.cancel()
                if cancel is not None and cancel.is_set():
                    self.saw_cancel = True
                    return
                yield delta
        except (asyncio.CancelledError, GeneratorExit):
            # the consumer stopped the stream (its task was cancelled, or it closed the generator) before the end
            self.saw_cancel = True
            raise
        self.finished = True


class ScriptedHandle(RequestHandle):
    def __init__(self, engine: ScriptedEngine, request: SynthesisRequest, num_frames: int, code: int) -> None:
        self.request_id = request.request_id
        self.request = request
        self.num_frames = num_frames
        self.code = code
        self.cancelled = False
        self.sent_frames = 0
        self._engine = engine

    def cancel(self) -> None:
        self.cancelled = True

    async def events(self) -> AsyncIterator[Event]:
        yield Started()
        seq = 0
        while self.sent_frames < self.num_frames and not self.cancelled:
            await asyncio.sleep(self._engine.step_s)  # one engine step
            if self.cancelled:
                break
            frames = min(self._engine.chunk_frames, self.num_frames - self.sent_frames)
            # a ramp, so a cut can be checked sample by sample
            start = self.sent_frames * FRAME_SAMPLES
            pcm = (np.arange(start, start + frames * FRAME_SAMPLES) % 1000 / 1000.0).astype(np.float32)
            yield AudioChunk(seq=seq, pcm=pcm, start_frame=self.sent_frames)
            self.sent_frames += frames
            seq += 1
        # codes of every generated frame: codebook 0 numbers the frame, the rest hold the request's code
        codes = np.full((self.sent_frames, NUM_CODEBOOKS), self.code, dtype=np.int64)
        codes[:, 0] = np.arange(self.sent_frames)
        reason = "cancelled" if self.cancelled else "eos"
        yield Finished(reason, self.sent_frames * FRAME_SAMPLES / 24_000, 1.0, 0.5, codes=codes)


class ScriptedEngine(SpeechEngine):
    """`frames_per_char` frames of audio per character of text, `chunk_frames` per chunk, one chunk per
    `step_s`. Records every request and handle; `submitted` is set at each submit."""

    name = "scripted"
    model_name = "scripted"
    sample_rate = 24_000

    def __init__(self, frames_per_char: float = 0.5, chunk_frames: int = 2, step_s: float = 0.001) -> None:
        self.frames_per_char = frames_per_char
        self.chunk_frames = chunk_frames
        self.step_s = step_s
        self.handles: list[ScriptedHandle] = []
        self.submitted = asyncio.Event()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def frames_for(self, text: str) -> int:
        return max(1, round(len(text) * self.frames_per_char))

    def submit(self, request: SynthesisRequest) -> RequestHandle:
        handle = ScriptedHandle(self, request, self.frames_for(request.text), code=len(self.handles) + 1)
        self.handles.append(handle)
        self.submitted.set()
        return handle

    def stats(self) -> EngineStats:
        return EngineStats(0, 0, 1, 0, None)


class ManualClock:
    """A clock the test moves by hand (the playback estimate must not depend on the machine's speed)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class EventLog:
    """Collects a conversation's events in the background; `wait_for` waits until one matches."""

    def __init__(self, conversation) -> None:  # noqa: ANN001
        self.events: list = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._collect(conversation))

    async def _collect(self, conversation) -> None:  # noqa: ANN001
        async for event in conversation.events():
            self.events.append(event)
            self._changed.set()

    def of_type(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, predicate, timeout_s: float = 20.0):  # noqa: ANN001
        async def search():
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(search(), timeout_s)

    async def wait_for_type(self, kind: type, timeout_s: float = 20.0):
        return await self.wait_for(lambda e: isinstance(e, kind), timeout_s)


async def until(condition, timeout_s: float = 20.0) -> None:  # noqa: ANN001
    """Poll `condition()` on the event loop until it holds."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.002)

    await asyncio.wait_for(poll(), timeout_s)
