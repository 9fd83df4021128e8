"""A fine-tuned voice in the library: `voices add --adapter DIR` (an adapter made with PEFT), how it is
stored and listed, and the damaged adapters that must leave nothing behind."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from csmstream.cli import main
from csmstream.dev.tiny_model import build_tiny_model, tiny_csm_config
from csmstream.voices.library import VoiceLibrary
from lora_helpers import make_peft_adapter

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("adapter") / "lora"
    make_peft_adapter(
        build_tiny_model(tiny_csm_config(300), seed=1), directory, seed=3, targets=("q_proj", "v_proj")
    )
    return directory


@pytest.fixture()
def reference(tmp_path):
    path = tmp_path / "ref.wav"
    sf.write(path, 0.2 * np.sin(np.arange(48_000) / 7.0).astype(np.float32), 24_000)
    return path


def test_voices_add_with_an_adapter_stores_and_lists_a_fine_tuned_voice(
    tmp_path, adapter_dir, reference, capsys
):
    library_dir = tmp_path / "voices"
    args = [
        "voices",
        "add",
        str(reference),
        "-t",
        "hello there",
        "--id",
        "brand",
        "--voices-dir",
        str(library_dir),
    ]
    assert main([*args, "--adapter", str(adapter_dir)]) == 0
    voice = VoiceLibrary(library_dir, builtin_dir=None).get("brand")
    assert voice.adapter_dir == library_dir / "brand" / "adapter"
    assert voice.name == "brand" and voice.info().adapter
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert (voice.adapter_dir / name).read_bytes() == (adapter_dir / name).read_bytes()
    capsys.readouterr()
    assert main(["voices", "list", "--voices-dir", str(library_dir)]) == 0
    assert "fine-tuned" in capsys.readouterr().out


def test_a_damaged_adapter_is_refused_and_nothing_is_written(tmp_path, adapter_dir, reference, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text((adapter_dir / "adapter_config.json").read_text())
    (broken / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    library_dir = tmp_path / "voices"
    args = ["voices", "add", str(reference), "-t", "hello", "--id", "x", "--voices-dir", str(library_dir)]
    assert main([*args, "--adapter", str(broken)]) == 1
    assert "damaged or not a safetensors file" in capsys.readouterr().err
    assert not library_dir.exists() or not any(library_dir.iterdir()), "nothing half-written in the library"
    assert main([*args, "--adapter", str(tmp_path / "missing")]) == 1
    assert "adapter_config.json is missing" in capsys.readouterr().err


def test_adapters_go_to_a_local_library_not_through_a_server(tmp_path, adapter_dir, reference, capsys):
    args = [
        "voices",
        "add",
        str(reference),
        "-t",
        "hi",
        "--server",
        "http://127.0.0.1:9",
        "--adapter",
        str(adapter_dir),
    ]
    assert main(args) == 1
    assert "local voice library only" in capsys.readouterr().err
