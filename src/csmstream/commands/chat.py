"""`csmstream chat`: type to the server's assistant; read its answer as it streams, and hear it.

Uses `/v1/realtime` (one conversation per connection, so the server keeps the history): each line
becomes a `conversation.item.create` + `response.create`. An empty line while the assistant is
answering stops it (`response.cancel`, and the audio still buffered here is dropped). `/quit`, end of
input or Ctrl-C exits; at end of input (a pipe) the last answer is waited for first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from typing import TextIO

from csmstream.errors import CsmstreamError

QUIT_COMMANDS = ("/quit", "/exit")
HELP = "Type a message and press Enter. Empty line: stop the answer. /quit or Ctrl-C: leave."


def add_parser(subparsers) -> None:
    from csmstream.clients.server_url import DEFAULT_SERVER_URL

    p = subparsers.add_parser(
        "chat", help="type to a csmstream server's assistant; read and hear its answers"
    )
    add_conversation_flags(p, DEFAULT_SERVER_URL)
    p.add_argument("--no-audio", action="store_true", help="text only: do not play the answers")
    p.set_defaults(func=run)


def add_conversation_flags(p: argparse.ArgumentParser, default_server: str) -> None:
    """The flags `chat` and `talk` share."""
    p.add_argument(
        "--server", default=default_server, help=f"the csmstream server (default {default_server})"
    )
    p.add_argument("--voice", default=None, help="the assistant's voice id (see `csmstream voices`)")
    p.add_argument(
        "--instructions", default=None, help="the assistant's system prompt (default: the server's)"
    )
    p.add_argument("--api-key", default=None, help="the server's API key (default: $CSMSTREAM_API_KEY)")


def run(args: argparse.Namespace) -> int:
    from csmstream.clients.server_url import resolve_api_key
    from csmstream.clients.sound_device import audio_disabled

    api_key = resolve_api_key(args.api_key, os.environ)
    no_audio = args.no_audio or audio_disabled(os.environ)
    return asyncio.run(chat_main(args, api_key, no_audio))


async def chat_main(args: argparse.Namespace, api_key: str | None, no_audio: bool) -> int:
    from csmstream.clients.console import LineReader
    from csmstream.clients.conversation_view import ConversationView
    from csmstream.clients.player import open_player
    from csmstream.clients.realtime import RealtimeClient

    client = await RealtimeClient.connect(args.server, api_key)
    player, why_not = (None, None) if no_audio else open_player(False)
    if why_not:
        print(f"csmstream: no sound card: {why_not}; text only", file=sys.stderr)
    view = ConversationView(sys.stdout, player, show_states=False)
    print(HELP, file=sys.stderr)
    try:
        await client.update_session(voice=args.voice, instructions=args.instructions)
        return await chat_loop(client, view, LineReader(), sys.stdout)
    finally:
        if player is not None:
            player.close()
        await client.close()


async def chat_loop(client, view, lines, out: TextIO) -> int:
    """Until `/quit` or the end of input: send each typed line, show the events. Returns the exit code."""
    receiver = asyncio.create_task(_receive(client, view), name="chat-receive")
    typist = asyncio.create_task(_type(client, view, lines, out), name="chat-type")
    try:
        done, _ = await asyncio.wait({receiver, typist}, return_when=asyncio.FIRST_COMPLETED)
        if typist in done:
            return typist.result()
        receiver.result()  # raises the error that ended the connection
        raise CsmstreamError("the server ended the conversation")
    finally:
        for task in (receiver, typist):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _receive(client, view) -> None:
    async for event in client.events():
        view.handle(event)


async def _type(client, view, lines, out: TextIO) -> int:
    while True:
        line = await lines.readline()
        if line is None:  # end of input (a pipe): let the last answer finish, then leave
            while view.busy:
                await asyncio.sleep(0.05)
            return 0
        text = line.strip()
        if text.lower() in QUIT_COMMANDS:
            return 0
        if not text:
            if view.busy:
                await _stop_answer(client, view)
                print("(stopped)", file=out, flush=True)
            continue
        if view.busy:  # a new message while answering: the old answer gives way
            await _stop_answer(client, view)
        await client.add_user_text(text)
        view.requested_response()  # before sending: its response.done may come back before we resume
        await client.create_response()


async def _stop_answer(client, view, created_wait_s: float = 2.0) -> None:
    view.stop_playback()
    # A response asked for but not yet created cannot be cancelled yet: give it a moment to start.
    waited_s = 0.0
    while not view.response_active and view.responses_requested and waited_s < created_wait_s:
        await asyncio.sleep(0.05)
        waited_s += 0.05
    if view.response_active:
        await client.cancel_response()
    view.stop_playback()
