"""Our Mimi against transformers' MimiModel holding the very same weights."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
from codec_helpers import assert_audio_close, build_mimi, load_into_transformers, random_codes
from safetensors.torch import load_file, save_file

from csmstream.codec.mimi import Mimi
from csmstream.codec.mimi_config import MimiConfig
from csmstream.codec.tiny import tiny_mimi_config

transformers = pytest.importorskip("transformers")


def test_state_dict_matches_the_checkpoint_format_exactly():
    """Same names and shapes as what transformers writes for a Mimi (the layout of `codec_model.*`)."""
    config = MimiConfig.from_dict(tiny_mimi_config())
    ours = Mimi(config).state_dict()
    reference = transformers.MimiModel(transformers.MimiConfig(**config.to_dict()))
    with tempfile.TemporaryDirectory() as directory:
        reference.save_pretrained(directory)
        saved = load_file(os.path.join(directory, "model.safetensors"))
    assert set(ours) == set(saved), f"names differ: {sorted(set(ours) ^ set(saved))[:8]}"
    wrong = [k for k in saved if saved[k].shape != ours[k].shape]
    assert not wrong, f"shapes differ for {wrong[:8]}"


def test_checkpoint_with_prefix_loads_strictly(tiny_pair, tmp_path):
    mimi, _ = tiny_pair
    path = tmp_path / "model.safetensors"
    save_file({f"codec_model.{k}": v.contiguous() for k, v in mimi.state_dict().items()}, str(path))
    stripped = {k.removeprefix("codec_model."): v for k, v in load_file(str(path)).items()}
    fresh = Mimi(mimi.config)
    fresh.load_state_dict(stripped, strict=True)
    codes = random_codes(1, 3, seed=5)
    assert torch.equal(fresh.decode(codes), mimi.decode(codes)), "reloaded weights decode differently"


@pytest.mark.parametrize("num_codebooks", [32, 8])
def test_decode_matches_transformers(tiny_pair, num_codebooks):
    mimi, reference = tiny_pair
    codes = random_codes(2, 12, seed=num_codebooks, num_codebooks=num_codebooks)
    with torch.no_grad():
        expected = reference.decode(codes).audio_values
    assert_audio_close(mimi.decode(codes), expected, f"decode with {num_codebooks} codebooks")


def test_decode_past_the_attention_window_matches_transformers(small_window_pair):
    mimi, reference = small_window_pair
    codes = random_codes(2, 30, seed=7)  # 60 transformer positions, window of 10
    with torch.no_grad():
        expected = reference.decode(codes).audio_values
    assert_audio_close(mimi.decode(codes), expected, "decode past the window")


@pytest.mark.parametrize("pair_name", ["tiny_pair", "small_window_pair"])
def test_encode_codes_identical_to_transformers(pair_name, request):
    mimi, reference = request.getfixturevalue(pair_name)
    generator = torch.Generator().manual_seed(11)
    wav = 0.1 * torch.randn(2, 1, 1920 * 9, generator=generator)
    with torch.no_grad():
        expected = reference.encode(wav).audio_codes
    codes = mimi.encode(wav)
    assert codes.shape == (2, 32, 9), f"unexpected code shape {tuple(codes.shape)}"
    assert torch.equal(codes, expected), f"{(codes != expected).sum().item()} codes differ"
    assert torch.equal(mimi.encode(wav, num_codebooks=5), expected[:, :5]), "a prefix of codebooks differs"


@pytest.mark.parametrize("num_samples", [1920 * 3 + 700, 1920 * 2 + 1, 1000])
def test_encode_of_a_partial_last_frame_matches_transformers(tiny_pair, num_samples):
    """A clip that is not a whole number of frames: each conv completes its last window as the reference does."""
    mimi, reference = tiny_pair
    wav = 0.1 * torch.randn(1, 1, num_samples, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = reference.encode(wav).audio_codes
    codes = mimi.encode(wav)
    assert codes.shape[-1] == -(-num_samples // 1920), (
        f"one code frame per started frame: {tuple(codes.shape)}"
    )
    assert torch.equal(codes, expected), f"{(codes != expected).sum().item()} codes differ on a partial frame"


def test_variant_architecture_matches_transformers(tmp_path):
    """Conv shortcuts, two residual layers per stage, grouped-query attention: decode, stream and encode."""
    variant = {
        **tiny_mimi_config(),
        "use_conv_shortcut": True,
        "num_residual_layers": 2,
        "num_key_value_heads": 2,
        "sliding_window": 6,
    }
    mimi = build_mimi(variant, seed=41)
    reference = load_into_transformers(mimi, str(tmp_path))
    codes = random_codes(2, 10, seed=43)
    with torch.no_grad():
        expected = reference.decode(codes).audio_values
    assert_audio_close(mimi.decode(codes), expected, "variant decode")
    state = mimi.new_decoder_state(2)
    streamed = torch.cat([mimi.decode_step(codes[..., t : t + 1], state) for t in range(10)], -1)
    assert_audio_close(streamed, expected, "variant streamed decode")
    wav = 0.1 * torch.randn(1, 1, 1920 * 4, generator=torch.Generator().manual_seed(47))
    with torch.no_grad():
        expected_codes = reference.encode(wav).audio_codes
    assert torch.equal(mimi.encode(wav), expected_codes), "variant encode codes differ"
