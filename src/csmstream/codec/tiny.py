"""A tiny Mimi for tests and dev checkpoints: the real frame geometry and codebooks, toy widths.

`tiny_mimi_config()` keeps what other code depends on (24 kHz, 12.5 frames/s so 1920 samples per frame,
32 codebooks of 2048) and shrinks everything else so a frame decodes in about a millisecond on CPU.
`random_init_` gives any Mimi deterministic weights with distinct codebooks and audio of a sane level.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from csmstream.codec.conv import CausalConvTranspose1d
from csmstream.codec.mimi import Mimi

# Random codes decode to about this RMS once `random_init_` has calibrated the last conv.
_TARGET_RMS = 0.1


def tiny_mimi_config() -> dict[str, Any]:
    """A transformers-format `codec_config` dict (what `MimiConfig.from_dict` and transformers both read)."""
    return {
        "model_type": "mimi",
        "sampling_rate": 24_000,
        "audio_channels": 1,
        "upsampling_ratios": [8, 6, 5, 4],  # 960 samples per latent step, x2 downsampling → 1920 per frame
        "frame_rate": 12.5,
        "num_quantizers": 32,
        "num_semantic_quantizers": 1,
        "codebook_size": 2048,
        "codebook_dim": 16,
        "vector_quantization_hidden_dimension": 16,
        "hidden_size": 32,
        "upsample_groups": 32,
        "num_filters": 4,
        "num_residual_layers": 1,
        "num_hidden_layers": 2,
        "intermediate_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "head_dim": 8,
        "sliding_window": 250,
        "max_position_embeddings": 8000,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10_000.0},
        "hidden_act": "gelu",
        "kernel_size": 7,
        "last_kernel_size": 3,
        "residual_kernel_size": 3,
        "dilation_growth_rate": 2,
        "compress": 2,
        "use_causal_conv": True,
        "pad_mode": "constant",
        "trim_right_ratio": 1.0,
        "use_conv_shortcut": False,
        "norm_eps": 1e-5,
        "layer_scale_initial_scale": 0.01,
        "attention_bias": False,
        "use_cache": False,
    }


def _fan_in(module: nn.Module, weight: torch.Tensor) -> int:
    """Inputs summed into one output sample, so weights of std 1/sqrt(fan_in) keep activations O(1)."""
    if isinstance(module, nn.ConvTranspose1d):
        in_per_group = weight.shape[0] // module.groups
        return max(1, in_per_group * weight.shape[2] // module.stride[0])
    return max(1, math.prod(weight.shape[1:]))


@torch.no_grad()
def random_init_(mimi: Mimi, seed: int) -> None:
    """Deterministic random weights (same seed → same tensors, on any device), in place.

    Codebooks are distinct and non-zero (later codebooks smaller, like a trained RVQ), cluster usages
    vary (so the centroid division matters), layer norms and layer scales are non-trivial, and the final
    conv is scaled so random codes decode to an RMS of about 0.1.
    """
    generator = torch.Generator().manual_seed(seed)

    def normal(shape, std: float = 1.0, mean: float = 0.0) -> torch.Tensor:
        return torch.randn(shape, generator=generator) * std + mean

    def uniform(shape, low: float, high: float) -> torch.Tensor:
        return torch.rand(shape, generator=generator) * (high - low) + low

    owners = dict(mimi.named_modules())
    for name, tensor in mimi.state_dict(keep_vars=True).items():
        module_name, _, leaf = name.rpartition(".")
        module = owners[module_name]
        shape = tensor.shape
        if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d, nn.Linear)) and leaf == "weight":
            value = normal(shape, 1.0 / math.sqrt(_fan_in(module, tensor)))
        elif isinstance(module, (nn.Conv1d, nn.ConvTranspose1d, nn.Linear)) and leaf == "bias":
            value = normal(shape, 0.02)
        elif isinstance(module, nn.LayerNorm):
            value = normal(shape, 0.1, 1.0) if leaf == "weight" else normal(shape, 0.1)
        elif leaf == "scale":  # layer scale
            value = uniform(shape, 0.05, 0.3)
        elif leaf == "cluster_usage":
            value = uniform(shape, 0.5, 2.0)
        elif leaf == "initialized":
            value = torch.ones(shape)
        elif leaf == "embed_sum":
            codebook_index = int(module_name.split(".layers.")[1].split(".")[0])
            usage = owners[module_name].cluster_usage.detach().cpu().float()
            centroids = normal(shape, 1.0 / math.sqrt(1 + codebook_index))
            value = centroids * usage[:, None]  # stored as a sum, centroid = embed_sum / usage
        else:
            raise AssertionError(f"random_init_: no rule for {name}")
        tensor.copy_(value.to(dtype=tensor.dtype, device=tensor.device))

    _calibrate_output_level(mimi, generator)


def _calibrate_output_level(mimi: Mimi, generator: torch.Generator) -> None:
    """Scale the last conv (weight and bias, so exactly linear) to bring random codes to _TARGET_RMS."""
    config = mimi.config
    codes = torch.randint(0, config.codebook_size, (2, config.num_quantizers, 4), generator=generator)
    device = mimi.decoder.layers[0].conv.weight.device
    audio = mimi.decode(codes.to(device)).float()
    rms = audio.pow(2).mean().sqrt().item()
    assert math.isfinite(rms) and rms > 0, f"random_init_: decoded audio has RMS {rms}"
    last = mimi.decoder.layers[-1]
    assert not isinstance(last, CausalConvTranspose1d), "the decoder must end with a plain conv"
    last.conv.weight.mul_(_TARGET_RMS / rms)
    if last.conv.bias is not None:
        last.conv.bias.mul_(_TARGET_RMS / rms)
