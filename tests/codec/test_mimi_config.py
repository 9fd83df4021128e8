"""MimiConfig reads and writes transformers-format codec_config dicts."""

from __future__ import annotations

import dataclasses

import pytest

from csmstream.codec.mimi_config import MimiConfig
from csmstream.codec.tiny import tiny_mimi_config

transformers = pytest.importorskip("transformers")

# Fields whose value transformers derives differently on purpose or stores under another name.
_OURS_ONLY = {"frame_rate_override", "rope_theta"}


def test_real_geometry_of_default_and_tiny_configs():
    for config in (MimiConfig(), MimiConfig.from_dict({}), MimiConfig.from_dict(tiny_mimi_config())):
        assert config.frame_samples == 1920, f"80 ms frames at 24 kHz expected, got {config.frame_samples}"
        assert config.frame_rate == 12.5, f"12.5 frames/s expected, got {config.frame_rate}"
        assert config.num_codebooks == 32 and config.codebook_size == 2048, "CSM needs 32 codebooks of 2048"


def test_missing_keys_take_transformers_defaults():
    ours = MimiConfig.from_dict({})
    theirs = transformers.MimiConfig()
    for f in dataclasses.fields(ours):
        if f.name in _OURS_ONLY:
            continue
        expected = getattr(theirs, f.name)
        expected = tuple(expected) if isinstance(expected, list) else expected
        assert getattr(ours, f.name) == expected, (
            f"default of {f.name}: {getattr(ours, f.name)} != {expected}"
        )
    assert ours.rope_theta == theirs.rope_parameters["rope_theta"], "default rotary base differs"


def test_to_dict_is_accepted_by_transformers_and_round_trips():
    ours = MimiConfig.from_dict(tiny_mimi_config())
    theirs = transformers.MimiConfig(**ours.to_dict())
    assert theirs.frame_size == ours.frame_samples, "transformers derives another frame size from our dict"
    assert theirs.frame_rate == ours.frame_rate, "transformers derives another frame rate from our dict"
    assert theirs.head_dim == ours.head_dim and theirs.sliding_window == ours.sliding_window, "fields lost"
    assert MimiConfig.from_dict(ours.to_dict()) == ours, "to_dict → from_dict changed the config"
    assert MimiConfig.from_dict(theirs.to_dict()) == ours, (
        "a dict saved by transformers reads back differently"
    )


def test_legacy_dict_with_flat_rope_theta_and_unknown_keys():
    legacy = {
        "model_type": "mimi",
        "rope_theta": 5000.0,
        "frame_rate": 12.5,
        "normalize": False,
        "_attn_implementation_autoset": True,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "codebook_dim": None,
        "vector_quantization_hidden_dimension": 64,
    }
    config = MimiConfig.from_dict(legacy)
    assert config.rope_theta == 5000.0, "flat rope_theta was not read"
    assert config.head_dim == 16, "head_dim should default to hidden_size / heads"
    assert config.codebook_dim == 64, "a null codebook_dim means hidden_size"
    assert config.frame_samples == 1920, "an explicit frame_rate of 12.5 keeps 1920-sample frames"


def test_unsupported_settings_are_rejected():
    with pytest.raises(ValueError, match="causal"):
        MimiConfig.from_dict({"use_causal_conv": False})
    with pytest.raises(ValueError, match="rotary"):
        MimiConfig.from_dict({"rope_parameters": {"rope_type": "linear", "rope_theta": 1.0, "factor": 2.0}})
