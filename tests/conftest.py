"""Fixtures shared by every test folder."""

from __future__ import annotations

import os

import pytest
import torch

# Tests run tiny models: on a small shared machine extra torch threads only add contention (a tiny frame took
# 0.64 s with the default threads and 24 ms with one). Server processes started by tests get it from the
# environment.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_checkpoint_dir(tmp_path_factory):
    """A tiny random checkpoint in the sesame/csm-1b format (config.json, model.safetensors, tokenizer.json),
    written once per test session by `csmstream dev tiny-checkpoint`'s writer. Treat it as read-only."""
    from csmstream.dev.tiny_checkpoint import write_tiny_checkpoint

    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead
    try:
        return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny_checkpoint"), seed=0).path
    finally:
        torch.set_num_threads(previous)
