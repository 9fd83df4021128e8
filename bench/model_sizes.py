"""Random-weight CSM checkpoints of a few sizes for benchmarks (never for quality: the weights are noise).

- tiny:    the test checkpoint (2-layer stacks, dims 64 / 48), tiny Mimi
- small:   enough work that the model dominates on a CPU (8-layer 512-wide backbone, 2-layer depth), tiny Mimi
- csm-1b:  the real CSM-1B shape (16 × 2048 backbone, 4 × 1024 depth decoder) and the real Mimi shape
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from csmstream.codec.mimi import Mimi
from csmstream.codec.mimi_config import MimiConfig
from csmstream.codec.tiny import random_init_ as random_init_codec_
from csmstream.dev.tiny_model import build_tiny_model, tiny_csm_config
from csmstream.dev.tiny_tokenizer import build_tiny_tokenizer
from csmstream.model.checkpoint import save_checkpoint

SIZES = ("tiny", "small", "csm-1b")


def _resize(
    config: dict[str, Any], backbone: tuple[int, int, int, int, int], depth: tuple[int, int, int, int, int]
):
    """(layers, dim, heads, kv_heads, ffn) for each stack."""
    layers, dim, heads, kv, ffn = backbone
    config.update(
        num_hidden_layers=layers,
        hidden_size=dim,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=dim // heads,
        intermediate_size=ffn,
    )
    layers, ddim, heads, kv, ffn = depth
    config["depth_decoder_config"].update(
        num_hidden_layers=layers,
        hidden_size=ddim,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=ddim // heads,
        intermediate_size=ffn,
        backbone_hidden_size=dim,
    )
    return config


def bench_config(size: str, text_vocab_size: int) -> dict[str, Any]:
    config = copy.deepcopy(tiny_csm_config(text_vocab_size))
    if size == "tiny":
        return config
    if size == "small":
        return _resize(config, (8, 512, 8, 2, 2048), (2, 256, 4, 2, 1024))
    if size == "csm-1b":
        config = _resize(config, (16, 2048, 32, 8, 8192), (4, 1024, 8, 2, 8192))
        config["codec_config"] = MimiConfig.from_dict({}).to_dict()  # transformers' defaults: the real Mimi
        config["codec_config"]["num_quantizers"] = 32
        return config
    raise ValueError(f"unknown size {size!r}; choose from {SIZES}")


def write_bench_checkpoint(directory: str | Path, size: str, seed: int = 0) -> Path:
    tokenizer = build_tiny_tokenizer()
    config = bench_config(size, tokenizer.get_vocab_size(with_added_tokens=True))
    model = build_tiny_model(config, seed=seed)
    codec = Mimi(MimiConfig.from_dict(config["codec_config"])).eval()
    random_init_codec_(codec, seed=seed + 1)
    return save_checkpoint(directory, config, model, codec, tokenizer.to_str())


def write_bench_checkpoint_elsewhere(directory: str | Path, size: str, seed: int = 0) -> Path:
    """The same, in a child process: random init runs parallel torch kernels, and a process whose main
    thread ran them slows the engine thread's kernels down (two OpenMP thread teams on few cores).

    With CSMSTREAM_BENCH_CHECKPOINTS=DIR set, the checkpoint is written once into DIR/SIZE-SEED and reused by
    every later bench (a script running several benches on csm-1b writes its 5 GB once), `directory` unused."""
    import os
    import subprocess
    import sys

    cache = os.environ.get("CSMSTREAM_BENCH_CHECKPOINTS")
    if cache:
        directory = Path(cache) / f"{size}-{seed}"
        if (directory / "config.json").is_file():
            return directory

    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from model_sizes import write_bench_checkpoint; "
        "write_bench_checkpoint(sys.argv[2], sys.argv[3], int(sys.argv[4]))"
    )
    here = str(Path(__file__).resolve().parent)
    subprocess.run([sys.executable, "-c", code, here, str(directory), size, str(seed)], check=True)
    return Path(directory)


def describe_device() -> str:
    """The accelerator (or the CPU and its torch thread count) the figures were measured on."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU ({torch.get_num_threads()} threads)"
