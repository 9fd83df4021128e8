"""LoRA adapters on disk, in PEFT's format: a folder with `adapter_config.json` + `adapter_model.safetensors`.

`csmstream finetune train` writes them through PEFT on our `CsmModel`, so their tensors are named after our
modules (`base_model.model.backbone.layers.0.attention.q_proj.lora_A.weight`). Adapters trained elsewhere with
transformers + PEFT on `sesame/csm-1b` name transformers' modules
(`base_model.model.backbone_model.layers.0.self_attn.q_proj.lora_A.weight`); both load, through the one name
table in weight_names.py.

Plain LoRA only: DoRA, bias training, extra trained modules (`modules_to_save`) and per-module ranks are
refused with a clear error rather than served wrong.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from csmstream.errors import CsmstreamError
from csmstream.model.lora import ADAPTABLE, LoraWeights, check_against_model
from csmstream.model.weight_names import CODEC_PREFIX, ours_from_theirs

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)
_PEFT_PREFIX = "base_model.model."
# `<module>.lora_A.weight`, also `<module>.lora_A.<adapter name>.weight` as some tools save it
_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<part>[AB])(?:\.[\w-]+)?\.weight$")
_OUR_PREFIXES = ("backbone.layers.", "depth_decoder.layers.")


class AdapterError(CsmstreamError):
    """An adapter folder that cannot be served: missing, damaged, unsupported, or made for another model."""


def adapter_digest(directory: str | Path) -> str:
    """16 hex chars that change with the adapter's files (part of a voice's revision)."""
    digest = hashlib.sha256(b"csmstream-adapter-v1\0")
    for name in ADAPTER_FILES:
        digest.update(name.encode() + b"\0" + (Path(directory) / name).read_bytes())
    return digest.hexdigest()[:16]


def read_adapter_config(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    for name in ADAPTER_FILES:
        if not (directory / name).is_file():
            raise AdapterError(f"{directory} is not a LoRA adapter: {name} is missing")
    try:
        config = json.loads((directory / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AdapterError(f"{directory / ADAPTER_CONFIG} cannot be read: {exc}") from None
    if not isinstance(config, dict):
        raise AdapterError(f"{directory / ADAPTER_CONFIG} is not a JSON object")
    peft_type = str(config.get("peft_type", "LORA")).upper()
    unsupported = [
        (peft_type != "LORA", f"peft_type {peft_type} (only LORA)"),
        (bool(config.get("use_dora")), "DoRA (use_dora)"),
        (config.get("bias", "none") != "none", f"trained biases (bias={config.get('bias')!r})"),
        (bool(config.get("modules_to_save")), "extra trained modules (modules_to_save)"),
        (bool(config.get("rank_pattern")) or bool(config.get("alpha_pattern")), "per-module ranks"),
    ]
    for refused, what in unsupported:
        if refused:
            raise AdapterError(f"{directory}: {what} is not supported; plain LoRA adapters only")
    rank = config.get("r")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise AdapterError(f"{directory / ADAPTER_CONFIG}: r must be a positive integer, got {rank!r}")
    return config


def our_module_name(key_module: str) -> str | None:
    """Our module name for a PEFT tensor's module path (ours or transformers'), None when it is neither."""
    name = key_module[len(_PEFT_PREFIX) :] if key_module.startswith(_PEFT_PREFIX) else key_module
    if name.startswith(_OUR_PREFIXES):
        return name
    ours = ours_from_theirs(name + ".weight")
    return ours[: -len(".weight")] if ours is not None and ours.endswith(".weight") else None


def _is_codec(key_module: str) -> bool:
    """A module of the Mimi codec. PEFT on transformers' whole CSM model with target_modules=["q_proj", ...]
    also wraps the codec's transformer layers; the CSM loss never runs the codec, so their lora_B stay zero
    (exactly no change) and are skipped. A codec adapter that changes something is refused."""
    name = key_module[len(_PEFT_PREFIX) :] if key_module.startswith(_PEFT_PREFIX) else key_module
    return name.startswith(CODEC_PREFIX)


def read_adapter(directory: str | Path) -> LoraWeights:
    """The adapter's weights (float32, CPU) on our module names. AdapterError for anything it cannot serve."""
    directory = Path(directory)
    config = read_adapter_config(directory)
    rank = int(config["r"])
    alpha = float(config.get("lora_alpha", rank))
    scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    parts: dict[str, dict[str, torch.Tensor]] = {}
    codec_parts: dict[str, dict[str, torch.Tensor]] = {}
    try:
        with safe_open(str(directory / ADAPTER_WEIGHTS), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
                match = _KEY.match(key)
                if match is None:
                    raise AdapterError(f"{directory}: {key!r} is not a LoRA tensor (lora_A / lora_B)")
                if _is_codec(match["module"]):
                    codec_parts.setdefault(match["module"], {})[match["part"]] = handle.get_tensor(key)
                    continue
                module = our_module_name(match["module"])
                if module is None or module.rsplit(".", 1)[-1] not in ADAPTABLE:
                    raise AdapterError(
                        f"{directory}: {match['module']!r} is not a projection csmstream can adapt "
                        f"({', '.join(ADAPTABLE)} of the backbone and the depth decoder)"
                    )
                parts.setdefault(module, {})[match["part"]] = handle.get_tensor(key).to(torch.float32)
    except (SafetensorError, OSError, ValueError) as exc:
        raise AdapterError(
            f"{directory / ADAPTER_WEIGHTS} is damaged or not a safetensors file: {exc}"
        ) from None
    for module, pair in codec_parts.items():
        if "B" not in pair or pair["B"].any():
            raise AdapterError(
                f"{directory}: the adapter changes the Mimi codec ({module}), which csmstream does not adapt; "
                "train with target_modules that leave codec_model out"
            )
    if not parts:
        raise AdapterError(f"{directory / ADAPTER_WEIGHTS} holds no LoRA tensors")
    weights: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for module, pair in sorted(parts.items()):
        if set(pair) != {"A", "B"}:
            raise AdapterError(
                f"{directory}: {module} has lora_{''.join(pair)} but not both lora_A and lora_B"
            )
        a, b = pair["A"], pair["B"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != rank or b.shape[1] != rank:
            raise AdapterError(
                f"{directory}: {module} has lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)}; "
                f"rank {rank} needs ({rank}, in) and (out, {rank})"
            )
        if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
            raise AdapterError(f"{directory}: {module} holds NaN or infinite values")
        weights[module] = (a.contiguous(), b.contiguous())
    return LoraWeights(rank=rank, scale=scale, weights=weights)


def load_adapter(directory: str | Path, model: torch.nn.Module) -> LoraWeights:
    """`read_adapter`, then checked against `model`'s projections (AdapterError when made for another model)."""
    adapter = read_adapter(directory)
    try:
        check_against_model(adapter, model)
    except ValueError as exc:
        raise AdapterError(f"{directory}: {exc}") from None
    return adapter
