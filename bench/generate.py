"""Generation and streaming-decode speed of the CSM core, single stream (prints figures, asserts nothing).

    python bench/generate.py [--sizes tiny small] [--frames 50] [--device auto] [--dtype auto]

For each size: frames/s and real-time factor (RTF = wall time / audio time; < 1 is faster than real time)
of generation alone (backbone + depth decoder), of streaming Mimi decode alone (one frame per call), and of
both together (what `csmstream say --stream` does). On a GPU also try `--sizes csm-1b`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from csmstream.model.checkpoint import load_checkpoint  # noqa: E402
from csmstream.model.generate import generate_frames  # noqa: E402
from csmstream.model.sampling import SamplingParams  # noqa: E402
from csmstream.model.tokenizer import build_prompt  # noqa: E402
from model_sizes import describe_device, write_bench_checkpoint  # noqa: E402

FRAME_S = 0.08
TEXT = "The quick brown fox jumps over the lazy dog, and then it runs far away."


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_size(size: str, frames: int, device: str, dtype: str, workdir: Path) -> dict[str, float]:
    path = write_bench_checkpoint(workdir / size, size)
    ckpt = load_checkpoint(str(path), device=device, dtype=dtype, progress=False)
    model, codec = ckpt.model, ckpt.codec
    dev = next(model.parameters()).device
    prompt = build_prompt(ckpt.tokenizer, [], 0, TEXT, None, max_rows=2048)
    params = SamplingParams(seed=1, temperature=0.9, topk=50)
    with torch.inference_mode():
        # warm-up (allocations, kernels)
        for _ in generate_frames(model, prompt.tokens, prompt.mask, params, 3):
            pass
        # 1. generation alone (an all-zero frame would stop early: count what was made)
        sync(dev)
        t0 = time.perf_counter()
        made = [f for f in generate_frames(model, prompt.tokens, prompt.mask, params, frames)]
        sync(dev)
        gen_s = time.perf_counter() - t0
        codes = torch.stack(made, dim=1)[None].to(dev)  # (1, K, T)
        # 2. streaming decode alone, one frame per call
        state = codec.new_decoder_state(1, device=dev)
        codec.decode_step(codes[:, :, :2], state)
        state = codec.new_decoder_state(1, device=dev)
        sync(dev)
        t0 = time.perf_counter()
        for t in range(codes.shape[2]):
            codec.decode_step(codes[:, :, t : t + 1], state)
        sync(dev)
        dec_s = time.perf_counter() - t0
    n = len(made)
    return {
        "frames": n,
        "gen_fps": n / gen_s,
        "gen_rtf": gen_s / (n * FRAME_S),
        "dec_fps": n / dec_s,
        "dec_rtf": dec_s / (n * FRAME_S),
        "both_rtf": (gen_s + dec_s) / (n * FRAME_S),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"])
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device_name = describe_device()
    print(f"device: {device_name}; torch {torch.__version__}; {args.frames} frames per run")
    header = f"{'size':8} {'params':>8} {'frames':>6} {'gen fps':>8} {'gen RTF':>8} {'dec fps':>8} {'dec RTF':>8} {'gen+dec RTF':>11}"
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            r = bench_size(size, args.frames, args.device, args.dtype, Path(tmp))
            print(
                f"{size:8} {r['params_m']:7.1f}M {r['frames']:6d} {r['gen_fps']:8.1f} {r['gen_rtf']:8.3f} "
                f"{r['dec_fps']:8.1f} {r['dec_rtf']:8.3f} {r['both_rtf']:11.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
