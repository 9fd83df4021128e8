"""A tiny CSM of the real format: 32 codebooks, audio vocabulary 2051, toy widths, deterministic random weights."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from csmstream.codec.tiny import tiny_mimi_config
from csmstream.model.csm import CsmModel
from csmstream.model.csm_config import CsmConfig

_LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 32.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 2048,
}


def tiny_csm_config(text_vocab_size: int, special_ids: dict[str, int | None] | None = None) -> dict[str, Any]:
    """A transformers-format CSM `config.json` dict: real vocabularies and RoPE, 2-layer stacks, dims 64 / 48.

    `special_ids` (bos/pad/audio/audio_eos token ids of the tokenizer) only matter to transformers' processor
    path; our code finds special tokens by name.
    """
    special_ids = {"bos": None, "pad": None, "audio": None, "audio_eos": None, **(special_ids or {})}
    backbone_dim = 64
    return {
        "architectures": ["CsmForConditionalGeneration"],
        "model_type": "csm",
        "num_codebooks": 32,
        "vocab_size": 2051,
        "text_vocab_size": text_vocab_size,
        "hidden_size": backbone_dim,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "hidden_act": "silu",
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "rope_parameters": dict(_LLAMA3_ROPE),
        "attention_bias": False,
        "mlp_bias": False,
        "tie_codebooks_embeddings": True,
        "codebook_eos_token_id": 0,
        "codebook_pad_token_id": 2050,
        "bos_token_id": special_ids["bos"],
        "pad_token_id": special_ids["pad"],
        "audio_token_id": special_ids["audio"],
        "audio_eos_token_id": special_ids["audio_eos"],
        "depth_decoder_config": {
            "model_type": "csm_depth_decoder_model",
            "num_codebooks": 32,
            "vocab_size": 2051,
            "backbone_hidden_size": backbone_dim,
            "hidden_size": 48,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 12,
            "hidden_act": "silu",
            "max_position_embeddings": 33,
            "rms_norm_eps": 1e-5,
            "rope_parameters": dict(_LLAMA3_ROPE),
            "attention_bias": False,
            "mlp_bias": False,
        },
        "codec_config": tiny_mimi_config(),
    }


@torch.no_grad()
def random_init_(model: CsmModel, seed: int) -> None:
    """Deterministic random weights, in place (same seed → same tensors on any device).

    Scales keep activations O(1) and make logits spread by about 1, so greedy choices are clear-cut rather
    than float-noise ties. Head weights of the ids >= codebook_size are zero: those ids then score about
    average and are never the argmax, as in the trained model, so references that look at the whole
    vocabulary (transformers' greedy search) choose the same codes as we do.
    """
    generator = torch.Generator().manual_seed(seed)
    valid = model.config.codebook_size
    for name, param in model.named_parameters():  # tied tensors are listed once
        shape = param.shape
        if name.endswith("norm.weight"):
            value = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        elif "embeddings" in name:
            value = 0.5 * torch.randn(shape, generator=generator)
        elif name == "audio_head":
            value = torch.randn(shape, generator=generator) / math.sqrt(shape[1])
            value[..., valid:] = 0
        else:
            value = torch.randn(shape, generator=generator) / math.sqrt(shape[-1])
            if name == "codebook0_head.weight":
                value[valid:] = 0
        param.copy_(value.to(dtype=param.dtype, device=param.device))


def build_tiny_model(config_dict: dict[str, Any], seed: int) -> CsmModel:
    model = CsmModel(CsmConfig.from_dict(config_dict)).eval()
    random_init_(model, seed)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
