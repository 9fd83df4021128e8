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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from csmstream.errors import BadRequest
from csmstream.model.lora import ADAPTABLE, LoraWeights, check_against_model
from csmstream.model.weight_names import CODEC_PREFIX, ours_from_theirs

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)
_PEFT_PREFIX = "base_model.model."
# `<module>.lora_A.weight`, also `<module>.lora_A.<adapter name>.weight` as some tools save it
_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<part>[AB])(?:\.[\w-]+)?\.weight$")
_OUR_PREFIXES = ("backbone.layers.", "depth_decoder.layers.")
# what reading a damaged adapter file raises (AdapterErrors raised while reading pass through)
_FILE_ERRORS = (SafetensorError, OSError)


class AdapterError(BadRequest):
    """An adapter folder that cannot be served: missing, damaged, unsupported, or made for another model.
    A request for a voice with such an adapter is refused like one for a voice that cannot be spoken."""


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


def _damaged(directory: Path, exc: Exception) -> AdapterError:
    return AdapterError(f"{directory / ADAPTER_WEIGHTS} is damaged or not a safetensors file: {exc}")


def _is_codec(key_module: str) -> bool:
    """A module of the Mimi codec. PEFT on transformers' whole CSM model with target_modules=["q_proj", ...]
    also wraps the codec's transformer layers; the CSM loss never runs the codec, so their lora_B stay zero
    (exactly no change) and are skipped. A codec adapter that changes something is refused."""
    name = key_module[len(_PEFT_PREFIX) :] if key_module.startswith(_PEFT_PREFIX) else key_module
    return name.startswith(CODEC_PREFIX)


@dataclass(frozen=True)
class AdapterLayout:
    """What an adapter changes, read from its config and the safetensors header alone (no tensor data)."""

    rank: int
    scale: float
    shapes: dict[str, tuple[int, int]]  # our module name → (in, out) features
    keys: dict[str, tuple[str, str]]  # our module name → (lora_A key, lora_B key) in the file
    codec_keys: tuple[
        str, ...
    ] = ()  # lora tensors of the Mimi codec, which must change nothing (see _is_codec)


def read_adapter_layout(directory: str | Path) -> AdapterLayout:
    """The adapter's layout; AdapterError for anything csmstream cannot serve (cheap: for every voice load)."""
    directory = Path(directory)
    config = read_adapter_config(directory)
    rank = int(config["r"])
    alpha = float(config.get("lora_alpha", rank))
    scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    parts: dict[str, dict[str, tuple[str, list[int]]]] = {}
    codec_parts: list[str] = []
    try:
        with safe_open(str(directory / ADAPTER_WEIGHTS), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
                match = _KEY.match(key)
                if match is None:
                    raise AdapterError(f"{directory}: {key!r} is not a LoRA tensor (lora_A / lora_B)")
                if _is_codec(match["module"]):
                    codec_parts.append(key)
                    continue
                module = our_module_name(match["module"])
                if module is None or module.rsplit(".", 1)[-1] not in ADAPTABLE:
                    raise AdapterError(
                        f"{directory}: {match['module']!r} is not a projection csmstream can adapt "
                        f"({', '.join(ADAPTABLE)} of the backbone and the depth decoder)"
                    )
                parts.setdefault(module, {})[match["part"]] = (key, list(handle.get_slice(key).get_shape()))
    except _FILE_ERRORS as exc:
        raise _damaged(directory, exc) from None
    if not parts:
        raise AdapterError(f"{directory / ADAPTER_WEIGHTS} holds no LoRA tensors")
    shapes: dict[str, tuple[int, int]] = {}
    keys: dict[str, tuple[str, str]] = {}
    for module, pair in sorted(parts.items()):
        if set(pair) != {"A", "B"}:
            raise AdapterError(
                f"{directory}: {module} has lora_{''.join(pair)} but not both lora_A and lora_B"
            )
        (key_a, shape_a), (key_b, shape_b) = pair["A"], pair["B"]
        if len(shape_a) != 2 or len(shape_b) != 2 or shape_a[0] != rank or shape_b[1] != rank:
            raise AdapterError(
                f"{directory}: {module} has lora_A {tuple(shape_a)} and lora_B {tuple(shape_b)}; "
                f"rank {rank} needs ({rank}, in) and (out, {rank})"
            )
        shapes[module] = (shape_a[1], shape_b[0])
        keys[module] = (key_a, key_b)
    return AdapterLayout(rank=rank, scale=scale, shapes=shapes, keys=keys, codec_keys=tuple(codec_parts))


def check_layout(layout: AdapterLayout, model: torch.nn.Module, where: str | Path) -> None:
    """AdapterError unless every adapted module is a projection of `model` with the same shape."""
    try:
        check_against_model(layout.shapes, model)
    except ValueError as exc:
        raise AdapterError(f"{where}: {exc}") from None


def read_adapter(directory: str | Path) -> LoraWeights:
    """The adapter's weights (float32, CPU) on our module names. AdapterError for anything it cannot serve."""
    directory = Path(directory)
    layout = read_adapter_layout(directory)
    weights: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    try:
        with safe_open(str(directory / ADAPTER_WEIGHTS), framework="pt") as handle:
            for key in layout.codec_keys:
                if ".lora_B" in key and handle.get_tensor(key).any():
                    raise AdapterError(
                        f"{directory}: the adapter changes the Mimi codec ({key}), which csmstream does not "
                        "adapt; train with target_modules that leave codec_model out"
                    )
            for module, (key_a, key_b) in layout.keys.items():
                a = handle.get_tensor(key_a).to(torch.float32).contiguous()
                b = handle.get_tensor(key_b).to(torch.float32).contiguous()
                if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
                    raise AdapterError(f"{directory}: {module} holds NaN or infinite values")
                weights[module] = (a, b)
    except _FILE_ERRORS as exc:
        raise _damaged(directory, exc) from None
    return LoraWeights(rank=layout.rank, scale=layout.scale, weights=weights)


def load_adapter(directory: str | Path, model: torch.nn.Module) -> LoraWeights:
    """`read_adapter`, then checked against `model`'s projections (AdapterError when made for another model)."""
    check_layout(read_adapter_layout(directory), model, directory)
    return read_adapter(directory)
