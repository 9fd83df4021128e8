"""Many LoRA adapters in one batch: each row of a step picks its own adapter (the Punica / S-LoRA idea).

Every adaptable projection of the transformer stacks is a `Projection` (an `nn.Linear`, same weights, same
state dict). Once an `AdapterBank` is attached, each holds two stacked tables, one entry per bank index:

    lora_a (N + 1, in, r)      index 0 is all zeros: the base model
    lora_b (N + 1, r, out)     the adapter's scale (alpha / r) is folded in here

and a forward with `adapter_ids` (B,) adds, for every row b at once (no loop over rows or adapters):

    y[b] = x[b] · Wᵀ + (x[b] · lora_a[ids[b]]) · lora_b[ids[b]]

An adapter of rank r' < r fills the first r' columns; the rest stay zero, which adds exactly nothing. The
tables are allocated once and written in place, so compiled graphs and CUDA graphs stay valid while adapters
come and go. With `adapter_ids=None` the projection is the plain linear layer (no extra work).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from csmstream.model.lora_targets import ADAPTABLE


class Projection(nn.Linear):
    """A linear layer that adds a per-row LoRA delta when an adapter bank is attached (see the module doc)."""

    lora_a: torch.Tensor | None
    lora_b: torch.Tensor | None

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__(in_features, out_features, bias=bias)
        # non-persistent: checkpoints and state dicts stay those of a plain nn.Linear
        self.register_buffer("lora_a", None, persistent=False)
        self.register_buffer("lora_b", None, persistent=False)

    def forward(self, x: torch.Tensor, adapter_ids: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, ..., in), adapter_ids (B,) int64 bank indices or None → (B, ..., out)."""
        out = F.linear(x, self.weight, self.bias)
        if adapter_ids is None or self.lora_a is None:
            return out
        rows = x.reshape(x.shape[0], -1, x.shape[-1])  # (B, T, in)
        down = torch.bmm(rows, self.lora_a.index_select(0, adapter_ids))  # (B, T, r)
        delta = torch.bmm(down, self.lora_b.index_select(0, adapter_ids))  # (B, T, out)
        return out + delta.reshape(out.shape)


def project(layer: nn.Module, x: torch.Tensor, adapter_ids: torch.Tensor | None) -> torch.Tensor:
    """Call a projection with the rows' adapters, or plainly (a layer wrapped for training by PEFT)."""
    return layer(x) if adapter_ids is None else layer(x, adapter_ids)


def adaptable_projections(model: nn.Module) -> dict[str, Projection]:
    """Our module name → projection, for every adaptable projection of the model."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, Projection) and name.rsplit(".", 1)[-1] in ADAPTABLE
    }


@dataclass(frozen=True)
class LoraWeights:
    """One adapter's weights on our module names: name → (A (r, in), B (out, r)), and its scale."""

    rank: int
    scale: float  # multiplies B·A (alpha / r, or alpha / sqrt(r) for rank-stabilised LoRA)
    weights: dict[str, tuple[torch.Tensor, torch.Tensor]]

    @property
    def targets(self) -> set[str]:
        return {name.rsplit(".", 1)[-1] for name in self.weights}

    def nbytes(self) -> int:
        return sum(
            a.numel() * a.element_size() + b.numel() * b.element_size() for a, b in self.weights.values()
        )


