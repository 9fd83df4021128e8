"""Helpers of the model tests: the tiny CSM, transformers' CsmForConditionalGeneration with the same weights."""

from __future__ import annotations

import pytest
import torch

from csmstream.codec.mimi import Mimi
from csmstream.model.csm import CsmModel
from csmstream.model.weight_names import CODEC_PREFIX, theirs_from_ours

TINY_TEXT_VOCAB = 300


def transformers_twin(model: CsmModel, config_dict: dict, codec: Mimi | None = None):
    """transformers' CsmForConditionalGeneration built from the same config dict, holding our weights."""
    transformers = pytest.importorskip("transformers")
    theirs = transformers.CsmForConditionalGeneration(transformers.CsmConfig(**config_dict)).eval()
    state = {}
    for name, tensor in model.state_dict().items():
        state[theirs_from_ours(name)] = tensor
    if codec is not None:
        state.update({CODEC_PREFIX + k: v for k, v in codec.state_dict().items()})
    result = theirs.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if codec is not None or not k.startswith(CODEC_PREFIX)]
    assert not missing and not result.unexpected_keys, f"weights did not map: {result}"
    return theirs


def text_rows(ids: torch.Tensor, num_codebooks: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(T,) text ids → tokens, mask (T, K + 1) of text rows."""
    tokens = torch.zeros(ids.shape[0], num_codebooks + 1, dtype=torch.int64)
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    tokens[:, num_codebooks] = ids
    mask[:, num_codebooks] = True
    return tokens, mask


def audio_rows(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, K) codes → tokens, mask (T, K + 1) of audio rows."""
    tokens = torch.cat((codes, torch.zeros(codes.shape[0], 1, dtype=torch.int64)), dim=1)
    mask = torch.ones_like(tokens, dtype=torch.bool)
    mask[:, -1] = False
    return tokens, mask
