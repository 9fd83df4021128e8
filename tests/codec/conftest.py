"""Fixtures of the codec tests (helpers live in codec_helpers.py)."""

from __future__ import annotations

import pytest
import torch
from codec_helpers import SMALL_WINDOW, build_mimi, load_into_transformers

from csmstream.codec.tiny import tiny_mimi_config


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    """(ours, theirs) with the tiny config and identical random weights."""
    mimi = build_mimi(tiny_mimi_config(), seed=1)
    return mimi, load_into_transformers(mimi, str(tmp_path_factory.mktemp("tiny_mimi")))


@pytest.fixture(scope="module")
def small_window_pair(tmp_path_factory):
    """(ours, theirs) whose decoder attention window is only SMALL_WINDOW positions."""
    mimi = build_mimi({**tiny_mimi_config(), "sliding_window": SMALL_WINDOW}, seed=2)
    return mimi, load_into_transformers(mimi, str(tmp_path_factory.mktemp("small_window_mimi")))


@pytest.fixture(autouse=True)
def _single_thread_torch():
    """Tiny tensors run faster on one thread, and far faster when other processes load the cores
    (intra-op threads then wait on each other); restored after each test of this folder."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
