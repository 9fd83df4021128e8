"""`chat` and `talk` against the real `/v1/realtime` of a piper server on loopback.

Skipped while the server has no `/v1/realtime` (it is being built); the scripted-server tests in
test_chat_talk.py cover the client logic meanwhile.
"""

from __future__ import annotations

import asyncio
import io

import numpy as np
from client_audio import BufferPlayer
from client_servers import API_KEY

from csmstream.clients.conversation_view import ConversationView
from csmstream.clients.realtime import RealtimeClient
from csmstream.clients.tts_stream import TtsChunk, TtsStreamClient
from csmstream.commands.chat import chat_loop
from csmstream.commands.talk import talk_loop

BLOCK_SAMPLES = 960  # 40 ms at 24 kHz


async def connect_or_skip(url: str) -> RealtimeClient:
    """The endpoint exists: a refused connection is a failure, not a reason to skip."""
    return await RealtimeClient.connect(url, API_KEY)


class TypedLines:
    def __init__(self, lines: list[str | None]) -> None:
        self.lines = list(lines)

    async def readline(self) -> str | None:
        return self.lines.pop(0) if self.lines else None


def test_chat_gets_a_spoken_answer(piper_server):
    async def scenario():
        client = await connect_or_skip(piper_server.url)
        out = io.StringIO()
        player = BufferPlayer(instant=True)
        view = ConversationView(out, player, show_states=False)
        async with client:
            rc = await asyncio.wait_for(chat_loop(client, view, TypedLines(["Please say hello."]), out), 120)
        return rc, out.getvalue(), view, player

    rc, text, view, player = asyncio.run(scenario())
    assert rc == 0
    assert view.last_error is None, f"the server reported an error: {view.last_error}\n{text}"
    assert "assistant: " in text, text
    assert player.received_samples > 0, "the answer came with audio"


class SpeechThenSilence:
    """A microphone that says `pcm` once, then stays silent (at real-time pace) until `stop()`."""

    def __init__(self, pcm: np.ndarray) -> None:
        padded = np.concatenate([pcm, np.zeros(-len(pcm) % BLOCK_SAMPLES, np.int16)])
        self.blocks = list(padded.reshape(-1, BLOCK_SAMPLES))
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    async def read(self) -> np.ndarray | None:
        if self.stopped:
            return None
        if self.blocks:
            await asyncio.sleep(0.005)
            return self.blocks.pop(0)
        await asyncio.sleep(0.04)
        return np.zeros(BLOCK_SAMPLES, np.int16)


def test_talk_hears_the_user_and_shows_the_transcript(piper_server):
    async def speech() -> np.ndarray:
        async with await TtsStreamClient.connect(piper_server.url, API_KEY) as tts:
            chunks = [
                e.pcm async for e in tts.synthesize("Hello, can you hear me?") if isinstance(e, TtsChunk)
            ]
        return np.concatenate(chunks)

    async def scenario():
        client = await connect_or_skip(piper_server.url)
        mic = SpeechThenSilence(await speech())
        out = io.StringIO()
        view = ConversationView(out, BufferPlayer(instant=True), show_states=True)
        async with client:
            loop_task = asyncio.create_task(talk_loop(client, view, mic, tick_s=0.05))
            for _ in range(1200):  # up to 60 s
                if "you: " in out.getvalue() or loop_task.done():
                    break
                await asyncio.sleep(0.05)
            mic.stop()
            await asyncio.wait_for(loop_task, 30)
        return out.getvalue()

    text = asyncio.run(scenario())
    heard = [line for line in text.splitlines() if line.startswith("you: ")]
    assert heard, f"no user transcript shown:\n{text}"
    assert "hear" in heard[0].lower(), f"the transcript should hold the words spoken: {heard[0]}"
    assert "[thinking]" in text, text
