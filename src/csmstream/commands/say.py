"""`csmstream say`: speak a text into a wav file, locally (the model in this process) or through a server.

Locally, without `--stream` it generates every frame, then decodes them at once (the blocking path users
know from the reference code). With `--stream` each chunk is decoded as soon as its frames exist, by the
exact streaming Mimi decoder, and appended to the wav, which is valid after every chunk.
"""

from __future__ import annotations

import argparse
import sys
import time

from csmstream.errors import BadRequest, CsmstreamError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("say", help="speak TEXT into a wav file (locally, or through --server)")
    p.add_argument("text", help="what to say")
    p.add_argument(
        "-o", "--output", default=None, help="wav file to write (default: out.wav; with --server: play)"
    )
    p.add_argument("--model", default=None, help="checkpoint directory or hub id (default: sesame/csm-1b)")
    p.add_argument("--engine", choices=["auto", "csm", "piper"], default=None, help="which speech engine")
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
    length.add_argument("--max-seconds", type=float, default=None, help="stop after S seconds (default 10)")
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
    if args.engine == "piper":
        from csmstream.commands.say_piper import run_piper

        return run_piper(args)
    max_seconds_from_args(args)  # check the flags before loading anything
    return run_local(args)


def run_local(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from csmstream.audio.io import load_mono_24k, write_wav
    from csmstream.audio.wav_writer import WavWriter
    from csmstream.config import DEFAULT_MODEL
    from csmstream.model.checkpoint import load_checkpoint
    from csmstream.model.generate import generate_frames
    from csmstream.model.sampling import SamplingParams
    from csmstream.model.tokenizer import Segment, build_prompt

    output = args.output or "out.wav"
    try:
        sampling = SamplingParams(
            temperature=args.temperature, topk=args.topk, seed=args.seed, greedy=args.greedy
        ).with_seed()
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    # 1. the model, and the context segments (reference voices / earlier turns)
    t_load = time.perf_counter()
    try:
        ckpt = load_checkpoint(args.model or DEFAULT_MODEL, device=args.device, dtype=args.dtype)
    except CsmstreamError as exc:
        if args.engine == "auto":
            print(
                f"csmstream: CSM weights not available ({str(exc).splitlines()[0]}); using piper",
                file=sys.stderr,
            )
            from csmstream.commands.say_piper import run_piper

            return run_piper(args)
        raise
    print(f"loaded {ckpt.path} in {time.perf_counter() - t_load:.1f} s", file=sys.stderr)
    context_speaker = args.speaker if args.context_speaker is None else args.context_speaker
    context = [Segment(context_speaker, text, load_mono_24k(path)) for path, text in args.context]
    codec = ckpt.codec
    num_codebooks = ckpt.config.num_codebooks
    codec_dtype = next(codec.parameters()).dtype

    def encode(audio: np.ndarray) -> torch.Tensor:  # (S,) → (T, K)
        wav = torch.from_numpy(audio).to(next(codec.parameters()).device, codec_dtype)
        with torch.inference_mode():
            return codec.encode(wav[None, None], num_codebooks=num_codebooks)[0].T.cpu()

    max_rows = ckpt.config.backbone.max_positions
    prompt = build_prompt(ckpt.tokenizer, context, args.speaker, args.text, encode, max_rows=max_rows)
    max_frames = args.max_frames or int(round((args.max_seconds or 10.0) * 12.5))
    max_frames = max(1, min(max_frames, max_rows - prompt.tokens.shape[0]))
    # 2. generate (and, with --stream, decode as we go)
    t0 = time.perf_counter()
    frames: list[np.ndarray] = []
    frame_samples = codec.frame_samples
    device = next(codec.parameters()).device
    with torch.inference_mode():
        if args.stream:
            schedule = (2, 4, 8, 12)
            state = codec.new_decoder_state(1, device=device)
            writer = WavWriter(output, sample_rate=codec.sample_rate, sample_format="float32")
            pending: list[torch.Tensor] = []
            seq = 0

            def flush_chunk() -> None:
                nonlocal seq, pending
                codes = torch.stack(pending, dim=1)[None].to(device)  # (1, K, T)
                pcm = codec.decode_step(codes, state)[0, 0].float().cpu().numpy()
                writer.append(pcm)
                elapsed_ms = (time.perf_counter() - t0) * 1000
                print(
                    f"chunk {seq}: {len(pending)} frames, {pcm.size} samples at {elapsed_ms:.0f} ms",
                    file=sys.stderr,
                )
                seq += 1
                pending = []

            for frame in generate_frames(ckpt.model, prompt.tokens, prompt.mask, sampling, max_frames):
                frames.append(frame.cpu().numpy())
                pending.append(frame)
                if len(pending) >= schedule[min(seq, len(schedule) - 1)]:
                    flush_chunk()
            if pending:
                flush_chunk()
            writer.close()
        else:
            for frame in generate_frames(ckpt.model, prompt.tokens, prompt.mask, sampling, max_frames):
                frames.append(frame.cpu().numpy())
            if frames:
                codes = torch.from_numpy(np.stack(frames).T[None]).to(device)  # (1, K, T)
                pcm = codec.decode(codes)[0, 0].float().cpu().numpy()
            else:
                pcm = np.zeros(0, dtype=np.float32)
            write_wav(output, pcm, codec.sample_rate, float32=True)
    elapsed = time.perf_counter() - t0
    audio_seconds = len(frames) * frame_samples / codec.sample_rate
    if args.dump_codes:
        np.save(
            args.dump_codes,
            np.stack(frames).astype(np.int64) if frames else np.zeros((0, num_codebooks), np.int64),
        )
    rtf = elapsed / audio_seconds if audio_seconds else float("nan")
    print(
        f"wrote {output}: {len(frames)} frames, {audio_seconds:.2f} s of audio in {elapsed:.2f} s (RTF {rtf:.2f})"
    )
    return 0
