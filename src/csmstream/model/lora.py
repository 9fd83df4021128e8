"""Many LoRA adapters in one batch: each row of a step picks its own adapter (the Punica / S-LoRA idea).

Every adaptable projection of the transformer stacks is a `Projection` (an `nn.Linear`, same weights, same
state dict). Once an `AdapterBank` of N adapters of rank <= r is attached, each holds two flat tables, the
r-column block j of which is bank index j (C = (N + 1) · r columns in all):

    lora_a (in, C)      block 0 is all zeros: the base model
    lora_b (C, out)     the adapter's scale (alpha / r) is folded in here

The rows' choice of adapter is a selector (B, C) of 0/1 in the model's dtype: row b has ones only in its own
adapter's block. It is built once per stack call (`lora_selector`, from the rows' bank indices), not per
projection, and a projection then adds, for every row at once, in three matmul-sized kernels (no gather of
per-row weights, no loop over rows or adapters):

    h = (x · lora_a) ⊙ selector          (B·T, C): every adapter's down-projection, all but the row's zeroed
    y = x · Wᵀ + h · lora_b              the add done by the GEMM itself (addmm into the base output)

Projections of one input (q/k/v, gate/up: SHARED_INPUT) keep their lora_a side by side in one table when all
of them are in the bank, so `project_all` makes all their h with one GEMM and one multiply; each then adds
its own h · lora_b. Other adapters' blocks multiply by an exact 0, so a row gets exactly x·Wᵀ + (x·A)·B of its
own adapter (and exactly x·Wᵀ for index 0). An adapter of rank r' < r fills the first r' columns of its block;
the rest stay zero, which adds exactly nothing. The tables are allocated once (attach the bank once the model
is on its device and dtype) and written in place, so compiled graphs and CUDA graphs stay valid while adapters
come and go. The work grows with C, but r and N are small next to `out`. Without a selector (`None`) the
projection is the plain linear layer (no extra work).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from csmstream.model.lora_targets import ADAPTABLE

# projections that read the same input, in the order the stacks call them with `project_all`
SHARED_INPUT = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


class Projection(nn.Linear):
    """A linear layer that adds a per-row LoRA delta when an adapter bank is attached (see the module doc)."""

    lora_a: torch.Tensor | None
    lora_b: torch.Tensor | None
    lora_a_group: torch.Tensor | None

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__(in_features, out_features, bias=bias)
        # non-persistent: checkpoints and state dicts stay those of a plain nn.Linear
        self.register_buffer("lora_a", None, persistent=False)
        self.register_buffer("lora_b", None, persistent=False)
        # on the first projection of a SHARED_INPUT group only: the group's lora_a side by side (see project_all)
        self.register_buffer("lora_a_group", None, persistent=False)

    def forward(
        self, x: torch.Tensor, selector: torch.Tensor | None = None, down: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, ..., in), selector (B, C) from `lora_selector` or None → (B, ..., out). `down` (B·T, C):
        this projection's selected down-projection, already computed (`project_all`)."""
        out = F.linear(x, self.weight, self.bias)
        if selector is None or self.lora_a is None:
            return out
        if down is None:
            columns = self.lora_a.shape[1]
            down = (x.reshape(-1, self.in_features) @ self.lora_a).view(x.shape[0], -1, columns)  # (B, T, C)
            down = (down * selector[:, None, :]).view(-1, columns)  # (B·T, C): the row's own block only
        # the add in the GEMM's epilogue (beta = 1): out + down · lora_b, written into the base output
        return out.view(-1, self.out_features).addmm_(down, self.lora_b).view(out.shape)


def project(layer: nn.Module, x: torch.Tensor, selector: torch.Tensor | None) -> torch.Tensor:
    """Call a projection with the rows' adapter selector, or plainly (a layer wrapped for training by PEFT)."""
    return layer(x) if selector is None else layer(x, selector)


