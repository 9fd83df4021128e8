"""A scripted stand-in for a server's `/v1/realtime`, for testing the clients' logic (what they send, how
they react to each event) without an LLM or speech recognizer. It is not the server: the tests that need
the real endpoint are in test_realtime_server.py.

It runs in its own thread and event loop, so both async tests and a `csmstream chat` subprocess can use it.

Script: it answers `response.create` with `response.created`, then `parts` pairs of
`response.audio.delta` (0.1 s of a tone) + `response.audio_transcript.delta`, `part_delay_s` apart, then
`response.audio.done` + `response.done`; `response.cancel` stops the answer with `response.done`
(cancelled). Input audio: after `turn_samples` appended samples it plays a user turn (speech_started,
speech_stopped, a transcript, then an answer); after `barge_in_samples` more it sends `speech_started`
and, like a server with `interrupt_response`, cancels the answer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
from dataclasses import dataclass, field

import numpy as np
from websockets.asyncio.server import serve

SAMPLE_RATE = 24_000


@dataclass
class Script:
    parts: int = 6
    part_delay_s: float = 0.05
    turn_samples: int = 19_200  # 0.8 s of input audio
    barge_in_samples: int = 19_200  # then 0.8 s more
    heard: str = "hello there"


@dataclass
class FakeRealtimeServer:
    script: Script = field(default_factory=Script)
    received: list[dict] = field(default_factory=list)  # every client event, in order
    sent: list[dict] = field(default_factory=list)  # every server event, in order
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def types_received(self) -> list[str]:
        with self._lock:
            return [event["type"] for event in self.received]

    def types_sent(self) -> list[str]:
        with self._lock:
            return [event["type"] for event in self.sent]

    @contextlib.contextmanager
    def running(self):
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        stop = asyncio.Event()

        async def main() -> None:
            async with serve(self._connection, "127.0.0.1", 0) as server:
                port = server.sockets[0].getsockname()[1]
                self.url = f"http://127.0.0.1:{port}"
                ready.set()
                await stop.wait()

        thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
        thread.start()
        assert ready.wait(10), "the fake realtime server did not start"
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(10)

    async def _connection(self, ws) -> None:
        conversation = _Conversation(self, ws)
        await conversation.send({"type": "session.created", "session": {"id": "sess_1", "voice": "default"}})
        async for raw in ws:
            event = json.loads(raw)
            with self._lock:
                self.received.append(event)
            await conversation.on_event(event)
        conversation.stop_answer()


class _Conversation:
    def __init__(self, server: FakeRealtimeServer, ws) -> None:
        self.server = server
        self.script = server.script
        self.ws = ws
        self.appended_samples = 0
        self.turn_done = False
        self.barged_in = False
        self.answer: asyncio.Task | None = None
        self.num_responses = 0
        self.last_user_text = ""

    async def send(self, event: dict) -> None:
        with self.server._lock:
            self.server.sent.append(event)
        await self.ws.send(json.dumps(event))

    async def on_event(self, event: dict) -> None:
        kind = event["type"]
        if kind == "conversation.item.create":
            self.last_user_text = event["item"]["content"][0]["text"]
        elif kind == "response.create":
            self.start_answer(f"You said: {self.last_user_text}.")
        elif kind == "response.cancel":
            if self.answer is not None and not self.answer.done():
                self.answer.cancel()
        elif kind == "input_audio_buffer.append":
            self.appended_samples += len(base64.b64decode(event["audio"])) // 2
            await self.on_audio()

    async def on_audio(self) -> None:
        if not self.turn_done and self.appended_samples >= self.script.turn_samples:
            self.turn_done = True
            await self.send(
                {"type": "input_audio_buffer.speech_started", "audio_start_ms": 100, "item_id": "u1"}
            )
            await self.send(
                {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 700, "item_id": "u1"}
            )
            await self.send(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": "u1",
                    "transcript": self.script.heard,
                }
            )
            self.start_answer("I heard you say something.")
        elif (
            self.turn_done
            and not self.barged_in
            and self.appended_samples >= self.script.turn_samples + self.script.barge_in_samples
        ):
            self.barged_in = True
            await self.send(
                {"type": "input_audio_buffer.speech_started", "audio_start_ms": 900, "item_id": "u2"}
            )
            if self.answer is not None and not self.answer.done():
                self.answer.cancel()  # interrupt_response

    def start_answer(self, text: str) -> None:
        self.num_responses += 1
        self.answer = asyncio.create_task(self.speak(f"resp_{self.num_responses}", text))

    def stop_answer(self) -> None:
        if self.answer is not None:
            self.answer.cancel()

    async def speak(self, response_id: str, text: str) -> None:
        await self.send(
            {"type": "response.created", "response": {"id": response_id, "status": "in_progress"}}
        )
        words = text.split()
        per_part = max(1, -(-len(words) // self.script.parts))
        tone = (np.sin(np.arange(SAMPLE_RATE // 10) * 0.05) * 8000).astype("<i2")  # 0.1 s
        status = "completed"
        try:
            for part in range(self.script.parts):
                await self.send(
                    {
                        "type": "response.audio.delta",
                        "response_id": response_id,
                        "delta": base64.b64encode(tone.tobytes()).decode("ascii"),
                    }
                )
                piece = words[part * per_part : (part + 1) * per_part]
                if piece:
                    delta = (" " if part else "") + " ".join(piece)
                    await self.send(
                        {
                            "type": "response.audio_transcript.delta",
                            "response_id": response_id,
                            "delta": delta,
                        }
                    )
                await asyncio.sleep(self.script.part_delay_s)
            await self.send({"type": "response.audio.done", "response_id": response_id})
        except asyncio.CancelledError:
            status = "cancelled"
        with contextlib.suppress(Exception):
            await self.send({"type": "response.done", "response": {"id": response_id, "status": status}})
