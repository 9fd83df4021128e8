"""Speed of the streaming Mimi decoder with random weights: prints figures, asserts nothing.

python -m csmstream.codec.benchmark            # tiny and real-size configs, CPU
python -m csmstream.codec.benchmark --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch

from csmstream.codec.mimi import Mimi
from csmstream.codec.mimi_config import MimiConfig
from csmstream.codec.tiny import random_init_, tiny_mimi_config


@dataclass(frozen=True)
class DecodeStepFigures:
    batch_size: int
    frames_per_call: int
    num_frames: int
    seconds: float

    @property
    def frames_per_second(self) -> float:
        """Codec frames decoded per wall second, over all rows of the batch."""
        return self.batch_size * self.num_frames / self.seconds

    @property
    def ms_per_call(self) -> float:
        return 1000 * self.seconds / (self.num_frames / self.frames_per_call)

    @property
    def realtime_factor(self) -> float:
        """Audio seconds produced per wall second (12.5 frames per audio second)."""
        return self.frames_per_second / 12.5


def benchmark_decode_step(
    config: MimiConfig,
    batch_size: int = 1,
    num_frames: int = 8,
    frames_per_call: int = 1,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> DecodeStepFigures:
    """Time `decode_step` on `num_frames` random frames per row, after two warm-up calls."""
    mimi = Mimi(config).eval()
    random_init_(mimi, seed)
    mimi.to(device=device, dtype=dtype)
    generator = torch.Generator().manual_seed(seed)
    total = num_frames + 2 * frames_per_call
    codes = torch.randint(
        0, config.codebook_size, (batch_size, config.num_quantizers, total), generator=generator
    )
    codes = codes.to(device)
    with torch.inference_mode():
        state = mimi.new_decoder_state(batch_size)
        starts = list(range(0, total, frames_per_call))
        for start in starts[:2]:  # warm-up: allocator, kernels
            mimi.decode_step(codes[..., start : start + frames_per_call], state)
        _synchronize(device)
        began = time.perf_counter()
        for start in starts[2:]:
            mimi.decode_step(codes[..., start : start + frames_per_call], state)
        _synchronize(device)
        seconds = time.perf_counter() - began
    return DecodeStepFigures(batch_size, frames_per_call, num_frames, seconds)


def _synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch-sizes", default="1,4")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    configs = {"tiny": MimiConfig.from_dict(tiny_mimi_config()), "real-size": MimiConfig()}
    print(f"decode_step, random weights, {args.device} {args.dtype}, {torch.get_num_threads()} threads")
    for name, config in configs.items():
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            figures = benchmark_decode_step(config, batch_size, args.frames, device=args.device, dtype=dtype)
            print(
                f"  {name:9s} B={batch_size:<3d} 1 frame/call: {figures.ms_per_call:8.2f} ms/call "
                f"{figures.frames_per_second:9.1f} frames/s  {figures.realtime_factor:7.1f}x real time"
            )


if __name__ == "__main__":
    main()
