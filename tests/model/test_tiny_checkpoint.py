"""`csmstream dev tiny-checkpoint`: a deterministic random checkpoint in the csm-1b format."""

from __future__ import annotations

import json

from csmstream.cli import main
from csmstream.model.checkpoint import load_checkpoint


def test_command_writes_a_loadable_checkpoint(tmp_path, capsys):
    assert main(["dev", "tiny-checkpoint", str(tmp_path / "a"), "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "a") in out and "model.safetensors" in out
    checkpoint = load_checkpoint(str(tmp_path / "a"), device="cpu", progress=False)
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["num_codebooks"] == 32 and config["vocab_size"] == 2051
    assert checkpoint.config.codebook_size == 2048
    assert checkpoint.config.text_vocab_size == checkpoint.tokenizer.vocab_size


def test_same_seed_same_files_other_seed_other_weights(tmp_path, tiny_checkpoint_dir):
    main(["dev", "tiny-checkpoint", str(tmp_path / "again"), "--seed", "0"])
    main(["dev", "tiny-checkpoint", str(tmp_path / "other"), "--seed", "1"])
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        assert (tmp_path / "again" / name).read_bytes() == (tiny_checkpoint_dir / name).read_bytes(), name
    assert (tmp_path / "other" / "model.safetensors").read_bytes() != (
        tmp_path / "again" / "model.safetensors"
    ).read_bytes()


def test_dev_without_a_tool_prints_help(capsys):
    assert main(["dev"]) == 2
    assert "tiny-checkpoint" in capsys.readouterr().out