class AdapterBank:
    """The stacked tables of every adaptable projection of one model, `num_adapters` indices (1..N) plus the
    zero index 0. Writing and clearing an index happen in place (see the module docstring)."""

    def __init__(
        self, model: nn.Module, num_adapters: int, max_rank: int, targets: Iterable[str] = ADAPTABLE
    ):
        assert num_adapters >= 1 and max_rank >= 1, "a bank holds at least one adapter of rank >= 1"
        self.num_adapters = num_adapters
        self.max_rank = max_rank
        self.targets = tuple(targets)
        unknown = set(self.targets) - set(ADAPTABLE)
        assert not unknown, f"not adaptable: {sorted(unknown)}; choose among {ADAPTABLE}"
        self.projections = {
            name: layer
            for name, layer in adaptable_projections(model).items()
            if name.rsplit(".", 1)[-1] in self.targets
        }
        for layer in self.projections.values():
            weight = layer.weight
            shape_a = (num_adapters + 1, layer.in_features, max_rank)
            shape_b = (num_adapters + 1, max_rank, layer.out_features)
            layer.lora_a = torch.zeros(shape_a, device=weight.device, dtype=weight.dtype)
            layer.lora_b = torch.zeros(shape_b, device=weight.device, dtype=weight.dtype)

    @property
    def nbytes_per_adapter(self) -> int:
        """Device memory one index takes (every table's share), whatever the adapter's own rank."""
        return sum(
            (layer.lora_a[0].numel() + layer.lora_b[0].numel()) * layer.lora_a.element_size()
            for layer in self.projections.values()
        )

    def check(self, rank: int, modules: Iterable[str]) -> None:
        """ValueError unless an adapter of `rank` changing `modules` fits this bank (shapes: see
        `check_against_model`)."""
        if rank > self.max_rank:
            raise ValueError(f"the adapter has rank {rank}; this server holds rank <= {self.max_rank}")
        outside = sorted({n for n in modules if n not in self.projections})
        if outside:
            raise ValueError(
                f"the adapter targets {outside[0]} (and {len(outside) - 1} more), which this server does not "
                f"adapt (targets {','.join(self.targets)})"
            )

    @torch.no_grad()
    def write(self, index: int, adapter: LoraWeights) -> None:
        """Put `adapter` at bank index `index` (1..N): its tables there, zeros where it has none."""
        assert 1 <= index <= self.num_adapters, f"bank index {index} not in [1, {self.num_adapters}]"
        self.check(adapter.rank, adapter.weights)
        for name, layer in self.projections.items():
            layer.lora_a[index].zero_()
            layer.lora_b[index].zero_()
            pair = adapter.weights.get(name)
            if pair is None:
                continue
            a, b = pair  # (r, in), (out, r)
            rank = a.shape[0]
            layer.lora_a[index, :, :rank].copy_(a.T)
            layer.lora_b[index, :rank, :].copy_((b * adapter.scale).T)

    @torch.no_grad()
    def clear(self, index: int) -> None:
        for layer in self.projections.values():
            layer.lora_a[index].zero_()
            layer.lora_b[index].zero_()


def check_against_model(shapes: dict[str, tuple[int, int]], model: nn.Module) -> None:
    """ValueError unless every adapted module (name → (in, out) features) is an adaptable projection of
    `model` with the same shape."""
    projections = adaptable_projections(model)
    for name, (in_features, out_features) in shapes.items():
        layer = projections.get(name)
        if layer is None:
            raise ValueError(f"the adapter targets {name!r}, which this model has no projection for")
        if in_features != layer.in_features or out_features != layer.out_features:
            raise ValueError(
                f"the adapter's {name} is {in_features} → {out_features}; this model's is "
                f"{layer.in_features} → {layer.out_features}: it was trained on another model"
            )


@torch.no_grad()
def merge_into_weights(adapter: LoraWeights, model: nn.Module) -> None:
    """W += scale · B · A for every adapted projection: the base model becomes the adapted one (one voice)."""
    check_against_model({n: (a.shape[1], b.shape[0]) for n, (a, b) in adapter.weights.items()}, model)
    projections = adaptable_projections(model)
    for name, (a, b) in adapter.weights.items():
        weight = projections[name].weight
        delta = (b.to(torch.float32) @ a.to(torch.float32)) * adapter.scale  # (out, in)
        weight.copy_((weight.to(torch.float32) + delta.to(weight.device)).to(weight.dtype))
