"""A Llama-style decoder stack: RMSNorm, RoPE (with Llama-3 scaling), grouped-query attention, SwiGLU.

The stack has no embeddings and no head: CSM feeds it summed row embeddings and reads hidden states.
Every call carries explicit positions, so rows of different sessions (slots) at different positions
can share one batch; with a `KVCache` the keys and values of each slot persist between calls.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from csmstream.model.csm_config import RopeConfig, TransformerConfig
from csmstream.model.kv_cache import KVCache
from csmstream.model.lora import Projection, lora_selector, project, project_all


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the mean square in float32: bf16 squares of large activations lose too much
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


def rope_inverse_frequencies(
    rope: RopeConfig, head_dim: int, device: torch.device | None = None
) -> torch.Tensor:
    """(head_dim / 2,) float32 angular frequencies, with the Llama-3 long-context scaling when configured."""
    exponents = torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim
    inv_freq = 1.0 / (rope.theta**exponents)
    if rope.rope_type != "llama3":
        return inv_freq
    # Llama-3: wavelengths longer than the original context are stretched by `factor`, shorter than
    # original/high_freq_factor kept, and the band in between blended linearly in 1/wavelength.
    wavelength = 2 * math.pi / inv_freq
    long_wavelength = rope.original_max_positions / rope.low_freq_factor
    short_wavelength = rope.original_max_positions / rope.high_freq_factor
    blend = (rope.original_max_positions / wavelength - rope.low_freq_factor) / (
        rope.high_freq_factor - rope.low_freq_factor
    )
    blended = (1 - blend) * inv_freq / rope.factor + blend * inv_freq
    scaled = torch.where(wavelength > long_wavelength, inv_freq / rope.factor, inv_freq)
    in_band = (wavelength >= short_wavelength) & (wavelength <= long_wavelength)
    return torch.where(in_band, blended, scaled)


class RotaryEmbedding(nn.Module):
    """cos/sin tables for explicit positions. The frequencies stay float32 whatever dtype the model is cast to."""

    def __init__(self, rope: RopeConfig, head_dim: int) -> None:
        super().__init__()
        self.rope = rope
        self.head_dim = head_dim
        self.register_buffer("inv_freq", rope_inverse_frequencies(rope, head_dim), persistent=False)

    def _apply(self, fn, recurse=True):  # nn.Module's signature
        # `.to(bfloat16)` would round the frequencies and `to_empty` would leave garbage: recompute them
        # in float32 on whatever device the module went to.
        module = super()._apply(fn, recurse)
        self.inv_freq = rope_inverse_frequencies(self.rope, self.head_dim, device=self.inv_freq.device)
        return module

    def forward(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """positions (B, T) → cos, sin (B, T, head_dim) in `dtype`."""
        angles = positions[..., None].float() * self.inv_freq  # (B, T, head_dim / 2)
        angles = torch.cat((angles, angles), dim=-1)  # halves layout: pairs are (i, i + head_dim / 2)
        return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, T, H, D) rotated by cos/sin (B, T, D); the halves layout of the Hugging Face Llama weights."""
    first, second = x.chunk(2, dim=-1)
    rotated = torch.cat((-second, first), dim=-1)
    return x * cos[:, :, None] + rotated * sin[:, :, None]


def attention_bias(allowed: torch.Tensor, group: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, T, S) bool, True where query t may attend key s → (B, 1, group * T, S) additive bias (0 or -inf)
    in `dtype`, laid out for `attend`'s folded queries. Built once per forward and shared by every layer."""
    bias = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, float("-inf"))
    return bias.repeat(1, group, 1)[:, None]  # row g * T + t is query t of the group's head g


