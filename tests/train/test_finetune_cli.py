"""`csmstream finetune train` end to end: the voice it makes, a SIGKILLed run resumed to the same adapter as
an uninterrupted one, and the errors that stop a run before anything is written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_datasets import write_random_dataset

from csmstream.cli import main
from csmstream.train.dataset import codec_fingerprint
from csmstream.voices.library import VoiceLibrary

REPO = Path(__file__).resolve().parents[2]
KILL_TIMEOUT_S = 180  # generous: three engineers share two cores


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory, tiny_codec):
    """Random codes made for the tiny codec (its fingerprint): 8 training clips (7.7 s of audio), 2 held out."""
    return write_random_dataset(
        tmp_path_factory.mktemp("cli") / "dataset",
        num_train=8,
        num_heldout=2,
        fingerprint=codec_fingerprint(tiny_codec),
    )


def _args(dataset_dir, model, run_dir, voice, voices_dir, *extra: str) -> list[str]:
    return [
        "finetune", "train", str(dataset_dir), "-o", str(run_dir), "--model", str(model), "--voice", voice,
        "--voices-dir", str(voices_dir), "--no-progress", "--device", "cpu", *extra,
    ]  # fmt: skip


RECIPE = [
    "--steps", "24", "--seed", "5", "--batch-frames", "64", "--grad-accum", "2", "--eval-every", "4",
    "--checkpoint-every", "4", "--patience", "0", "--lr", "2e-3", "--depth-fraction", "0.25", "--rank", "4",
]  # fmt: skip


def _command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "csmstream.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}


def test_train_adds_the_voice_with_its_adapter(dataset_dir, tiny_checkpoint_dir, tmp_path, capsys):
    run_dir, voices = tmp_path / "run", tmp_path / "voices"
    code = main(
        _args(
            dataset_dir, tiny_checkpoint_dir, run_dir, "me", voices, "--steps", "3", "--batch-frames", "256"
        )
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "training throughput:" in out and "frames/s" in out and "added voice 'me'" in out
    voice = VoiceLibrary(voices).get("me")
    assert voice.adapter_dir is not None and voice.speaker == 0
    # the display name defaults to the dataset's speaker name. Fails until voices/storage.py's
    # write_voice_dir stops reusing `name` as its loop variable over ADAPTER_FILES (lead: one-line fix there)
    assert voice.name == "rand"
    assert sorted(p.name for p in voice.adapter_dir.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    config = json.loads((voice.adapter_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_checkpoint_dir)
    assert 5.0 <= voice.reference_seconds <= 20.0
    run_config = json.loads((run_dir / "run.json").read_text())["settings"]
    assert run_config["steps"] == 3 and run_config["lora_rank"] == 16

    # the same id again: refused before any training, nothing written
    code = main(_args(dataset_dir, tiny_checkpoint_dir, tmp_path / "run2", "me", voices))
    assert code == 1 and "already exists" in capsys.readouterr().err
    assert not (tmp_path / "run2").exists()
    # the finished run's folder: not for a new run; a resume with another recipe says what differs
    code = main(_args(dataset_dir, tiny_checkpoint_dir, run_dir, "me2", voices, "--steps", "3"))
    err = capsys.readouterr().err
    assert code == 1 and "not empty" in err and "--resume" in err
    resume = ["--resume", "--lr", "1e-3", "--rank", "8", "--steps", "9"]
    code = main(_args(dataset_dir, tiny_checkpoint_dir, run_dir, "me2", voices, *resume))
    err = capsys.readouterr().err
    assert (
        code == 1
        and "lr (the run has 0.0002, now 0.001)" in err
        and "lora_rank (the run has 16, now 8)" in err
    )
    assert "batch_frames (the run has 256, now 2048)" in err and "steps" not in err.split("settings:")[1]


def test_a_killed_run_resumes_to_the_uninterrupted_adapter(dataset_dir, tiny_checkpoint_dir, tmp_path):
    voices = tmp_path / "voices"
    whole_dir, killed_dir = tmp_path / "whole", tmp_path / "killed"
    whole = subprocess.run(
        _command(_args(dataset_dir, tiny_checkpoint_dir, whole_dir, "whole", voices, *RECIPE)),
        env=_env(), capture_output=True, text=True, timeout=KILL_TIMEOUT_S,
    )  # fmt: skip
    assert whole.returncode == 0, whole.stderr

    # the same run, SIGKILLed as soon as its first checkpoint is on disk
    process = subprocess.Popen(
        _command(_args(dataset_dir, tiny_checkpoint_dir, killed_dir, "killed", voices, *RECIPE)),
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + KILL_TIMEOUT_S
    while (
        not (killed_dir / "checkpoint.pt").exists() and process.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.002)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    saved_step = torch.load(killed_dir / "checkpoint.pt", weights_only=True)["progress"]["step"]
    assert 4 <= saved_step < 24 and not (killed_dir / "adapter").exists()
    assert not VoiceLibrary(voices).has("killed")

    resumed = subprocess.run(
        _command(_args(dataset_dir, tiny_checkpoint_dir, killed_dir, "killed", voices, *RECIPE, "--resume")),
        env=_env(), capture_output=True, text=True, timeout=KILL_TIMEOUT_S,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "(resumed)" in resumed.stdout

    expected = load_file(whole_dir / "adapter" / "adapter_model.safetensors")
    actual = load_file(killed_dir / "adapter" / "adapter_model.safetensors")
    assert expected.keys() == actual.keys() and len(expected) > 0
    assert all(torch.equal(expected[k], actual[k]) for k in expected), "the best adapters differ"
    last_whole = torch.load(whole_dir / "checkpoint.pt", weights_only=True)
    last_resumed = torch.load(killed_dir / "checkpoint.pt", weights_only=True)
    assert last_whole["progress"]["step"] == last_resumed["progress"]["step"] == 24
    assert all(torch.equal(v, last_resumed["adapter"][k]) for k, v in last_whole["adapter"].items())
    assert any(v.abs().sum() > 0 for k, v in last_whole["adapter"].items() if "lora_B" in k), "it trained"
    # the evaluations after the checkpoint were not written twice, and scored the same
    assert (killed_dir / "history.jsonl").read_text() == (whole_dir / "history.jsonl").read_text()
    assert VoiceLibrary(voices).has("killed")


def test_datasets_that_cannot_train_are_refused_before_anything_is_written(
    dataset_dir, tiny_checkpoint_dir, tmp_path, capsys
):
    voices, run_dir = tmp_path / "voices", tmp_path / "run"
    other_codec = write_random_dataset(tmp_path / "other", 8, 2, fingerprint="0123456789abcdef")
    assert main(_args(other_codec, tiny_checkpoint_dir, run_dir, "me", voices)) == 1
    assert "prepared with another codec" in capsys.readouterr().err

    fewer_codebooks = write_random_dataset(tmp_path / "k8", 8, 2, num_codebooks=8)
    assert main(_args(fewer_codebooks, tiny_checkpoint_dir, run_dir, "me", voices)) == 1
    assert "8-codebook codes; the model uses 32" in capsys.readouterr().err

    assert main(_args(tmp_path / "nothing", tiny_checkpoint_dir, run_dir, "me", voices)) == 1
    err = capsys.readouterr().err
    assert "not a prepared dataset" in err and "finetune prepare" in err

    heldout_only = write_random_dataset(tmp_path / "held", 0, 3)
    assert main(_args(heldout_only, tiny_checkpoint_dir, run_dir, "me", voices)) == 1
    assert "no training clips" in capsys.readouterr().err

    too_little = write_random_dataset(tmp_path / "short", 2, 1, frames=12)  # 1.9 s of training speech
    assert main(_args(too_little, tiny_checkpoint_dir, run_dir, "me", voices)) == 1
    assert "for references" in capsys.readouterr().err

    two_speakers = write_random_dataset(tmp_path / "two", 16, 2, num_speakers=2)
    assert main(_args(two_speakers, tiny_checkpoint_dir, run_dir, "me", voices)) == 1
    err = capsys.readouterr().err
    assert "several speakers (rand0 (0), rand1 (1))" in err and "--speaker" in err
    assert main(_args(two_speakers, tiny_checkpoint_dir, run_dir, "me", voices, "--speaker", "rand2")) == 1
    assert "--speaker 'rand2' is not in" in capsys.readouterr().err

    assert not run_dir.exists() and not VoiceLibrary(voices).has("me")

    somebody_elses = tmp_path / "photos"
    somebody_elses.mkdir()
    (somebody_elses / "cat.jpg").write_bytes(b"\xff\xd8")
    for resume in ([], ["--resume"]):
        assert main(_args(dataset_dir, tiny_checkpoint_dir, somebody_elses, "me", voices, *resume)) == 1
        assert "choose another -o RUN_DIR" in capsys.readouterr().err
    assert [p.name for p in somebody_elses.iterdir()] == ["cat.jpg"]
