"""The sizes of CSM, read from a transformers-format `config.json`.

Every number the model code uses comes from here, so a tiny random checkpoint of the same format runs
through exactly the same code as CSM-1B. Both spellings of RoPE settings are accepted: the current
`rope_parameters` dict and the older `rope_theta` + `rope_scaling` pair.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# Mimi's codebooks have 2048 entries; the audio vocabulary (2051) has 3 extra ids that are never valid codes.
DEFAULT_CODEBOOK_SIZE = 2048


def _require(d: dict[str, Any], key: str, where: str) -> Any:
    if key not in d or d[key] is None:
        raise ValueError(f"{where}: missing required field {key!r}")
    return d[key]


def _positive_int(d: dict[str, Any], key: str, where: str) -> int:
    value = _require(d, key, where)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{where}: {key!r} must be a positive integer, got {value!r}")
    return value


def _positive_float(d: dict[str, Any], key: str, where: str) -> float:
    value = _require(d, key, where)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{where}: {key!r} must be a positive number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class RopeConfig:
    """Rotary position embedding: plain (`default`) or with Llama-3 frequency scaling (`llama3`)."""

    theta: float
    rope_type: str = "default"
    # llama3 scaling: low frequencies are divided by `factor`, high ones kept, the band between blended
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 1.0
    original_max_positions: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> RopeConfig:
        params = d.get("rope_parameters")
        if params is None:
            # older config.json: `rope_theta` at top level, optional `rope_scaling` dict
            params = dict(d.get("rope_scaling") or {})
            params.setdefault("rope_theta", d.get("rope_theta", 500000.0))
        if not isinstance(params, dict):
            raise ValueError(f"{where}: 'rope_parameters' must be a dict, got {params!r}")
        rope_type = params.get("rope_type", params.get("type", "default"))
        theta = _positive_float(params, "rope_theta", f"{where}.rope_parameters")
        if rope_type == "default":
            return cls(theta=theta)
        if rope_type != "llama3":
            raise ValueError(f"{where}: unsupported rope_type {rope_type!r} (supported: default, llama3)")
        sub = f"{where}.rope_parameters"
        config = cls(
            theta=theta,
            rope_type="llama3",
            factor=_positive_float(params, "factor", sub),
            low_freq_factor=_positive_float(params, "low_freq_factor", sub),
            high_freq_factor=_positive_float(params, "high_freq_factor", sub),
            original_max_positions=_positive_int(params, "original_max_position_embeddings", sub),
        )
        if config.high_freq_factor <= config.low_freq_factor:
            raise ValueError(f"{sub}: high_freq_factor must be greater than low_freq_factor")
        return config


@dataclass(frozen=True)
class TransformerConfig:
    """One Llama-style decoder stack (the backbone or the depth decoder)."""

    num_layers: int
    dim: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    ffn_dim: int
    norm_eps: float
    max_positions: int
    rope: RopeConfig

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> TransformerConfig:
        num_heads = _positive_int(d, "num_attention_heads", where)
        dim = _positive_int(d, "hidden_size", where)
        num_kv_heads = d.get("num_key_value_heads") or num_heads
        head_dim = d.get("head_dim") or dim // num_heads
        if d.get("hidden_act", "silu") != "silu":
            raise ValueError(f"{where}: only hidden_act 'silu' is supported, got {d.get('hidden_act')!r}")
        for flag in ("attention_bias", "mlp_bias"):
            if d.get(flag):
                raise ValueError(f"{where}: {flag}=true is not supported")
        config = cls(
            num_layers=_positive_int(d, "num_hidden_layers", where),
            dim=dim,
            num_heads=num_heads,
            num_kv_heads=num_kv_heads,
            head_dim=head_dim,
            ffn_dim=_positive_int(d, "intermediate_size", where),
            norm_eps=float(d.get("rms_norm_eps", 1e-5)),
            max_positions=_positive_int(d, "max_position_embeddings", where),
            rope=RopeConfig.from_dict(d, where),
        )
        if config.num_heads % config.num_kv_heads:
            raise ValueError(
                f"{where}: num_attention_heads ({num_heads}) must be a multiple of num_key_value_heads"
            )
        if config.head_dim % 2:
            raise ValueError(f"{where}: head_dim must be even for rotary embeddings, got {head_dim}")
        return config


@dataclass(frozen=True)
class CsmConfig:
    """The whole CSM model: backbone, depth decoder, vocabularies."""

    backbone: TransformerConfig
    depth_decoder: TransformerConfig
    num_codebooks: int  # K: audio columns per row (32)
    audio_vocab_size: int  # ids per codebook in the embeddings and heads (2051)
    codebook_size: int  # valid code ids are [0, codebook_size) (2048)
    text_vocab_size: int
    tie_codebook_embeddings: bool  # the depth decoder reuses the backbone's audio embeddings
    codebook_eos_id: int = 0  # an all-`codebook_eos_id` frame ends generation

    @property
    def row_width(self) -> int:
        """Columns of one prompt row: K audio codebooks + 1 text token."""
        return self.num_codebooks + 1

    @property
    def text_column(self) -> int:
        return self.num_codebooks

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CsmConfig:
        """Parse a transformers `CsmConfig` dict (the content of config.json); ValueError says what is wrong."""
        if not isinstance(d, dict):
            raise ValueError(f"config must be a JSON object, got {type(d).__name__}")
        depth = _require(d, "depth_decoder_config", "config")
        if not isinstance(depth, dict):
            raise ValueError("config: 'depth_decoder_config' must be an object")
        backbone = TransformerConfig.from_dict(d, "config")
        depth_decoder = TransformerConfig.from_dict(depth, "config.depth_decoder_config")
        num_codebooks = _positive_int(d, "num_codebooks", "config")
        audio_vocab_size = _positive_int(d, "vocab_size", "config")
        codec = d.get("codec_config") or {}
        codebook_size = int(codec.get("codebook_size", min(DEFAULT_CODEBOOK_SIZE, audio_vocab_size)))
        if not 0 < codebook_size <= audio_vocab_size:
            raise ValueError(
                f"config: codec codebook_size ({codebook_size}) must be in [1, vocab_size={audio_vocab_size}]"
            )
        depth_codebooks = depth.get("num_codebooks", num_codebooks)
        depth_vocab = depth.get("vocab_size", audio_vocab_size)
        if depth_codebooks != num_codebooks or depth_vocab != audio_vocab_size:
            raise ValueError(
                "config: depth_decoder_config num_codebooks/vocab_size "
                f"({depth_codebooks}/{depth_vocab}) differ from the backbone's ({num_codebooks}/{audio_vocab_size})"
            )
        backbone_dim_seen = depth.get("backbone_hidden_size", backbone.dim)
        if backbone_dim_seen != backbone.dim:
            raise ValueError(
                f"config: depth_decoder_config.backbone_hidden_size ({backbone_dim_seen}) "
                f"!= hidden_size ({backbone.dim})"
            )
        if depth_decoder.max_positions < num_codebooks:
            raise ValueError(
                f"config: the depth decoder needs {num_codebooks} positions, "
                f"max_position_embeddings is {depth_decoder.max_positions}"
            )
        eos = d.get("codebook_eos_token_id", 0)
        return cls(
            backbone=backbone,
            depth_decoder=depth_decoder,
            num_codebooks=num_codebooks,
            audio_vocab_size=audio_vocab_size,
            codebook_size=codebook_size,
            text_vocab_size=_positive_int(d, "text_vocab_size", "config"),
            tie_codebook_embeddings=bool(d.get("tie_codebooks_embeddings", True)),
            codebook_eos_id=int(eos if isinstance(eos, int) else 0),
        )