def attend(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Grouped-query attention through one fused SDPA kernel: q (B, H, T, D), keys/values (B, H_kv, S, D),
    bias from `attention_bias` → (B, H, T, D).

    The H / H_kv query heads that share a kv head are folded into that head's query rows, so keys and values
    are read as they are (no copy to H heads), and the kernel sees a plain float mask without `enable_gqa`:
    on CUDA the memory-efficient kernel takes it, where a bool mask with `enable_gqa` fell back to the math
    kernel. Each row's own length lives in the bias, so rows at different positions share one call.
    """
    batch, num_heads, num_rows, head_dim = q.shape
    num_kv_heads = keys.shape[1]
    folded = q.reshape(batch, num_kv_heads, num_heads // num_kv_heads * num_rows, head_dim)
    out = F.scaled_dot_product_attention(folded, keys, values, attn_mask=bias)  # (B, H_kv, G * T, D)
    return out.reshape(batch, num_heads, num_rows, head_dim)


class Attention(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.num_kv_heads = config.num_kv_heads
        self.head_dim = config.head_dim
        self.q_proj = Projection(config.dim, config.num_heads * config.head_dim, bias=False)
        self.k_proj = Projection(config.dim, config.num_kv_heads * config.head_dim, bias=False)
        self.v_proj = Projection(config.dim, config.num_kv_heads * config.head_dim, bias=False)
        self.o_proj = Projection(config.num_heads * config.head_dim, config.dim, bias=False)

    def forward(
        self,
        x: torch.Tensor,  # (B, T, dim)
        cos: torch.Tensor,  # (B, T, head_dim)
        sin: torch.Tensor,
        bias: torch.Tensor,  # (B, 1, G * T, S) from `attention_bias`
        cache: KVCache | None,
        layer: int,
        slot_ids: torch.Tensor | None,
        positions: torch.Tensor,  # (B, T)
        kv_len: int,
        selector: torch.Tensor | None = None,  # (B, C) the rows' LoRA adapters (lora.lora_selector)
    ) -> torch.Tensor:
        batch, num_rows, _ = x.shape
        q, k, v = project_all((self.q_proj, self.k_proj, self.v_proj), x, selector)
        q = q.view(batch, num_rows, self.num_heads, self.head_dim)
        k = k.view(batch, num_rows, self.num_kv_heads, self.head_dim)
        v = v.view(batch, num_rows, self.num_kv_heads, self.head_dim)
        q = apply_rotary(q, cos, sin)
        k = apply_rotary(k, cos, sin)
        if cache is not None:
            cache.write(layer, slot_ids, positions, k, v)
            keys, values = cache.read(layer, slot_ids, batch, kv_len)  # (B, H_kv, S, D); a view for None
        else:
            keys, values = k.transpose(1, 2), v.transpose(1, 2)
        out = attend(q.transpose(1, 2), keys, values, bias)  # (B, H, T, D)
        out = out.transpose(1, 2).reshape(batch, num_rows, self.num_heads * self.head_dim)
        return project(self.o_proj, out, selector)


class FeedForward(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.gate_proj = Projection(config.dim, config.ffn_dim, bias=False)
        self.up_proj = Projection(config.dim, config.ffn_dim, bias=False)
        self.down_proj = Projection(config.ffn_dim, config.dim, bias=False)

    def forward(self, x: torch.Tensor, selector: torch.Tensor | None = None) -> torch.Tensor:
        gate, up = project_all((self.gate_proj, self.up_proj), x, selector)
        gated = F.silu(gate) * up
        return project(self.down_proj, gated, selector)


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(config.dim, config.norm_eps)
        self.attention = Attention(config)
        self.mlp_norm = RMSNorm(config.dim, config.norm_eps)
        self.mlp = FeedForward(config)

    def forward(
        self, x: torch.Tensor, selector: torch.Tensor | None = None, **attention_args
    ) -> torch.Tensor:
        x = x + self.attention(self.attn_norm(x), selector=selector, **attention_args)
        return x + self.mlp(self.mlp_norm(x), selector)


class Transformer(nn.Module):
    """A stack of blocks and a final norm. Input embeddings in, normalised hidden states out."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.rotary = RotaryEmbedding(config.rope, config.head_dim)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        # (C,) the bank index of each LoRA table column, set when an AdapterBank is attached (see lora.py)
        self.register_buffer("lora_columns", None, persistent=False)

    def new_kv_cache(
        self,
        num_slots: int,
        max_rows: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> KVCache:
        param = self.norm.weight
        return KVCache.allocate(
            self.config.num_layers,
            num_slots,
            self.config.num_kv_heads,
            max_rows,
            self.config.head_dim,
            device=param.device if device is None else device,
            dtype=param.dtype if dtype is None else dtype,
        )

    def forward(
        self,
        x: torch.Tensor,  # (B, T, dim) input embeddings
        start_positions: torch.Tensor,  # (B,) position of each row's first input
        cache: KVCache | None = None,
        slot_ids: torch.Tensor | None = None,  # (B,) cache slot of each row; None: slots 0..B-1
        kv_len: int | None = None,
        adapter_ids: torch.Tensor | None = None,  # (B,) LoRA bank index of each row; None: no adapters
    ) -> torch.Tensor:
        """(B, T, dim) hidden states. With a cache: writes rows [start, start + T) of each slot and attends
        over that slot's keys [0, start + t] within [0, kv_len). Without: causal attention over the T inputs."""
        batch, num_rows, _ = x.shape
        offsets = torch.arange(num_rows, device=x.device)
        positions = start_positions.to(x.device)[:, None] + offsets  # (B, T)
        if cache is not None:
            kv_len = cache.max_rows if kv_len is None else kv_len
            assert 0 < kv_len <= cache.max_rows, f"kv_len {kv_len} must be in [1, {cache.max_rows}]"
            key_positions = torch.arange(kv_len, device=x.device)[None, None, :]  # (1, 1, S)
            allowed = key_positions <= positions[:, :, None]  # (B, T, S): each slot sees only its own past
        else:
            allowed = offsets[None, None, :] <= offsets[None, :, None]  # (1, T, T) causal
            allowed = allowed.expand(batch, -1, -1)
        group = self.config.num_heads // self.config.num_kv_heads
        bias = attention_bias(allowed, group, x.dtype)  # (B, 1, G * T, S), shared by every layer
        cos, sin = self.rotary(positions, x.dtype)
        selector = None  # (B, C) the rows' adapters, built once for every projection of every layer
        if adapter_ids is not None and self.lora_columns is not None:
            selector = lora_selector(adapter_ids, self.lora_columns, x.dtype)
        for layer, block in enumerate(self.layers):
            x = block(
                x,
                cos=cos,
                sin=sin,
                bias=bias,
                cache=cache,
                layer=layer,
                slot_ids=slot_ids,
                positions=positions,
                kv_len=kv_len,
                selector=selector,
            )
        return self.norm(x)
