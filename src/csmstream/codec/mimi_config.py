"""Mimi codec settings, read from (and written back to) a transformers-format `codec_config` dict.

Only the fields that shape the network are kept; defaults are those of the reference implementation,
so a dict that omits a field means the same thing here as there.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MimiConfig:
    sampling_rate: int = 24_000
    audio_channels: int = 1
    hidden_size: int = 512
    num_filters: int = 64
    num_residual_layers: int = 1
    upsampling_ratios: tuple[int, ...] = (8, 6, 5, 4)
    kernel_size: int = 7
    last_kernel_size: int = 3
    residual_kernel_size: int = 3
    dilation_growth_rate: int = 2
    use_causal_conv: bool = True
    pad_mode: str = "constant"
    compress: int = 2
    trim_right_ratio: float = 1.0
    codebook_size: int = 2048
    codebook_dim: int = 256
    num_quantizers: int = 32
    use_conv_shortcut: bool = False
    vector_quantization_hidden_dimension: int = 256
    num_semantic_quantizers: int = 1
    upsample_groups: int = 512
    num_hidden_layers: int = 8
    intermediate_size: int = 2048
    num_attention_heads: int = 8
    num_key_value_heads: int = 8
    head_dim: int = 64
    hidden_act: str = "gelu"
    max_position_embeddings: int = 8000
    norm_eps: float = 1e-5
    rope_theta: float = 10_000.0
    sliding_window: int = 250
    layer_scale_initial_scale: float = 0.01
    attention_bias: bool = False
    # Old checkpoints state the frame rate explicitly; None = derived from the conv strides (12.5 Hz real).
    frame_rate_override: float | None = None

    # ---- construction ---------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MimiConfig:
        """A transformers `MimiConfig` dict (as found under `codec_config`) → ours; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)} - {"frame_rate_override", "head_dim"}
        kwargs: dict[str, Any] = {k: d[k] for k in names if k in d and d[k] is not None}
        if "upsampling_ratios" in kwargs:
            kwargs["upsampling_ratios"] = tuple(int(r) for r in kwargs["upsampling_ratios"])
        # Newer dicts nest the rotary base under `rope_parameters`, older ones have a flat `rope_theta`.
        rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
        if isinstance(rope, dict) and rope.get("rope_theta") is not None:
            kwargs["rope_theta"] = float(rope["rope_theta"])
        if isinstance(rope, dict) and rope.get("rope_type", "default") != "default":
            raise ValueError(
                f"Mimi: only the default rotary embedding is supported, got {rope.get('rope_type')}"
            )
        hidden_size = int(kwargs.get("hidden_size", cls.hidden_size))
        num_heads = int(kwargs.get("num_attention_heads", cls.num_attention_heads))
        kwargs["head_dim"] = int(d.get("head_dim") or hidden_size // num_heads)
        if "codebook_dim" in d and d["codebook_dim"] is None:
            kwargs["codebook_dim"] = hidden_size  # the reference's rule for an explicit null codebook_dim
        frame_rate = d.get("frame_rate", d.get("_frame_rate"))
        kwargs["frame_rate_override"] = float(frame_rate) if frame_rate is not None else None
        config = cls(**kwargs)
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        """A dict that transformers' `MimiConfig(**d)` accepts (and `from_dict` reads back to an equal config)."""
        out: dict[str, Any] = {"model_type": "mimi"}
        for f in dataclasses.fields(self):
            if f.name in ("frame_rate_override", "rope_theta"):
                continue
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        out["rope_parameters"] = {"rope_type": "default", "rope_theta": self.rope_theta}
        if self.frame_rate_override is not None:
            out["frame_rate"] = self.frame_rate_override
        return out

    def validate(self) -> None:
        """Reject settings this implementation does not model (rather than silently computing something else)."""
        if not self.use_causal_conv:
            raise ValueError("Mimi: only causal convolutions are supported (use_causal_conv=True)")
        if self.trim_right_ratio != 1.0:
            raise ValueError(f"Mimi: only trim_right_ratio=1.0 is supported, got {self.trim_right_ratio}")
        if self.pad_mode not in ("constant", "replicate"):
            raise ValueError(f"Mimi: unsupported pad_mode {self.pad_mode!r}")
        if not 0 < self.num_semantic_quantizers < self.num_quantizers:
            raise ValueError("Mimi: need 0 < num_semantic_quantizers < num_quantizers")
        if self.hidden_size % self.num_attention_heads or self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("Mimi: hidden_size / attention heads / key-value heads do not divide")
        if self.codebook_dim != self.vector_quantization_hidden_dimension:
            # the codebooks live in the projected space, so the two sizes are one size
            raise ValueError("Mimi: codebook_dim must equal vector_quantization_hidden_dimension")
        if self.sliding_window < 1:
            raise ValueError(f"Mimi: sliding_window must be >= 1, got {self.sliding_window}")

    # ---- derived sizes ----------------------------------------------------------------------------------

    @property
    def hop_samples(self) -> int:
        """Samples per step of the SEANet latent (960 real: 25 Hz)."""
        return math.prod(self.upsampling_ratios)

    @property
    def encodec_frame_rate(self) -> int:
        return math.ceil(self.sampling_rate / self.hop_samples)

    @property
    def frame_rate(self) -> float:
        """Codec frames per second (12.5 real); the reference fixes the latent downsampling at 2."""
        if self.frame_rate_override is not None:
            return self.frame_rate_override
        return self.sampling_rate / (self.hop_samples * 2)

    @property
    def has_resampling(self) -> bool:
        """Whether a down/upsampling conv sits between the SEANet latent rate and the frame rate."""
        return self.frame_rate != self.encodec_frame_rate

    @property
    def latent_stride(self) -> int:
        """SEANet latent steps (= decoder-transformer positions) per codec frame (2 real)."""
        return int(self.encodec_frame_rate / self.frame_rate) if self.has_resampling else 1

    @property
    def frame_samples(self) -> int:
        """Audio samples per codec frame (1920 real: 80 ms at 24 kHz)."""
        return self.hop_samples * self.latent_stride

    @property
    def num_codebooks(self) -> int:
        return self.num_quantizers
