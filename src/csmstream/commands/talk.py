"""`csmstream talk`: a spoken conversation with the server's assistant, with barge-in.

The microphone streams to `/v1/realtime` (24 kHz mono PCM16, one `input_audio_buffer.append` per 40 ms
block); the server's VAD decides when a turn starts and ends. The terminal shows the state (listening /
thinking / speaking), what the server heard, and the assistant's words. When the user starts talking
while the assistant's audio plays, the audio buffered here is dropped at once.

Use headphones: with speakers, the microphone hears the assistant and interrupts it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

from csmstream.errors import CsmstreamError

TICK_S = 0.1  # how often the view checks whether the answer finished playing
ADVICE = "Use headphones: through speakers the microphone hears the assistant and cuts it off."


def add_parser(subparsers) -> None:
    from csmstream.clients.server_url import DEFAULT_SERVER_URL
    from csmstream.commands.chat import add_conversation_flags

    p = subparsers.add_parser("talk", help="talk with a csmstream server's assistant through the microphone")
    add_conversation_flags(p, DEFAULT_SERVER_URL)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from csmstream.clients.server_url import resolve_api_key
    from csmstream.clients.sound_device import audio_disabled

    api_key = resolve_api_key(args.api_key, os.environ)
    return asyncio.run(talk_main(args, api_key, audio_disabled(os.environ)))


def open_microphone(disabled: bool):
    """The microphone, or a `CsmstreamError` saying why `talk` cannot run without one."""
    from csmstream.clients.errors import NoAudioDevice
    from csmstream.clients.microphone import Microphone

    if disabled:
        raise NoAudioDevice("talk needs a microphone, and sound is turned off (CSMSTREAM_NO_AUDIO)")
    try:
        return Microphone()
    except NoAudioDevice as exc:
        raise NoAudioDevice(f"talk needs a microphone: {exc}; `csmstream chat` works without one") from None


async def talk_main(args: argparse.Namespace, api_key: str | None, no_audio: bool) -> int:
    from csmstream.clients.conversation_view import ConversationView
    from csmstream.clients.player import open_player
    from csmstream.clients.realtime import RealtimeClient

    # 1. the devices first (no point connecting without a microphone), then the server
    mic = open_microphone(no_audio)
    player, why_not = open_player(no_audio)
    if player is None:
        print(f"csmstream: no sound output: {why_not}; you will only read the answers", file=sys.stderr)
    try:
        client = await RealtimeClient.connect(args.server, api_key)
    except CsmstreamError:
        if player is not None:
            player.close()
        raise
    print(ADVICE, file=sys.stderr)
    print(f"microphone: {mic.device.name}; Ctrl-C to leave", file=sys.stderr)
    view = ConversationView(sys.stdout, player, show_states=True, assistant_label="assistant")
    try:
        await client.update_session(voice=args.voice, instructions=args.instructions)
        mic.start()
        return await talk_loop(client, view, mic)
    finally:
        mic.close()
        if player is not None:
            player.close()
        await client.close()


async def talk_loop(client, view, audio_source, tick_s: float = TICK_S) -> int:
    """Stream `audio_source.read()` blocks to the server while showing its events, until the server ends
    the conversation (an error is raised) or `audio_source.read()` returns None (the source is exhausted)."""
    tasks = {
        asyncio.create_task(_send_audio(client, audio_source), name="talk-send"),
        asyncio.create_task(_receive(client, view), name="talk-receive"),
        asyncio.create_task(_tick(view, tick_s), name="talk-tick"),
    }
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # the error that ended it, if any
        return 0
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _send_audio(client, audio_source) -> None:
    while (block := await audio_source.read()) is not None:
        await client.append_audio(block)


async def _receive(client, view) -> None:
    async for event in client.events():
        view.handle(event)
    raise CsmstreamError("the server ended the conversation")


async def _tick(view, tick_s: float) -> None:
    while True:
        await asyncio.sleep(tick_s)
        view.tick()
