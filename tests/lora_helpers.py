"""LoRA adapters for tests, made with PEFT itself (the library `finetune train` uses) on a copy of a model."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

ALL_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def make_peft_adapter(
    base: torch.nn.Module,
    directory: Path,
    seed: int,
    rank: int = 4,
    targets: tuple[str, ...] = ALL_TARGETS,
    zero_b: bool = False,
    magnitude: float = 0.3,
):
    """A PEFT LoRA on a copy of `base` with random A and B (B all zero when `zero_b`, as PEFT starts), saved
    to `directory` in PEFT's format. Returns the PEFT model (its `.base_model.model` speaks with the adapter)."""
    import peft

    config = peft.LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(targets), lora_dropout=0.0)
    wrapped = peft.get_peft_model(copy.deepcopy(base), config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in wrapped.named_parameters():
            if "lora_A" in name or ("lora_B" in name and not zero_b):
                param.copy_(torch.randn(param.shape, generator=generator) * magnitude)
    wrapped.save_pretrained(str(directory))
    return wrapped
