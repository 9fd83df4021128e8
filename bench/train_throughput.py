"""LoRA fine-tuning throughput: learnt frames per second of `csmstream finetune train`'s loop.

    python bench/train_throughput.py [--size small] [--steps 30] [--clip-seconds 8] [--threads N] [--device auto]
    python bench/train_throughput.py --size tiny --steps 10          # a quick look

A random-weight checkpoint of `--size` (bench/model_sizes.py) and a dataset of random codes shaped like real
speech (clips of `--clip-seconds`, a sentence of text each) go through the real training loop with the
shipped defaults (`TrainSettings()`: micro-batches of 2048 rows, 2 per step, depth decoder on 1/16 of the
frames, a context clip half of the time, LoRA rank 16 on every projection); only the step count, the
evaluation and the checkpoints are changed (none). A frame is 80 ms of speech; "learnt" frames are the
targets' frames and end frames (context and text rows cost time but are not counted).

The last lines estimate csm-1b on a GPU from counted FLOPs: an estimate, never a measurement. Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from csmstream.model.checkpoint import load_checkpoint, resolve_device  # noqa: E402
from csmstream.train.dataset import DatasetWriter, load_dataset  # noqa: E402
from csmstream.train.examples import ExampleMaker  # noqa: E402
from csmstream.train.trainer import FRAME_RATE_HZ, TrainSettings, train  # noqa: E402
from model_sizes import bench_config, describe_device, write_bench_checkpoint_elsewhere  # noqa: E402

SENTENCE = "The quick brown fox jumps over the lazy dog, and then it runs back home again."
# Assumptions of the GPU estimate (say them wherever the figure is quoted)
H100_BF16_DENSE_FLOPS = 989e12
ASSUMED_UTILISATION = 0.30  # typical for a 1B model at a few thousand rows per micro-batch


def write_random_dataset(directory: Path, num_clips: int, clip_seconds: float, num_codebooks: int) -> Path:
    frames = int(clip_seconds * FRAME_RATE_HZ)
    generator = torch.Generator().manual_seed(0)
    with DatasetWriter(directory) as writer:
        for index in range(num_clips):
            codes = torch.randint(1, 2048, (frames, num_codebooks), generator=generator)
            audio = np.zeros(frames * 1920, dtype=np.float32)
            split = "heldout" if index == 0 else "train"
            writer.add_clip(
                f"c{index:04d}", SENTENCE, 0, "bench", split, audio, codes, "bench.wav", 0, clip_seconds
            )
        writer.commit({"num_codebooks": num_codebooks, "codebook_size": 2048, "speakers": {"bench": 0}})
    return directory


def rows_per_learnt_frame(dataset, tokenizer, settings: TrainSettings) -> float:
    """Backbone rows processed per learnt frame with the context probability of `settings` (an average)."""
    maker = ExampleMaker(dataset, tokenizer, max_rows=2048)
    clip = dataset.train()[0]
    plain = maker.example(clip)
    learnt = plain.num_learnt_frames
    return (plain.num_rows + settings.context_probability * maker.num_rows(clip)) / learnt


def real_rows_per_learnt_frame(clip_seconds: float, settings: TrainSettings) -> float:
    """The same for real speech and the Llama-3 tokenizer (the bench's tiny tokenizer spells text out): about
    2.5 words a second, 1.3 tokens a word, begin/end tokens, the frames and the end frame; the context clip,
    when there is one, is taken as long as the target."""
    frames = clip_seconds * FRAME_RATE_HZ + 1
    text_rows = 2 + 1.3 * 2.5 * clip_seconds
    return (text_rows + frames) * (1 + settings.context_probability) / frames


def csm_1b_estimate(rows_per_frame: float, settings: TrainSettings) -> None:
    """FLOPs per learnt frame of csm-1b under LoRA → frames/s at an assumed utilisation of an H100."""
    from csmstream.model.csm import CsmModel
    from csmstream.model.csm_config import CsmConfig

    with torch.device("meta"):
        model = CsmModel(CsmConfig.from_dict(bench_config("csm-1b", text_vocab_size=128_256)))
    backbone = sum(p.numel() for p in model.backbone.parameters())
    depth = sum(p.numel() for p in model.depth_decoder.parameters()) + model.projection.weight.numel()
    k = model.config.num_codebooks
    heads = model.codebook0_head.weight.numel() + model.audio_head.numel() / (
        k - 1
    )  # one depth head per position
    # frozen weights: forward 2 FLOPs per weight, backward 2 more (activation gradients only) → 4 per weight
    depth_positions = k * settings.depth_fraction
    flops = 4 * (
        backbone * rows_per_frame + model.codebook0_head.weight.numel() + depth_positions * (depth + heads)
    )
    frames_per_s = ASSUMED_UTILISATION * H100_BF16_DENSE_FLOPS / flops
    print(
        f"\nESTIMATE, not measured: csm-1b (backbone {backbone / 1e9:.2f} B, depth decoder {depth / 1e6:.0f} M "
        f"parameters) needs about {flops / 1e9:.1f} GFLOP per learnt frame under LoRA ({rows_per_frame:.2f} "
        f"backbone rows per frame, {depth_positions:g} depth positions, 4 FLOPs per frozen weight, attention "
        f"not counted); at an assumed {ASSUMED_UTILISATION:.0%} of an H100's {H100_BF16_DENSE_FLOPS / 1e12:.0f} "
        f"bf16 TFLOP/s that is about {frames_per_s:,.0f} frames/s ({frames_per_s / FRAME_RATE_HZ:,.0f} s of "
        f"speech per second; an epoch of an hour of speech in {3600 * FRAME_RATE_HZ / frames_per_s:.1f} s). "
        "Host-side batching, Python overhead and attention make the real figure far lower (measured on an H200: "
        "1,176 frames/s, 30x under this estimate): measure it on the GPU with --size csm-1b --device cuda "
        "(random weights of the real shape)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="small", choices=("tiny", "small", "csm-1b"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--clip-seconds", type=float, default=8.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    settings = replace(TrainSettings(), steps=args.steps, eval_every=0, checkpoint_every=0, patience=0)
    print(
        f"device: {describe_device() if device.type == 'cuda' else f'CPU ({torch.get_num_threads()} threads)'}"
    )
    print(
        f"shipped defaults: batch_frames {settings.batch_frames} × grad_accum {settings.grad_accum}, lr {settings.lr}, "
        f"LoRA rank {settings.lora.rank} alpha {settings.lora.alpha:g} on {','.join(settings.lora.targets)}, "
        f"depth fraction {settings.depth_fraction:g}, context probability {settings.context_probability:g}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = write_bench_checkpoint_elsewhere(Path(tmp) / args.size, args.size)
        checkpoint = load_checkpoint(
            str(model_dir),
            device=device,
            dtype="bfloat16" if device.type == "cuda" else "float32",
            progress=False,
        )
        dataset = load_dataset(
            write_random_dataset(
                Path(tmp) / "dataset", args.clips, args.clip_seconds, checkpoint.config.num_codebooks
            )
        )
        rows_per_frame = rows_per_learnt_frame(dataset, checkpoint.tokenizer, settings)
        started = time.perf_counter()
        result = train(
            checkpoint.model, checkpoint.tokenizer, dataset, settings, Path(tmp) / "run", args.size, device,
            show_progress=True,
        )  # fmt: skip
        wall_s = time.perf_counter() - started
    fps = result.frames_per_second
    print(
        f"\n{args.size} on {device}: {fps:.1f} learnt frames/s ({fps / FRAME_RATE_HZ:.2f} s of speech per second), "
        f"{result.steps} steps in {result.train_seconds:.1f} s of training ({wall_s:.1f} s with setup), "
        f"{rows_per_frame:.2f} backbone rows per learnt frame"
    )
    csm_1b_estimate(real_rows_per_learnt_frame(args.clip_seconds, settings), settings)


if __name__ == "__main__":
    main()
