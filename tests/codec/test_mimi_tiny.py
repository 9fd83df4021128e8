"""The tiny config and the deterministic random init used for dev checkpoints."""

from __future__ import annotations

import pytest
import torch
from codec_helpers import build_mimi, random_codes

from csmstream.codec.mimi import Mimi
from csmstream.codec.mimi_config import MimiConfig
from csmstream.codec.tiny import random_init_, tiny_mimi_config


def test_same_seed_same_weights_other_seed_other_weights():
    first, second, other = (build_mimi(tiny_mimi_config(), seed) for seed in (4, 4, 5))
    a, b, c = first.state_dict(), second.state_dict(), other.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "the same seed gave different weights"
    differing = [k for k in a if not torch.equal(a[k], c[k])]
    assert len(differing) > len(a) // 2, f"another seed changed only {len(differing)} of {len(a)} tensors"


def test_codebooks_are_nonzero_and_distinct():
    mimi = build_mimi(tiny_mimi_config(), seed=6)
    quantizer = mimi.quantizer
    books = [quantizer.semantic_residual_vector_quantizer.layers[0].codebook.centroids()]
    books += [layer.codebook.centroids() for layer in quantizer.acoustic_residual_vector_quantizer.layers]
    assert len(books) == 32, f"expected 32 codebooks, got {len(books)}"
    for i, book in enumerate(books):
        assert book.abs().sum(dim=-1).min() > 0, f"codebook {i} has an all-zero entry"
        assert torch.unique(book, dim=0).shape[0] == book.shape[0], f"codebook {i} repeats an entry"
    assert not torch.allclose(books[1], books[2]), "two codebooks are the same"


def test_audio_level_is_sane_and_codes_matter():
    mimi = build_mimi(tiny_mimi_config(), seed=8)
    codes = random_codes(1, 6, seed=1)
    audio = mimi.decode(codes)
    assert audio.shape == (1, 1, 6 * 1920), f"unexpected audio shape {tuple(audio.shape)}"
    assert torch.isfinite(audio).all(), "decoded audio is not finite"
    rms = audio.pow(2).mean().sqrt().item()
    assert 0.01 < rms < 1.0, f"decoded RMS {rms} is not a sane audio level"
    for codebook in (0, 31):
        changed = codes.clone()
        changed[0, codebook, 3] = (changed[0, codebook, 3] + 1) % 2048
        difference = (mimi.decode(changed) - audio).abs().max().item()
        assert difference > 1e-3 * rms, (
            f"changing codebook {codebook} barely changed the audio ({difference})"
        )


def test_tiny_config_is_a_valid_transformers_codec_config():
    transformers = pytest.importorskip("transformers")
    theirs = transformers.MimiConfig(**tiny_mimi_config())
    assert theirs.frame_size == 1920 and theirs.num_quantizers == 32, (
        "tiny config lost the real frame geometry"
    )
    assert MimiConfig.from_dict(tiny_mimi_config()).frame_samples == 1920, "we read another frame size"


def test_random_init_covers_conv_shortcuts_and_deeper_residual_stacks():
    """Configs other than the tiny one have more kinds of tensors; random_init_ must have a rule for each."""
    config = MimiConfig.from_dict({**tiny_mimi_config(), "use_conv_shortcut": True, "num_residual_layers": 2})
    mimi = Mimi(config)
    random_init_(mimi, seed=0)
    assert torch.isfinite(mimi.decode(random_codes(1, 2, seed=0))).all(), "non-finite audio"