def project_all(
    layers: tuple[nn.Module, ...], x: torch.Tensor, selector: torch.Tensor | None
) -> list[torch.Tensor]:
    """`project` of several layers of the same input x, in a SHARED_INPUT group's order. When the bank laid
    out their lora_a side by side, one GEMM and one selector multiply make every layer's down-projection."""
    group = None if selector is None else getattr(layers[0], "lora_a_group", None)
    if group is None:
        return [project(layer, x, selector) for layer in layers]
    columns = layers[0].lora_a.shape[1]
    assert group.shape[1] == len(layers) * columns, "project_all's layers are not the bank's group"
    down = (x.reshape(-1, x.shape[-1]) @ group).view(x.shape[0], -1, len(layers), columns)  # (B, T, g, C)
    down = (down * selector[:, None, None, :]).view(-1, len(layers) * columns)  # (B·T, g·C)
    return [layer(x, selector, down[:, i * columns : (i + 1) * columns]) for i, layer in enumerate(layers)]


def lora_selector(adapter_ids: torch.Tensor, columns: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """adapter_ids (B,) int64 bank indices, `columns` (C,) the bank index of each table column
    (`AdapterBank.columns`) → (B, C) 0/1 selector in `dtype` (see the module doc)."""
    return (adapter_ids[:, None] == columns).to(dtype)


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
    """The flat tables of every adaptable projection of one model, `num_adapters` indices (1..N) plus the
    zero index 0, each a block of `max_rank` columns. Writing and clearing an index happen in place (see the
    module docstring); `columns` (C,) is each column's bank index."""

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
        width = (num_adapters + 1) * max_rank  # C: one block of max_rank columns per bank index
        for layer in self.projections.values():
            weight = layer.weight
            layer.lora_b = torch.zeros(width, layer.out_features, device=weight.device, dtype=weight.dtype)
        # the lora_a of projections of one input (SHARED_INPUT, all of them in the bank) side by side in one
        # table, each projection's lora_a a view of its columns: project_all multiplies the input once
        for name, layer in self.projections.items():
            parent, _, last = name.rpartition(".")
            group = next((g for g in SHARED_INPUT if g[0] == last), ())
            members = [self.projections.get(f"{parent}.{member}") for member in group]
            if len(members) < 2 or None in members:
                continue
            weight = layer.weight
            table = torch.zeros(
                layer.in_features, len(members) * width, device=weight.device, dtype=weight.dtype
            )
            layer.lora_a_group = table
            for i, member in enumerate(members):
                member.lora_a = table[:, i * width : (i + 1) * width]
        for layer in self.projections.values():
            if layer.lora_a is None:
                weight = layer.weight
                layer.lora_a = torch.zeros(layer.in_features, width, device=weight.device, dtype=weight.dtype)
        # (C,) each column's bank index, for the stacks that build their rows' selector once per call: those
        # that declare a `lora_columns` buffer (llama.Transformer) and hold a projection of this bank
        device = next(model.parameters()).device
        self.columns = torch.arange(width, device=device) // max_rank
        banked = set(self.projections.values())
        for module in model.modules():
            if hasattr(module, "lora_columns") and any(m in banked for m in module.modules()):
                module.lora_columns = self.columns

    @property
    def nbytes_per_adapter(self) -> int:
        """Device memory one index takes (every table's share), whatever the adapter's own rank."""
        return sum(
            (layer.in_features + layer.out_features) * self.max_rank * layer.lora_a.element_size()
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

    def _block(self, index: int) -> slice:
        """The table columns (of lora_a; rows of lora_b) of bank index `index`."""
        return slice(index * self.max_rank, (index + 1) * self.max_rank)

    @torch.no_grad()
    def write(self, index: int, adapter: LoraWeights) -> None:
        """Put `adapter` at bank index `index` (1..N): its tables there, zeros where it has none."""
        assert 1 <= index <= self.num_adapters, f"bank index {index} not in [1, {self.num_adapters}]"
        self.check(adapter.rank, adapter.weights)
        block = self._block(index)
        for name, layer in self.projections.items():
            layer.lora_a[:, block].zero_()
            layer.lora_b[block].zero_()
            pair = adapter.weights.get(name)
            if pair is None:
                continue
            a, b = pair  # (r, in), (out, r)
            start, rank = block.start, a.shape[0]
            layer.lora_a[:, start : start + rank].copy_(a.T)
            layer.lora_b[start : start + rank].copy_((b * adapter.scale).T)

    @torch.no_grad()
    def clear(self, index: int) -> None:
        block = self._block(index)
        for layer in self.projections.values():
            layer.lora_a[:, block].zero_()
            layer.lora_b[block].zero_()


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
