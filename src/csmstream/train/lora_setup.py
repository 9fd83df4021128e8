"""LoRA adapters (PEFT) on our `CsmModel`: low-rank updates of the backbone's and the depth decoder's
projections, base weights frozen.

Targets are projection names (`q_proj`, …, `down_proj`); each is matched in every layer of both stacks
(`backbone.layers.{i}.attention.q_proj`, `depth_decoder.layers.{i}.mlp.down_proj`, …). The saved adapter is
PEFT's standard pair of files, `adapter_config.json` + `adapter_model.safetensors`, with keys like
`base_model.model.backbone.layers.0.attention.q_proj.lora_A.weight`.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from csmstream.errors import CsmstreamError
from csmstream.model.adapter_files import ADAPTER_FILES
from csmstream.model.csm import CsmModel
from csmstream.model.lora_targets import ADAPTABLE, parse_targets
from csmstream.voices.storage import fsync_dir

STACKS = ("backbone", "depth_decoder")


class LoraSetupError(CsmstreamError):
    """LoRA settings that cannot apply to this model."""


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 16
    alpha: float = 32.0
    targets: tuple[str, ...] = ADAPTABLE
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise LoraSetupError(f"--rank must be >= 1, got {self.rank}")
        if self.alpha <= 0:
            raise LoraSetupError(f"--alpha must be > 0, got {self.alpha}")
        parse_targets(",".join(self.targets))  # BadRequest for none or an unknown one


def target_module_names(model: torch.nn.Module, targets: Sequence[str]) -> list[str]:
    """Full names of the modules LoRA adapts: `<stack>.layers.<i>.<attention|mlp>.<target>`."""
    names = []
    for name, module in model.named_modules():
        parts = name.split(".")
        if (
            len(parts) == 5
            and parts[0] in STACKS
            and parts[1] == "layers"
            and parts[4] in targets
            and isinstance(module, torch.nn.Linear)
        ):
            names.append(name)
    return names


def lora_config(settings: LoraSettings, base_model_name: str) -> LoraConfig:
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.targets),
        bias="none",
    )
    config.base_model_name_or_path = base_model_name  # the --model string: what the adapter was trained on
    return config


def add_lora(model: CsmModel, settings: LoraSettings, base_model_name: str) -> PeftModel:
    """Wrap `model` (in place) with fresh LoRA adapters (B = 0: the output is the base model's, exactly).
    Only the adapters train; every base weight is frozen."""
    found = target_module_names(model, settings.targets)
    missing = [t for t in settings.targets if not any(name.endswith("." + t) for name in found)]
    if missing:
        raise LoraSetupError(f"this model has no {', '.join(missing)} projections to adapt")
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    # the adapters stay float32 on a bfloat16 base (autocast_adapter_dtype): small updates survive rounding
    # PEFT sets base_model_name_or_path from the model (ours has none, and it warns when it renames one):
    # leave it unset there, then write ours, which goes into adapter_config.json
    config = lora_config(settings, base_model_name)
    config.base_model_name_or_path = None
    peft_model = get_peft_model(model, config, autocast_adapter_dtype=True)
    peft_model.peft_config["default"].base_model_name_or_path = base_model_name
    for name, parameter in peft_model.named_parameters():
        parameter.requires_grad_("lora_" in name)
    return peft_model


def adapter_parameters(peft_model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The trainable LoRA tensors by name (our checkpoints' keys; PEFT's files use its own naming)."""
    return {name: p for name, p in peft_model.named_parameters() if p.requires_grad}


def adapter_state(peft_model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the LoRA tensors."""
    return {name: p.detach().to("cpu", copy=True) for name, p in adapter_parameters(peft_model).items()}


@torch.no_grad()
def load_adapter_state(peft_model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    parameters = adapter_parameters(peft_model)
    if set(parameters) != set(state):
        raise LoraSetupError("the saved adapter does not match the LoRA settings of this run")
    for name, parameter in parameters.items():
        parameter.copy_(state[name])


def save_adapter(peft_model: PeftModel, state: dict[str, torch.Tensor], directory: Path) -> Path:
    """Write `state` (from `adapter_state`) as PEFT's adapter files in `directory`, atomically: into a hidden
    folder beside it, then renamed into place (an older folder there is replaced only then)."""
    directory = Path(directory)
    temp = directory.parent / f".tmp-{directory.name}-{uuid.uuid4().hex[:12]}"
    current = adapter_state(peft_model)
    try:
        load_adapter_state(peft_model, state)
        # no embedding-layer lookup: PEFT would otherwise look for the base model's config.json on the hub
        peft_model.save_pretrained(str(temp), safe_serialization=True, save_embedding_layers=False)
        extra = [p for p in temp.iterdir() if p.name not in ADAPTER_FILES]
        for path in extra:  # PEFT adds a model-card README: the adapter is the two standard files
            path.unlink()
        fsync_dir(temp)
        if directory.exists():
            old = directory.parent / f".trash-{directory.name}-{uuid.uuid4().hex[:12]}"
            os.rename(directory, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(temp, directory)
        fsync_dir(directory.parent)
    finally:
        load_adapter_state(peft_model, current)
        shutil.rmtree(temp, ignore_errors=True)
    return directory
