"""The continuous-batching engine alone (no server): throughput, time to first audio, memory, prefix cache.

    python bench/engine.py [--size small] [--streams 1 2 4 8 16] [--frames 25] [--threads N]
    python bench/engine.py --size tiny --frames 10 --streams 1 2 4      # a quick look

Two configurations, one table (column `config`, see bench/serving_configs.py):
- `shipped`: the engine `csmstream serve` builds with its defaults (8 slots, a queue of 32, real-time
  admission): a burst of n streams may queue, so the table says how many ran at once and how long the
  others waited;
- `admission off`: one slot per stream, no queue, no admission: every stream starts at once (raw throughput).

Columns, for n streams submitted together: aggregate frames/s (all streams), its ratio to one stream of the
same configuration, time to first audio (submit → first chunk, median / p95, queue wait included), median
per-stream real-time factor (start → finish / audio seconds), the most sessions active at once (polled from
`engine.stats()`), how many streams were queued and their wait (`Queued` → `Started`, median / max). Then
the memory an added session costs against one copy of the model (on an engine of this size, then counted
for the real CSM-1B shape), and the prefill time of a voice prompt with and without the voice prefix cache.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from csmstream.engine.events import Finished, Queued, Started  # noqa: E402
from csmstream.engine.request import SAMPLE_RATE, SynthesisRequest  # noqa: E402
from csmstream.model.sampling import SamplingParams  # noqa: E402
from model_sizes import describe_device, write_bench_checkpoint_elsewhere  # noqa: E402
from serving_configs import CONFIGS, build_engine, drop_csmstream_env, wait_engine_ready  # noqa: E402

TEXT = "The quick brown fox jumps over the lazy dog."
STATS_POLL_S = 0.005


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def poll_max_active(engine, stop: asyncio.Event) -> int:
    """The most sessions holding a slot at once while `stop` is unset (engine.stats(), every 5 ms)."""
    max_active = 0
    while not stop.is_set():
        max_active = max(max_active, engine.stats().active_sessions)
        try:
            await asyncio.wait_for(stop.wait(), STATS_POLL_S)
        except TimeoutError:
            pass
    return max(max_active, engine.stats().active_sessions)


async def drain(handle) -> dict:
    """Read one request's events: its `Finished`, and when it was queued / started (perf_counter seconds)."""
    queued_s = started_s = None
    async for event in handle.events():
        if isinstance(event, Queued) and queued_s is None:
            queued_s = time.perf_counter()
        elif isinstance(event, Started):
            started_s = time.perf_counter()
        elif isinstance(event, Finished):
            wait_ms = None if queued_s is None or started_s is None else (started_s - queued_s) * 1000.0
            return {"finished": event, "queue_wait_ms": wait_ms}
    raise RuntimeError("no Finished event")


async def run_streams(engine, n: int, frames: int, voice_id: str | None = None) -> dict:
    """Submit n streams of `frames` frames at once; wait for all. Figures of the whole burst."""
    requests = [
        SynthesisRequest(
            text=TEXT, voice_id=voice_id, sampling=SamplingParams(seed=i), max_seconds=frames * 0.08
        )
        for i in range(n)
    ]
    stop = asyncio.Event()
    poller = asyncio.create_task(poll_max_active(engine, stop))
    t0 = time.perf_counter()
    handles = [engine.submit(r) for r in requests]
    drained = await asyncio.gather(*(drain(h) for h in handles))
    wall_s = time.perf_counter() - t0
    stop.set()
    results = [d["finished"] for d in drained]
    total_frames = sum(round(r.audio_seconds / 0.08) for r in results)
    waits_ms = [d["queue_wait_ms"] for d in drained if d["queue_wait_ms"] is not None]
    return {
        "wall_s": wall_s,
        "fps": total_frames / wall_s,
        "ttfa": [r.ttfa_ms for r in results if r.ttfa_ms is not None],
        "rtf": [r.rtf for r in results if r.rtf is not None],
        "reasons": {r.finish_reason for r in results},
        "max_active": await poller,
        "queue_waits_ms": waits_ms,
    }


async def warm_up(engine, frames: int) -> None:
    """Two short streams; with a compiled step (CUDA), also a burst at every batch bucket, so that no
    measured run pays for building a step shape (an engine that warms itself up has done this already)."""
    await run_streams(engine, 2, 4)
    if getattr(engine.runner, "pad_to_buckets", False):
        for batch_size in engine.runner.buckets:
            await run_streams(engine, batch_size, frames)


def tensor_bytes(module: torch.nn.Module) -> int:
    seen, total = set(), 0
    for t in list(module.parameters()) + list(module.buffers()):
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


def print_header() -> None:
    print(
        f"{'config':>13} {'streams':>7} {'agg fps':>8} {'x 1 stream':>10} {'TTFA med':>9} {'TTFA p95':>9} "
        f"{'RTF med':>8} {'max active':>10} {'queued':>6} {'wait med':>9} {'wait max':>9}"
    )


def print_row(config: str, n: int, r: dict, base_fps: float) -> None:
    waits = r["queue_waits_ms"]
    wait_med = f"{median(waits):7.0f}ms" if waits else f"{'-':>9}"
    wait_max = f"{max(waits):7.0f}ms" if waits else f"{'-':>9}"
    print(
        f"{config:>13} {n:7d} {r['fps']:8.1f} {r['fps'] / base_fps:10.2f} {median(r['ttfa']):7.0f}ms "
        f"{p95(r['ttfa']):7.0f}ms {median(r['rtf']):8.2f} {r['max_active']:10d} {len(waits):6d} "
        f"{wait_med} {wait_max}",
        flush=True,
    )


