"""The continuous-batching engine alone (no server): throughput, time to first audio, memory, prefix cache.

    python bench/engine.py [--size small] [--streams 1 2 4 8 16] [--frames 25] [--threads N]

Prints, for each number of concurrent streams: aggregate frames/s (all streams together), its ratio to one
stream, time to first audio (median / p95), per-stream real-time factor. Then the memory an added session
costs (its KV-cache row + decoder state + buffers) against one copy of the model, and the prefill time of a
voice prompt with and without the voice prefix cache. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from csmstream.engine.csm_engine import CsmEngine  # noqa: E402
from csmstream.engine.events import Finished  # noqa: E402
from csmstream.engine.request import SynthesisRequest  # noqa: E402
from csmstream.model.checkpoint import load_checkpoint  # noqa: E402
from csmstream.model.sampling import SamplingParams  # noqa: E402
from csmstream.voices.library import VoiceLibrary  # noqa: E402
from model_sizes import describe_device, write_bench_checkpoint_elsewhere  # noqa: E402

TEXT = "The quick brown fox jumps over the lazy dog."


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


async def run_streams(engine: CsmEngine, n: int, frames: int, voice_id: str | None = None) -> dict:
    requests = [
        SynthesisRequest(
            text=TEXT, voice_id=voice_id, sampling=SamplingParams(seed=i), max_seconds=frames * 0.08
        )
        for i in range(n)
    ]
    t0 = time.perf_counter()
    handles = [engine.submit(r) for r in requests]

    async def drain(handle):
        async for event in handle.events():
            if isinstance(event, Finished):
                return event
        raise RuntimeError("no Finished event")

    results = await asyncio.gather(*(drain(h) for h in handles))
    wall_s = time.perf_counter() - t0
    total_frames = sum(round(r.audio_seconds / 0.08) for r in results)
    return {
        "wall_s": wall_s,
        "fps": total_frames / wall_s,
        "ttfa": [r.ttfa_ms for r in results if r.ttfa_ms is not None],
        "rtf": [r.rtf for r in results if r.rtf is not None],
        "reasons": {r.finish_reason for r in results},
    }


def tensor_bytes(module: torch.nn.Module) -> int:
    seen, total = set(), 0
    for t in list(module.parameters()) + list(module.buffers()):
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


async def main_async(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_bench_checkpoint_elsewhere(Path(tmp) / args.size, args.size)
        voices = VoiceLibrary(Path(tmp) / "voices")
        max_slots = max(args.streams)
        engine = CsmEngine(
            lambda: load_checkpoint(str(path), device=args.device, dtype=args.dtype, progress=False),
            voices,
            max_slots=max_slots,
            max_queue=0,
            realtime_admission=False,
            max_rows=args.max_rows,
        )
        await engine.start()
        try:
            await run_streams(engine, 2, 4)  # warm-up
            print(f"\n== throughput ({args.size}, {args.frames} frames per stream, max_slots {max_slots})")
            print(
                f"{'streams':>7} {'agg fps':>8} {'x 1 stream':>10} {'TTFA med':>9} {'TTFA p95':>9} {'RTF med':>8}"
            )
            base = None
            for n in args.streams:
                r = await run_streams(engine, n, args.frames)
                base = base or r["fps"]
                print(
                    f"{n:7d} {r['fps']:8.1f} {r['fps'] / base:10.2f} {statistics.median(r['ttfa']):8.0f}ms "
                    f"{p95(r['ttfa']):8.0f}ms {statistics.median(r['rtf']):8.2f}",
                    flush=True,
                )

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
            t = np.arange(24000 * 8) / 24000
            audio = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 2 * t))).astype(np.float32)
            voices.create("bench", "Bench", 0, [(audio, 24000, "This is a reference clip of eight seconds.")])
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
        finally:
            await engine.stop()


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
    device = describe_device()
    print(f"device: {device}; torch {torch.__version__}")
    asyncio.run(main_async(args))
    csm_1b_memory_estimate(args.max_rows)


if __name__ == "__main__":
    main()


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
