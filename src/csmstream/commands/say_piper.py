"""`csmstream say --engine piper`: speak with the piper CPU voice in this process, no model weights needed.

It runs the same `PiperEngine` the server uses (start → submit → events → stop) and appends each chunk
to the 24 kHz wav as it arrives, printing chunk timings like the CSM `--stream` path. Piper has no
sampling knobs: `--temperature`, `--topk`, `--seed` do not apply to it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from csmstream.commands.say import max_seconds_from_args
from csmstream.errors import CsmstreamError

DEFAULT_OUTPUT = "out.wav"


def run_piper(args: argparse.Namespace) -> int:
    max_seconds = max_seconds_from_args(args)
    return asyncio.run(speak_with_piper(args.text, args.output or DEFAULT_OUTPUT, args.voice, max_seconds))


def _voice_library():
    """The user's voice library (for `--voice` ids of library voices, which piper speaks in its own voice)."""
    from csmstream.config import Settings
    from csmstream.voices.library import VoiceLibrary

    return VoiceLibrary(Settings().resolved_voices_dir())


async def speak_with_piper(text: str, output: str, voice_id: str | None, max_seconds: float | None) -> int:
    from csmstream.audio.wav_writer import WavWriter
    from csmstream.engine.events import AudioChunk, Finished
    from csmstream.engine.piper_engine import PiperEngine
    from csmstream.engine.request import SynthesisRequest

    # 1. the engine: loading the voice is the slow part, timed on its own
    t_load = time.perf_counter()
    engine = PiperEngine(voice_library=_voice_library())
    await engine.start()
    print(f"loaded piper voice {engine.model_name} in {time.perf_counter() - t_load:.1f} s", file=sys.stderr)
    try:
        # 2. one request; every chunk goes to the wav as soon as it exists
        t0 = time.perf_counter()
        handle = engine.submit(SynthesisRequest(text=text, voice_id=voice_id, max_seconds=max_seconds))
        finished: Finished | None = None
        with WavWriter(output, sample_rate=engine.sample_rate) as writer:
            async for event in handle.events():
                if isinstance(event, AudioChunk):
                    writer.append(event.pcm)
                    elapsed_ms = (time.perf_counter() - t0) * 1000
                    print(
                        f"chunk {event.seq}: {event.pcm.shape[0]} samples at {elapsed_ms:.0f} ms",
                        file=sys.stderr,
                    )
                elif isinstance(event, Finished):
                    finished = event
            num_samples = writer.num_samples
    finally:
        await engine.stop()
    # 3. the same summary line as the CSM path
    assert finished is not None, "an engine request always ends with Finished"
    if finished.finish_reason == "error":
        raise finished.error or CsmstreamError("piper failed")
    elapsed = time.perf_counter() - t0
    audio_seconds = num_samples / engine.sample_rate
    rtf = elapsed / audio_seconds if audio_seconds else float("nan")
    ttfa = f", first audio after {finished.ttfa_ms:.0f} ms" if finished.ttfa_ms is not None else ""
    print(f"wrote {output}: {audio_seconds:.2f} s of audio in {elapsed:.2f} s (RTF {rtf:.2f}{ttfa})")
    return 0
