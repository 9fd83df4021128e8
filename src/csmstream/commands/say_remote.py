"""`csmstream say --server URL`: stream speech from a running server (`/v1/tts/stream`), play it on the
sound card as it arrives, and/or write it to a wav file.

With a sound card and no `-o`, it only plays; with `-o FILE` it also writes FILE; without a sound card it
says so once and writes `-o` (default `out.wav`). It prints the time to first audio as measured here and
the server's own figures (TTFA, RTF) from the `completion`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.clients.errors import ServerError
from csmstream.commands.say import max_seconds_from_args
from csmstream.errors import CsmstreamError

DEFAULT_OUTPUT = "out.wav"


def run_remote(args: argparse.Namespace) -> int:
    from csmstream.clients.server_url import resolve_api_key
    from csmstream.clients.sound_device import audio_disabled

    api_key = resolve_api_key(getattr(args, "api_key", None), os.environ)
    no_audio = bool(getattr(args, "no_audio", False)) or audio_disabled(os.environ)
    return asyncio.run(say_remote(args, api_key, no_audio))


def synthesis_params(args: argparse.Namespace) -> dict:
    """The `synthesize` knobs from the `say` flags (None: the server's default)."""
    max_seconds = max_seconds_from_args(args)
    return {
        "temperature": getattr(args, "temperature", None),
        "topk": getattr(args, "topk", None),
        "seed": getattr(args, "seed", None),
        "greedy": True if getattr(args, "greedy", False) else None,
        "max_seconds": max_seconds,
    }


async def say_remote(args: argparse.Namespace, api_key: str | None, no_audio: bool) -> int:
    from csmstream.audio.wav_writer import WavWriter
    from csmstream.clients.player import open_player
    from csmstream.clients.tts_stream import TtsChunk, TtsCompletion, TtsStatus, TtsStreamClient

    params = synthesis_params(args)
    # 1. connect first: a missing server is the most common mistake and should be the first thing said
    client = await TtsStreamClient.connect(args.server, api_key)
    player = writer = None
    try:
        player, why_not = open_player(no_audio)
        output = args.output
        if player is None:
            output = output or DEFAULT_OUTPUT
            print(f"csmstream: no sound card: {why_not}; writing {output}", file=sys.stderr)
        # 2. stream: every chunk is played and appended as it arrives; the wav is opened with the first
        # audio, so a refused request leaves no file
        completion: TtsCompletion | None = None
        first_audio_ms: float | None = None
        num_samples = 0
        t_sent = time.perf_counter()
        async for event in client.synthesize(args.text, voice_id=args.voice, **params):
            if isinstance(event, TtsStatus) and event.status == "queued":
                print(f"queued (position {event.queue_position})", file=sys.stderr)
            elif isinstance(event, TtsChunk):
                if first_audio_ms is None:
                    first_audio_ms = (time.perf_counter() - t_sent) * 1000
                    print(f"first audio after {first_audio_ms:.0f} ms", file=sys.stderr)
                if event.sample_rate != SAMPLE_RATE:
                    raise CsmstreamError(
                        f"the server sent {event.sample_rate} Hz audio; this client expects {SAMPLE_RATE}"
                    )
                if player is not None:
                    player.play(event.pcm)
                if output is not None:
                    writer = writer or WavWriter(output, sample_rate=SAMPLE_RATE)
                    writer.append(event.pcm)
                num_samples += event.pcm.size
            elif isinstance(event, TtsCompletion):
                completion = event
        if output is not None and writer is None:
            writer = WavWriter(output, sample_rate=SAMPLE_RATE)  # no audio at all: still a valid empty file
        # 3. let the sound card finish what it has
        if player is not None:
            await player.drain()
    except ServerError as exc:
        raise _explain(exc, args, api_key) from None
    finally:
        if writer is not None:
            writer.close()
        if player is not None:
            player.close()
        await client.close()
    assert completion is not None, "synthesize() ends with a completion or raises"
    if abs(completion.audio_seconds - num_samples / SAMPLE_RATE) > 0.01:
        print(
            f"csmstream: warning: the server reported {completion.audio_seconds:.3f} s of audio "
            f"but sent {num_samples / SAMPLE_RATE:.3f} s",
            file=sys.stderr,
        )
    print(_summary(completion, first_audio_ms, output))
    return 0


def _summary(completion, first_audio_ms: float | None, output: str | None) -> str:
    parts = [f"{completion.audio_seconds:.3f} s of audio ({completion.finish_reason})"]
    if first_audio_ms is not None:
        parts.append(f"TTFA {first_audio_ms:.0f} ms here")
    if completion.ttfa_ms is not None:
        parts.append(f"{completion.ttfa_ms:.0f} ms on the server")
    if completion.rtf is not None:
        parts.append(f"RTF {completion.rtf:.2f}")
    where = f"wrote {output}: " if output else "played: "
    return where + ", ".join(parts)


def _explain(exc: ServerError, args: argparse.Namespace, api_key: str | None) -> CsmstreamError:
    """A server `error` → the sentence to print (exit code 1 through the CLI)."""
    if exc.code == "unknown_voice":
        from csmstream.clients.connection import server_voice_ids

        try:
            voices = server_voice_ids(args.server, api_key)
        except CsmstreamError:
            return CsmstreamError(f"unknown voice {args.voice!r} ({exc})")
        listed = ", ".join(voices) if voices else "none"
        return CsmstreamError(f"unknown voice {args.voice!r}; the server's voices: {listed}")
    if exc.code == "busy":
        return CsmstreamError(f"the server is busy: {exc}; try again shortly")
    if exc.code == "text_too_long":
        return CsmstreamError(f"the text is too long for the server: {exc}")
    if exc.code == "bad_request":
        return CsmstreamError(f"the server refused the request: {exc}")
    return CsmstreamError(f"the server failed ({exc.code}): {exc}")
