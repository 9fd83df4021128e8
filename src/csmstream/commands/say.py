"""`csmstream say`: speak a text into a wav file, locally (the model in this process) or through a server.

Locally it runs the server's `CsmEngine` with one slot: frames are decoded by the exact streaming Mimi
decoder as they are generated, and a long text is spoken whole, unit after unit. Without `--stream` the wav
is written once at the end; with `--stream` each chunk is appended as it arrives (its time and size
printed), and the wav is valid after every chunk.
"""

from __future__ import annotations

import argparse
import sys
import time

from csmstream.errors import BadRequest, CheckpointError, CsmstreamError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("say", help="speak TEXT into a wav file (locally, or through --server)")
    p.add_argument("text", help="what to say")
    p.add_argument(
        "-o", "--output", default=None, help="wav file to write (default: out.wav; with --server: play)"
    )
    p.add_argument("--model", default=None, help="checkpoint directory or hub id (default: sesame/csm-1b)")
    p.add_argument(
        "--engine",
        choices=["auto", "csm", "piper"],
        default=None,
        help="which speech engine (default auto, as serve: CSM when its weights load, else the piper CPU voice)",
    )
    p.add_argument(
        "--server", default=None, help="stream from a running csmstream server, e.g. http://127.0.0.1:8000"
    )
    p.add_argument("--voice", default=None, help="voice id (with --server, or from the local voice library)")
    p.add_argument(
        "--api-key", default=None, help="with --server: the server's API key (or CSMSTREAM_API_KEY)"
    )
    p.add_argument("--no-audio", action="store_true", help="with --server: don't play through the sound card")
    p.add_argument("--speaker", type=int, default=0, help="CSM speaker id (default 0)")
    p.add_argument(
        "--context",
        nargs=2,
        action="append",
        metavar=("WAV", "TEXT"),
        default=[],
        help="a context segment: reference audio and its transcript (repeatable)",
    )
    p.add_argument("--context-speaker", type=int, default=None, help="speaker of the context segments")
    p.add_argument("--temperature", type=float, default=0.9)
    p.add_argument("--topk", type=int, default=50)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--greedy", action="store_true", help="always take the most likely code (deterministic)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--max-frames", type=int, default=None, help="stop after N frames of 80 ms")
    length.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop after S seconds (default: a bound from the text's length)",
    )
    p.add_argument(
        "--dump-codes", default=None, metavar="codes.npy", help="write the codes, shape (frames, 32)"
    )
    p.add_argument("--stream", action="store_true", help="decode and write chunks as frames arrive")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.set_defaults(func=run)


FRAME_SECONDS = 0.08  # --max-frames counts CSM frames of 80 ms


def max_seconds_from_args(args: argparse.Namespace) -> float | None:
    """The length limit the `say` flags ask for (--max-frames or --max-seconds), checked; None: the default."""
    max_seconds = getattr(args, "max_seconds", None)
    max_frames = getattr(args, "max_frames", None)
    if max_frames is not None:
        if max_frames < 1:
            raise BadRequest("--max-frames must be at least 1")
        max_seconds = max_frames * FRAME_SECONDS
    if max_seconds is not None and max_seconds <= 0:
        raise BadRequest("--max-seconds must be positive")
    return max_seconds


def run(args: argparse.Namespace) -> int:
    if args.server:
        from csmstream.commands.say_remote import run_remote

        return run_remote(args)
    if args.engine is None:  # the same default as `serve` (Settings: CSMSTREAM_ENGINE, else auto)
        from csmstream.config import Settings

        args.engine = Settings().engine
    if args.engine == "piper":
        print("csmstream: speaking with piper (the CPU voice), as --engine piper asks", file=sys.stderr)
        from csmstream.commands.say_piper import run_piper

        return run_piper(args)
    max_seconds_from_args(args)  # check the flags before loading anything
    return run_local(args)


def run_local(args: argparse.Namespace) -> int:
    """CSM in this process, through the same `CsmEngine` the server runs (one slot): the engine owns the
    generation loop, the streaming Mimi decoder and the chunk schedule; this function only writes the wav."""
    import asyncio

    from csmstream.config import DEFAULT_MODEL, Settings
    from csmstream.engine.csm_engine import CsmEngine
    from csmstream.model.checkpoint import load_checkpoint
    from csmstream.model.sampling import SamplingParams
    from csmstream.voices.library import VoiceLibrary

    try:
        sampling = SamplingParams(
            temperature=args.temperature, topk=args.topk, seed=args.seed, greedy=args.greedy
        ).with_seed()
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    # 1. the engine; it loads the checkpoint on its own thread (see CsmEngine), errors re-raised here
    t_load = time.perf_counter()
    try:
        engine = CsmEngine(
            lambda: load_checkpoint(args.model or DEFAULT_MODEL, device=args.device, dtype=args.dtype),
            VoiceLibrary(Settings().resolved_voices_dir()),
            max_slots=1,
            max_queue=0,
            realtime_admission=False,  # one stream, as fast as it goes
        )
    except CheckpointError as exc:
        if args.engine == "auto":
            from csmstream.commands.say_piper import run_piper
            from csmstream.engine.factory import piper_fallback_reason

            print(
                f"csmstream: speaking with piper (the CPU voice), because {piper_fallback_reason(exc)}",
                file=sys.stderr,
            )
            return run_piper(args)
        raise
    ckpt = engine.checkpoint
    why = "as --engine csm asks" if args.engine == "csm" else "its weights are available"
    print(f"csmstream: speaking with csm ({ckpt.path}), {why}", file=sys.stderr)
    print(f"loaded {ckpt.path} in {time.perf_counter() - t_load:.1f} s", file=sys.stderr)
    return asyncio.run(_speak_with_engine(engine, args, sampling))