async def throughput(engine, config: str, args) -> float:
    """Print the rows of one configuration; return how long the engine's own warm-up took (s)."""
    ready_s = await wait_engine_ready(engine)
    await warm_up(engine, args.frames)
    base_fps = None
    for n in args.streams:
        r = await run_streams(engine, n, args.frames)
        base_fps = base_fps or r["fps"]
        print_row(config, n, r, base_fps)
    return ready_s


async def memory_and_prefix_cache(engine) -> None:
    # memory: what one more session costs against a copy of the model
    runner = engine.runner
    state_bytes = sum(t.numel() * t.element_size() for t in runner.decoder_state.tensors.values())
    per_slot = (
        runner.kv_bytes_per_slot
        + state_bytes // runner.decoder_state.batch_size
        + runner.hidden[0].numel() * runner.hidden.element_size()
    )
    model_bytes = tensor_bytes(engine.checkpoint.model) + tensor_bytes(engine.checkpoint.codec)
    print(f"\n== memory (max_rows {runner.max_rows}, dtype {runner.dtype})")
    print(f"model copy (backbone + depth + Mimi): {model_bytes / 2**20:9.1f} MiB")
    print(
        f"one added session (KV row + decoder state): {per_slot / 2**20:9.2f} MiB "
        f"= {100 * per_slot / model_bytes:.2f}% of a model copy"
    )

    # voice prefix cache: prefill time of a voice prompt, cold vs cached
    t = np.arange(SAMPLE_RATE * 8) / SAMPLE_RATE
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 2 * t))).astype(np.float32)
    engine.voices.create(
        "bench", "Bench", 0, [(audio, SAMPLE_RATE, "This is a reference clip of eight seconds.")]
    )
    prefill_s = []
    real_prefill = runner.prefill

    def timed_prefill(*a, **kw):
        t0 = time.perf_counter()
        real_prefill(*a, **kw)
        prefill_s[-1] += time.perf_counter() - t0

    runner.prefill = timed_prefill
    print("\n== voice prefix cache (8 s reference = ~100 prompt rows)")
    for label in ("cold (prefilled)", "cached (copied)", "cached (copied)"):
        prefill_s.append(0.0)
        r = await run_streams(engine, 1, 2, voice_id="bench")
        print(f"{label:18} prefill {prefill_s[-1] * 1000:7.1f} ms   TTFA {r['ttfa'][0]:7.1f} ms")
    runner.prefill = real_prefill


async def main_async(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(write_bench_checkpoint_elsewhere(Path(tmp) / args.size, args.size))
        print(
            f"\n== throughput ({args.size}, {args.frames} frames per stream; shipped: the serve defaults, "
            f"admission off: max_slots {max(args.streams)}, no queue)"
        )
        print_header()
        ready_s = {}
        for i, config in enumerate(CONFIGS):
            engine = build_engine(
                config,
                model_dir,
                Path(tmp) / f"voices-{i}",
                device=args.device,
                dtype=args.dtype,
                max_slots_off=max(args.streams),
                max_seq_rows=args.max_rows,
            )
            await engine.start()
            try:
                ready_s[config] = await throughput(engine, config, args)
                if config == CONFIGS[-1] and max(ready_s.values()) > 0.1:
                    print(
                        "the engines' own warm-up before they served (not in the figures): "
                        + ", ".join(f"{c} {s:.1f} s" for c, s in ready_s.items())
                    )
                if config == CONFIGS[-1]:
                    await memory_and_prefix_cache(engine)
            finally:
                await engine.stop()
            del engine  # one model copy at a time
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def csm_1b_memory_estimate(max_rows: int = 2048, dtype: torch.dtype = torch.bfloat16) -> None:
    """The same memory figures for the real CSM-1B shape, counted on the meta device (nothing allocated)."""
    from csmstream.codec.mimi import Mimi
    from csmstream.codec.mimi_config import MimiConfig
    from csmstream.model.csm import CsmModel
    from csmstream.model.csm_config import CsmConfig
    from model_sizes import bench_config

    config = bench_config("csm-1b", text_vocab_size=128_256)
    with torch.device("meta"):
        model = CsmModel(CsmConfig.from_dict(config)).to(dtype)
        codec = Mimi(MimiConfig.from_dict(config["codec_config"]))
        cache = model.new_kv_cache(1, max_rows, device="meta", dtype=dtype)
        state = codec.new_decoder_state(1, device="meta")
    model_bytes = sum(
        t.numel() * t.element_size() for m in (model, codec) for t in (*m.parameters(), *m.buffers())
    )  # parameters() lists a tied tensor once; meta tensors have no addresses to tell copies apart by
    per_slot = (cache.keys.numel() + cache.values.numel()) * cache.keys.element_size()
    per_slot += sum(t.numel() * t.element_size() for t in state.tensors.values())
    per_slot += config["hidden_size"] * torch.finfo(dtype).bits // 8
    print(
        f"\n== memory of the real CSM-1B shape ({dtype}, Mimi in float32, max_rows {max_rows}; counted, not run)"
    )
    print(
        f"model copy: {model_bytes / 2**30:.2f} GiB; one added session: {per_slot / 2**20:.1f} MiB "
        f"= {100 * per_slot / model_bytes:.2f}% of a model copy"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="small")
    parser.add_argument("--streams", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--max-rows", type=int, default=2048)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    drop_csmstream_env()
    print(f"device: {describe_device()}; torch {torch.__version__}")
    asyncio.run(main_async(args))
    csm_1b_memory_estimate(args.max_rows)


if __name__ == "__main__":
    main()
