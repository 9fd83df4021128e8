"""The WebSocket server against the engine alone: what serving costs in throughput and time to first audio.

    python bench/server.py [--model DIR | --size small] [--streams 1 2 4 8 16] [--frames 25]
    python bench/server.py --size tiny --frames 10 --streams 1 2       # a quick look

Two configurations, one table (column `config`, see bench/serving_configs.py): `shipped` is
`csmstream serve --model DIR --engine csm` with every default (8 slots, a queue of 32, real-time admission),
`admission off` adds `--max-slots <most streams> --max-queue 0` and `CSMSTREAM_REALTIME_ADMISSION=0`. The
engine-alone runs use the same settings in this process (`bench/engine.py`'s `run_streams`).

For each number of concurrent streams: aggregate frames/s, time to first audio (median / p95) of the engine
alone, then of a real `csmstream serve` process on loopback with one WebSocket connection per stream (TTFA
measured by the client: `synthesize` sent → first `audio_chunk` received), what the server adds to the median
TTFA, the server's own TTFA (from `completion`), the most sessions active at once (engine: `engine.stats()`;
server: `/health` polled every 50 ms), how many streams were queued, and the server's queue wait
(`audio_status` queued → started, median / max). The engine and the server never run at the same time.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.append(str(BENCH_DIR.parent / "tests"))  # serve_process, which server_process builds on
sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "server"))

from server_process import start_server  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from engine import TEXT, run_streams, warm_up  # noqa: E402
from model_sizes import describe_device, write_bench_checkpoint_elsewhere  # noqa: E402
from serving_configs import (  # noqa: E402
    CONFIGS,
    build_engine,
    drop_csmstream_env,
    serve_args,
    wait_engine_ready,
)

FRAME_S = 0.08
HEALTH_POLL_S = 0.05


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def engine_alone(config: str, model_dir: str, args) -> dict[int, dict]:
    """`run_streams` of bench/engine.py for each stream count, on an engine set up like the server's."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = build_engine(
            config,
            model_dir,
            Path(tmp) / "voices",
            device=args.device,
            dtype=args.dtype,
            max_slots_off=max(args.streams),
        )
        await engine.start()
        try:
            await wait_engine_ready(engine)
            await warm_up(engine, args.frames)
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
        first_audio_s = queued_s = started_s = None
        async for frame in ws:
            if isinstance(frame, bytes):
                continue
            reply = json.loads(frame)
            if reply["type"] == "audio_chunk" and first_audio_s is None:
                first_audio_s = time.perf_counter()
            elif reply["type"] == "audio_status" and reply["status"] == "queued" and queued_s is None:
                queued_s = time.perf_counter()
            elif reply["type"] == "audio_status" and reply["status"] == "started":
                started_s = time.perf_counter()
            if reply["type"] in ("completion", "error"):
                break
    assert reply["type"] == "completion", f"the server refused a bench stream: {reply}"
    return {
        "ttfa_ms": (first_audio_s - sent_s) * 1000.0,
        "frames": round(reply["audio_seconds"] / FRAME_S),
        "server_ttfa_ms": reply["ttfa_ms"],
        "queue_wait_ms": None if queued_s is None or started_s is None else (started_s - queued_s) * 1000.0,
    }


async def poll_health_max_active(url: str, stop: asyncio.Event) -> int:
    """The most `active_sessions` /health reported while `stop` is unset (any status code: 503 has JSON too)."""
    max_active = 0
    async with httpx.AsyncClient(timeout=10) as client:
        while not stop.is_set():
            max_active = max(max_active, (await client.get(url + "/health")).json()["active_sessions"])
            try:
                await asyncio.wait_for(stop.wait(), HEALTH_POLL_S)
            except TimeoutError:
                pass
    return max_active


async def through_server(server, n: int, frames: int) -> dict:
    stop = asyncio.Event()
    poller = asyncio.create_task(poll_health_max_active(server.url, stop))
    start_s = time.perf_counter()
    results = await asyncio.gather(*(one_stream(server.ws_url, seed, frames) for seed in range(n)))
    wall_s = time.perf_counter() - start_s
    stop.set()
    return {
        "fps": sum(r["frames"] for r in results) / wall_s,
        "ttfa": [r["ttfa_ms"] for r in results],
        "server_ttfa": [r["server_ttfa_ms"] for r in results if r["server_ttfa_ms"] is not None],
        "max_active": await poller,
        "queue_waits_ms": [r["queue_wait_ms"] for r in results if r["queue_wait_ms"] is not None],
    }


async def server_runs(server, args) -> dict[int, dict]:
    await through_server(server, 2, 4)  # warm-up
    return {n: await through_server(server, n, args.frames) for n in args.streams}


def free_device_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def served(config: str, model_dir: str, voices_dir: Path, args) -> dict[int, dict]:
    flags, env = serve_args(
        config, model_dir, device=args.device, dtype=args.dtype, max_slots_off=max(args.streams)
    )
    server = start_server(flags, voices_dir, env=env, startup_timeout_s=1800.0)
    try:
        return asyncio.run(server_runs(server, args))
    finally:
        server.stop()


def print_table(rows: list[tuple[str, int, dict, dict]], args, model_dir: str) -> None:
    print(f"\n== WebSocket server vs engine alone ({args.frames} frames per stream, {model_dir})")
    print(
        f"{'config':>13} {'streams':>7} | {'engine fps':>10} {'server fps':>10} {'ratio':>6} | "
        f"{'engine TTFA med/p95':>20} | {'server TTFA med/p95':>20} | {'added':>7} | {'in-server':>9} | "
        f"{'max active e/s':>14} | {'queued e/s':>10} | {'server wait med/max':>19}"
    )
    for config, n, e, s in rows:
        added_ms = median(s["ttfa"]) - median(e["ttfa"])
        waits = s["queue_waits_ms"]
        wait = f"{median(waits):8.0f} /{max(waits):6.0f} ms" if waits else f"{'-':>19}"
        print(
            f"{config:>13} {n:7d} | {e['fps']:10.1f} {s['fps']:10.1f} {s['fps'] / e['fps']:6.2f} | "
            f"{median(e['ttfa']):9.0f} /{p95(e['ttfa']):6.0f} ms | "
            f"{median(s['ttfa']):9.0f} /{p95(s['ttfa']):6.0f} ms | {added_ms:+5.0f}ms | "
            f"{median(s['server_ttfa']):6.0f} ms | {e['max_active']:6d} /{s['max_active']:6d} | "
            f"{len(e['queue_waits_ms']):4d} /{len(waits):4d} | {wait}"
        )
    print(
        "added: the server's median TTFA minus the engine's (JSON, encoding, socket, client);"
        " in-server: submit → first chunk queued for the socket, median, as the completion reports it;"
        " max active / queued: engine alone / server; server wait: audio_status queued → started"
    )


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
    drop_csmstream_env()
    print(f"device: {describe_device()}; torch {torch.__version__}")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or str(write_bench_checkpoint_elsewhere(Path(tmp) / args.size, args.size))
        for i, config in enumerate(CONFIGS):
            alone = asyncio.run(engine_alone(config, model_dir, args))
            free_device_memory()  # the server process gets the device to itself
            through = served(config, model_dir, Path(tmp) / f"voices-{i}", args)
            rows += [(config, n, alone[n], through[n]) for n in args.streams]
    print_table(rows, args, model_dir)


if __name__ == "__main__":
    main()
