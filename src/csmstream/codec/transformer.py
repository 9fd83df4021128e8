"""Mimi's small causal transformer (pre-norm LayerNorm, RoPE, layer scale, sliding-window attention).

One code path serves both uses: the encoder runs it over a whole clip with no history, the streaming
decoder runs it over a few new positions per call with a key/value history per row. A query at absolute
position p sees the keys at positions p - sliding_window + 1 .. p (the reference's sliding window), so the
history kept per row is the last `sliding_window - 1` keys and values.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from csmstream.codec.mimi_config import MimiConfig

_ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
}


class RotaryEmbedding(nn.Module):
    def __init__(self, config: MimiConfig):
        super().__init__()
        exponents = torch.arange(0, config.head_dim, 2, dtype=torch.float32) / config.head_dim
        self.register_buffer("inv_freq", 1.0 / (config.rope_theta**exponents), persistent=False)

    def forward(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) absolute positions → cos, sin (B, 1, L, head_dim), computed in float32 then cast."""
        angles = positions[..., None].float() * self.inv_freq.float()  # (B, L, head_dim / 2)
        angles = torch.cat([angles, angles], dim=-1)
        return angles.cos().to(dtype)[:, None], angles.sin().to(dtype)[:, None]


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, config: MimiConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        bias = config.attention_bias
        self.q_proj = nn.Linear(config.hidden_size, self.num_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor,
        past_k: torch.Tensor | None,
        past_v: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, L, D); past_k/v (B, H_kv, C, head_dim) or None; mask (B, 1, L, C + L) bool.

        Returns the output (B, L, D) and all keys / values (B, H_kv, C + L, head_dim), keys already rotated.
        """
        batch, length, _ = x.shape
        q = self.q_proj(x).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(batch, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(batch, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = rope
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        group = self.num_heads // self.num_kv_heads
        k_heads = k.repeat_interleave(group, dim=1) if group > 1 else k
        v_heads = v.repeat_interleave(group, dim=1) if group > 1 else v
        out = F.scaled_dot_product_attention(
            q, k_heads, v_heads, attn_mask=mask, scale=1 / math.sqrt(self.head_dim)
        )
        out = out.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim)
        return self.o_proj(out), k, v


class Mlp(nn.Module):
    def __init__(self, config: MimiConfig):
        super().__init__()
        if config.hidden_act not in _ACTIVATIONS:
            raise ValueError(f"Mimi: unsupported hidden_act {config.hidden_act!r}")
        self.activation = _ACTIVATIONS[config.hidden_act]
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation(self.fc1(x)))


class LayerScale(nn.Module):
    """Per-channel learnt scale of a residual branch (starts small so each layer starts near identity)."""

    def __init__(self, config: MimiConfig):
        super().__init__()
        self.scale = nn.Parameter(torch.full((config.hidden_size,), config.layer_scale_initial_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x


class TransformerLayer(nn.Module):
    def __init__(self, config: MimiConfig):
        super().__init__()
        self.self_attn = Attention(config)
        self.mlp = Mlp(config)
        self.input_layernorm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps)
        self.post_attention_layernorm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps)
        self.self_attn_layer_scale = LayerScale(config)
        self.mlp_layer_scale = LayerScale(config)

    def forward(self, x, rope, mask, past_k, past_v):
        attn, k, v = self.self_attn(self.input_layernorm(x), rope, mask, past_k, past_v)
        x = x + self.self_attn_layer_scale(attn)
        x = x + self.mlp_layer_scale(self.mlp(self.post_attention_layernorm(x)))
        return x, k, v


class Transformer(nn.Module):
    """Stack of `num_hidden_layers` layers over (B, L, hidden_size), causal with a sliding window."""

    def __init__(self, config: MimiConfig):
        super().__init__()
        self.layers = nn.ModuleList([TransformerLayer(config) for _ in range(config.num_hidden_layers)])
        self.rotary_emb = RotaryEmbedding(config)
        self.sliding_window = config.sliding_window
        self.context = config.sliding_window - 1  # past keys a query can still see
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim

    def window_mask(self, start: torch.Tensor, length: int, num_past: int) -> torch.Tensor:
        """(B, 1, length, num_past + length) bool: which keys each new query may attend to.

        `start` (B,) is each row's absolute position of the first new query; the keys are the `num_past`
        remembered ones (positions start - num_past ..) followed by the new ones. Keys at negative positions
        are empty history (a fresh or reset row).
        """
        offsets = torch.arange(length, device=start.device)
        query_pos = start[:, None] + offsets  # (B, L)
        key_pos = (
            start[:, None] - num_past + torch.arange(num_past + length, device=start.device)
        )  # (B, C + L)
        delta = query_pos[:, :, None] - key_pos[:, None, :]  # (B, L, C + L)
        allowed = (delta >= 0) & (delta < self.sliding_window) & (key_pos[:, None, :] >= 0)
        return allowed[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Whole sequence, no history: (B, L, D) → (B, L, D)."""
        start = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        rope = self.rotary_emb(start[:, None] + torch.arange(x.shape[1], device=x.device), x.dtype)
        mask = self.window_mask(start, x.shape[1], 0)
        for layer in self.layers:
            x, _, _ = layer(x, rope, mask, None, None)
        return x

    def init_cache(self, batch_size: int, device=None, dtype=None) -> list[torch.Tensor]:
        """Per layer, keys then values: (B, H_kv, sliding_window - 1, head_dim) zeros."""
        shape = (batch_size, self.num_kv_heads, self.context, self.head_dim)
        return [torch.zeros(shape, device=device, dtype=dtype) for _ in range(2 * len(self.layers))]

    def step(
        self, x: torch.Tensor, start: torch.Tensor, cache: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list]:
        """New positions (B, L, D) at absolute positions start (B,) .. start + L - 1, given the history `cache`.

        Returns the output (B, L, D) and the updated cache (the last `sliding_window - 1` keys / values).
        """
        length = x.shape[1]
        rope = self.rotary_emb(start[:, None] + torch.arange(length, device=x.device), x.dtype)
        mask = self.window_mask(start, length, self.context)
        new_cache: list[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, rope, mask, cache[2 * i], cache[2 * i + 1])
            keep = k.shape[2] - self.context  # drop what slid out of the window
            new_cache += [k[:, :, keep:], v[:, :, keep:]]
        return x, new_cache
