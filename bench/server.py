"""The WebSocket server against the engine alone: what serving costs in throughput and time to first audio.

    python bench/server.py [--model DIR | --size small] [--streams 1 2 4 8 16] [--frames 25]

For each number of concurrent streams: aggregate frames/s, time to first audio (median / p95) of the engine
alone (in this process, `bench/engine.py`'s `run_streams`), then of a real `csmstream serve` process on
loopback with one WebSocket connection per stream (TTFA measured by the client: `synthesize` sent → first
`audio_chunk` received), and what the server adds to the median TTFA. The two never run at the same time.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.append(str(BENCH_DIR.parent / "tests"))  # serve_process, which server_process builds on
sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "server"))

from server_process import start_server  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from csmstream.engine.csm_engine import CsmEngine  # noqa: E402
from csmstream.model.checkpoint import load_checkpoint  # noqa: E402
from csmstream.voices.library import VoiceLibrary  # noqa: E402
from engine import TEXT, run_streams  # noqa: E402
from model_sizes import write_bench_checkpoint_elsewhere  # noqa: E402

FRAME_S = 0.08


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


async def engine_alone(model_dir: str, args) -> dict[int, dict]:
    """`run_streams` of bench/engine.py for each stream count, on an engine set up like the server's."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = CsmEngine(
            lambda: load_checkpoint(model_dir, device=args.device, dtype=args.dtype, progress=False),
            VoiceLibrary(Path(tmp) / "voices"),
            max_slots=max(args.streams),
            max_queue=0,
            realtime_admission=False,
        )
        await engine.start()
        try:
            await run_streams(engine, 2, 4)  # warm-up
            return {n: await run_streams(engine, n, args.frames) for n in args.streams}
        finally:
            await engine.stop()


async def one_stream(ws_url: str, seed: int, frames: int) -> dict:
    async with connect(ws_url, max_size=None) as ws:
        message = {
            "type": "synthesize",
            "text": TEXT,
            "request_id": "b",
            "seed": seed,
            "max_seconds": frames * FRAME_S,
            "audio_encoding": "binary",
        }
        sent_s = time.perf_counter()
        await ws.send(json.dumps(message))
        first_audio_s = None
        async for frame in ws:
            if isinstance(frame, bytes):
                continue
            reply = json.loads(frame)
            if reply["type"] == "audio_chunk" and first_audio_s is None:
                first_audio_s = time.perf_counter()
            if reply["type"] in ("completion", "error"):
                break
    assert reply["type"] == "completion", f"the server refused a bench stream: {reply}"
    return {
        "ttfa_ms": (first_audio_s - sent_s) * 1000.0,
        "frames": round(reply["audio_seconds"] / FRAME_S),
        "server_ttfa_ms": reply["ttfa_ms"],
    }


async def through_server(ws_url: str, n: int, frames: int) -> dict:
    start_s = time.perf_counter()
    results = await asyncio.gather(*(one_stream(ws_url, seed, frames) for seed in range(n)))
    wall_s = time.perf_counter() - start_s
    return {
        "fps": sum(r["frames"] for r in results) / wall_s,
        "ttfa": [r["ttfa_ms"] for r in results],
        "server_ttfa": [r["server_ttfa_ms"] for r in results if r["server_ttfa_ms"] is not None],
    }


async def server_runs(ws_url: str, args) -> dict[int, dict]:
    await through_server(ws_url, 2, 4)  # warm-up
    return {n: await through_server(ws_url, n, args.frames) for n in args.streams}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=None, help="checkpoint directory (default: a random one of --size)"
    )
    parser.add_argument("--size", default="small", help="tiny | small | csm-1b, when --model is not given")
    parser.add_argument("--streams", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    parser.add_argument("--frames", type=int, default=25, help="frames (80 ms) per stream")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(f"device: {device}; torch {torch.__version__}")

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or str(write_bench_checkpoint_elsewhere(Path(tmp) / args.size, args.size))
        alone = asyncio.run(engine_alone(model_dir, args))
        server_args = [
            "--engine",
            "csm",
            "--model",
            model_dir,
            "--device",
            args.device,
            "--dtype",
            args.dtype,
            "--max-slots",
            str(max(args.streams)),
            "--max-queue",
            "0",
        ]
        # the engine-alone run admits every stream at once; so must the server, to compare like with like
        server = start_server(server_args, Path(tmp) / "voices", env={"CSMSTREAM_REALTIME_ADMISSION": "0"})
        try:
            served = asyncio.run(server_runs(server.ws_url, args))
        finally:
            server.stop()

    print(f"\n== WebSocket server vs engine alone ({args.frames} frames per stream, {model_dir})")
    print(
        f"{'streams':>7} | {'engine fps':>10} {'server fps':>10} {'ratio':>6} | "
        f"{'engine TTFA med/p95':>20} | {'server TTFA med/p95':>20} | {'added':>8} | {'in-server med':>13}"
    )
    for n in args.streams:
        e, s = alone[n], served[n]
        added_ms = statistics.median(s["ttfa"]) - statistics.median(e["ttfa"])
        print(
            f"{n:7d} | {e['fps']:10.1f} {s['fps']:10.1f} {s['fps'] / e['fps']:6.2f} | "
            f"{statistics.median(e['ttfa']):9.0f} /{p95(e['ttfa']):6.0f} ms | "
            f"{statistics.median(s['ttfa']):9.0f} /{p95(s['ttfa']):6.0f} ms | {added_ms:+6.0f}ms | "
            f"{statistics.median(s['server_ttfa']):10.0f} ms",
            flush=True,
        )
    print(
        "added: the server's median TTFA minus the engine's (JSON, encoding, socket, client);"
        " in-server: submit → first chunk queued for the socket, as the completion reports it"
    )


if __name__ == "__main__":
    main()
