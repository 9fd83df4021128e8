"""Helpers for the codec tests: our tiny Mimi, transformers' MimiModel with the same weights, comparisons."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file

from csmstream.codec.mimi import Mimi
from csmstream.codec.mimi_config import MimiConfig
from csmstream.codec.tiny import random_init_

# A window far shorter than the real 250 positions, so a few dozen frames already slide past it.
SMALL_WINDOW = 10


def build_mimi(config_dict: dict, seed: int) -> Mimi:
    mimi = Mimi(MimiConfig.from_dict(config_dict)).eval()
    random_init_(mimi, seed)
    return mimi


def load_into_transformers(mimi: Mimi, directory: str):
    """Save our state_dict as a checkpoint and load it through transformers' own loader (and key renaming)."""
    transformers = pytest.importorskip("transformers")
    config = transformers.MimiConfig(**mimi.config.to_dict())
    config.save_pretrained(directory)
    tensors = {k: v.detach().contiguous() for k, v in mimi.state_dict().items()}
    save_file(tensors, os.path.join(directory, "model.safetensors"))
    reference, info = transformers.MimiModel.from_pretrained(directory, output_loading_info=True)
    assert not any(info.values()), f"transformers did not load our weights cleanly: {info}"
    return reference.eval()


def random_codes(batch_size: int, num_frames: int, seed: int, num_codebooks: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2048, (batch_size, num_codebooks, num_frames), generator=generator)


def assert_audio_close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """Within 1e-4 of the expected signal's RMS, everywhere."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    rms = expected.float().pow(2).mean().sqrt().item()
    assert rms > 1e-4, f"{what}: the expected audio is silent (RMS {rms}), the comparison would be empty"
    error = (actual.float() - expected.float()).abs().max().item()
    assert error <= 1e-4 * rms, f"{what}: max abs diff {error:.3g} > 1e-4 x RMS {rms:.3g}"
