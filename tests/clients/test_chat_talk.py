"""`chat` and `talk` logic against a scripted realtime server (fake_realtime.py), and their no-device and
no-server paths. The same loops against the real `/v1/realtime` are in test_realtime_server.py."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from client_audio import BufferPlayer
from client_servers import free_port
from fake_realtime import FakeRealtimeServer, Script

from csmstream.cli import main
from csmstream.clients.conversation_view import ConversationView
from csmstream.clients.realtime import RealtimeClient
from csmstream.commands.chat import chat_loop
from csmstream.commands.talk import talk_loop


class TypedLines:
    """What the user types, fed by the test as the conversation goes."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()

    def type(self, line: str | None) -> None:
        self.queue.put_nowait(line)

    async def readline(self) -> str | None:
        return await self.queue.get()


async def wait_for(condition, timeout_s: float = 10.0, what: str = "condition") -> None:
    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def fake_server():
    with FakeRealtimeServer(Script(parts=8, part_delay_s=0.05)).running() as server:
        yield server


def test_chat_sends_the_message_and_prints_the_streamed_answer(fake_server):
    async def scenario():
        out = io.StringIO()
        player = BufferPlayer(instant=True)
        view = ConversationView(out, player, show_states=False)
        lines = TypedLines()
        async with await RealtimeClient.connect(fake_server.url) as client:
            lines.type("What is the capital of France?")
            lines.type(None)  # end of input: chat waits for the answer, then leaves
            rc = await asyncio.wait_for(chat_loop(client, view, lines, out), 10)
        return rc, out.getvalue(), player

    rc, text, player = asyncio.run(scenario())
    assert rc == 0
    assert text == "assistant: You said: What is the capital of France?.\n"
    assert player.received_samples == 8 * 2400, "every audio delta reached the player"
    received = [e for e in fake_server.received if e["type"] != "session.update"]
    assert [e["type"] for e in received] == ["conversation.item.create", "response.create"]
    item = received[0]["item"]
    assert item["role"] == "user" and item["content"] == [
        {"type": "input_text", "text": "What is the capital of France?"}
    ]


def test_chat_empty_line_cancels_the_answer_and_stops_playback(fake_server):
    async def scenario():
        out = io.StringIO()
        player = BufferPlayer()
        view = ConversationView(out, player, show_states=False)
        lines = TypedLines()
        async with await RealtimeClient.connect(fake_server.url) as client:
            loop_task = asyncio.create_task(chat_loop(client, view, lines, out))
            lines.type("Tell me a long story.")
            await wait_for(lambda: player.received_samples >= 2 * 2400, what="the answer's audio")
            lines.type("")
            await wait_for(
                lambda: "response.done" in fake_server.types_sent(), what="the cancelled response.done"
            )
            await wait_for(lambda: not view.response_active, what="the view to see the end")
            lines.type("/quit")
            rc = await asyncio.wait_for(loop_task, 10)
        return rc, out.getvalue(), player

    rc, text, player = asyncio.run(scenario())
    assert rc == 0
    assert "response.cancel" in fake_server.types_received()
    done_events = [e for e in fake_server.sent if e["type"] == "response.done"]
    assert done_events[-1]["response"]["status"] == "cancelled"
    assert player.pending_seconds == 0 and player.clears >= 1, "the buffered audio was dropped"
    assert player.received_samples < 8 * 2400, "the rest of the answer was not played"
    assert "(stopped)" in text


def test_chat_command_reads_piped_input(fake_server):
    """The real command, as a user would pipe into it: text only, exits after the answer."""
    env = {**os.environ, "CSMSTREAM_NO_AUDIO": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "csmstream.cli", "chat", "--server", fake_server.url, "--no-audio"],
        input="Hello over a pipe\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "assistant: You said: Hello over a pipe." in result.stdout


def test_talk_streams_40ms_blocks_shows_the_turn_and_barges_in():
    script = Script(parts=30, part_delay_s=0.02, turn_samples=19_200, barge_in_samples=19_200)
    with FakeRealtimeServer(script).running() as server:

        class Mic:
            """40 ms blocks: a first turn, then (once the answer plays) the user talks over it."""

            def __init__(self) -> None:
                self.blocks: asyncio.Queue[np.ndarray | None] = asyncio.Queue()

            def say(self, seconds: float) -> None:
                for _ in range(round(seconds / 0.04)):
                    self.blocks.put_nowait(np.full(960, 500, dtype=np.int16))

            async def read(self) -> np.ndarray | None:
                return await self.blocks.get()

        async def scenario():
            out = io.StringIO()
            player = BufferPlayer()  # never drained: the speaker is still playing at the barge-in
            view = ConversationView(out, player, show_states=True)
            mic = Mic()
            async with await RealtimeClient.connect(server.url) as client:
                loop_task = asyncio.create_task(talk_loop(client, view, mic, tick_s=0.02))
                mic.say(0.8)
                await wait_for(
                    lambda: view.state == "speaking" and player.pending_seconds > 0.2, what="speaking"
                )
                mic.say(0.8)
                await wait_for(lambda: view.interruptions == 1, what="the barge-in")
                assert player.pending_seconds == 0, "playback is flushed at the speech_started"
                await wait_for(lambda: not view.response_active, what="the cancelled answer's end")
                mic.blocks.put_nowait(None)  # the microphone closes: talk ends
                rc = await asyncio.wait_for(loop_task, 10)
            return rc, out.getvalue(), player

        rc, text, player = asyncio.run(scenario())
    assert rc == 0
    appends = [e for e in server.received if e["type"] == "input_audio_buffer.append"]
    assert len(appends) == 40, f"one append per 40 ms block, got {len(appends)}"
    assert all(len(base64.b64decode(e["audio"])) == 960 * 2 for e in appends), "40 ms of PCM16 at 24 kHz each"
    lines = text.splitlines()
    assert lines[:4] == ["[listening]", "[thinking]", "you: hello there", "[speaking]"], lines
    assert lines[4].startswith("assistant: I heard") and lines[4].endswith(" …"), "the cut answer is marked"
    assert "[listening]" in lines[5:], "back to listening after the barge-in"
    assert player.pending_seconds == 0


def test_talk_without_a_microphone_says_so(capsys, no_sound):
    rc = main(["talk", "--server", f"http://127.0.0.1:{free_port()}"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "talk needs a microphone" in err and "CSMSTREAM_NO_AUDIO" in err, err


def test_chat_without_a_server_says_so(capsys, no_sound):
    url = f"http://127.0.0.1:{free_port()}"
    rc = main(["chat", "--server", url, "--no-audio"])
    err = capsys.readouterr().err
    assert rc == 1 and f"no csmstream server at {url}" in err, err


def test_chat_against_a_server_without_realtime_says_so(capsys, no_sound):
    """An older or other server on loopback that refuses the /v1/realtime WebSocket (HTTP 404)."""
    import threading
    from http import HTTPStatus

    from websockets.sync.server import serve

    def refuse(connection, request):
        return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")

    with serve(lambda ws: None, "127.0.0.1", 0, process_request=refuse) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.socket.getsockname()[1]}"
        rc = main(["chat", "--server", url, "--no-audio"])
        server.shutdown()
    err = capsys.readouterr().err
    assert rc == 1 and "has no /v1/realtime endpoint" in err, err
