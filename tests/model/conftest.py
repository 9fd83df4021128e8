"""Fixtures of the model tests (helpers live in model_helpers.py)."""

from __future__ import annotations

import pytest
import torch
from model_helpers import TINY_TEXT_VOCAB

from csmstream.dev.tiny_model import build_tiny_model, tiny_csm_config


@pytest.fixture(autouse=True)
def _single_thread_torch():
    """Tiny tensors run faster on one thread, and far faster when other processes load the cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny_config_dict() -> dict:
    return tiny_csm_config(TINY_TEXT_VOCAB)


@pytest.fixture(scope="module")
def tiny_model(tiny_config_dict):
    return build_tiny_model(tiny_config_dict, seed=3)


@pytest.fixture(scope="module")
def tiny_pair(tiny_model, tiny_config_dict):
    """(ours, transformers') with identical random weights (no codec: these tests need none)."""
    from model_helpers import transformers_twin

    return tiny_model, transformers_twin(tiny_model, tiny_config_dict)