def _local_request(args: argparse.Namespace, sampling):
    """The `SynthesisRequest` the flags describe (its text is split into units by the caller)."""
    from csmstream.audio.io import load_mono_24k
    from csmstream.engine.request import SynthesisRequest
    from csmstream.model.tokenizer import Segment

    # --speaker defaults to 0; with --voice and no explicit speaker, the voice's own speaker speaks
    speaker = None if args.voice is not None and args.speaker == 0 else args.speaker
    context_speaker = args.speaker if args.context_speaker is None else args.context_speaker
    context = tuple(Segment(context_speaker, text, load_mono_24k(path)) for path, text in args.context)
    return SynthesisRequest(
        text=args.text,
        voice_id=args.voice,
        speaker=speaker,
        context=context,
        sampling=sampling,
        max_seconds=max_seconds_from_args(args),  # None: each unit's runaway bound from its text
        adaptive_chunks=False,  # a file never runs dry: chunks follow the schedule (2, 4, 8, 12 frames)
    )


async def _speak_with_engine(engine, args: argparse.Namespace, sampling) -> int:
    """One request spoken whole (a long text unit after unit, as the server does); each chunk is appended
    to the wav as it arrives with `--stream`, else the wav is written once at the end."""
    import numpy as np

    from csmstream.audio.io import write_wav
    from csmstream.audio.wav_writer import WavWriter
    from csmstream.engine.events import AudioChunk, Finished
    from csmstream.engine.request import FRAME_SAMPLES
    from csmstream.engine.unit_chain import UnitChain, split_units

    output = args.output or "out.wav"
    request = _local_request(args, sampling)
    voice = engine.voices.get(request.voice_id) if request.voice_id else None

    def speaker_of(unit_request) -> int:  # labels each spoken unit in the context of the next
        if unit_request.speaker is not None:
            return unit_request.speaker
        return voice.speaker if voice is not None else 0

    await engine.start()
    try:
        # 2. submit (refusals such as an unknown voice raise here), then take the events
        t0 = time.perf_counter()
        chain = UnitChain(engine, request, speaker_of=speaker_of)
        for unit in split_units(request.text, max_text_chars=engine.max_text_chars):
            chain.add(unit)
        chain.close()
        chain.start()
        writer = (
            WavWriter(output, sample_rate=engine.sample_rate, sample_format="float32")
            if args.stream
            else None
        )
        chunks: list[np.ndarray] = []
        finished: Finished | None = None
        async for event in chain.events():
            if isinstance(event, AudioChunk):
                chunks.append(event.pcm)
                if writer is not None:
                    writer.append(event.pcm)
                    elapsed_ms = (time.perf_counter() - t0) * 1000
                    print(
                        f"chunk {event.seq}: {event.pcm.size // FRAME_SAMPLES} frames, "
                        f"{event.pcm.size} samples at {elapsed_ms:.0f} ms",
                        file=sys.stderr,
                    )
            elif isinstance(event, Finished):
                finished = event
    finally:
        await engine.stop()
    # 3. the wav, the codes, one summary line
    assert finished is not None, "an engine request always ends with Finished"
    if finished.finish_reason == "error":
        if writer is not None:
            writer.close()
        raise finished.error or CsmstreamError("CSM failed")
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if writer is not None:
        writer.close()
    else:
        write_wav(output, pcm, engine.sample_rate, float32=True)
    num_codebooks = engine.checkpoint.config.num_codebooks
    codes = finished.codes if finished.codes is not None else np.zeros((0, num_codebooks), np.int64)
    if args.dump_codes:
        np.save(args.dump_codes, codes.astype(np.int64))
    elapsed = time.perf_counter() - t0
    audio_seconds = pcm.size / engine.sample_rate
    rtf = elapsed / audio_seconds if audio_seconds else float("nan")
    print(
        f"wrote {output}: {codes.shape[0]} frames, {audio_seconds:.2f} s of audio in {elapsed:.2f} s (RTF {rtf:.2f})"
    )
    return 0
