"""A training run's folder: its settings, its resumable checkpoint, and the final adapter.

    RUN_DIR/run.json          the settings the run was started with (a resume must use the same recipe)
    RUN_DIR/checkpoint.pt     the latest checkpoint: adapter, best adapter, optimizer, scheduler, every RNG,
                              data position, step, best held-out loss (written to a temp file, then renamed)
    RUN_DIR/adapter/          the best adapter in PEFT's format (adapter_config.json, adapter_model.safetensors)
    RUN_DIR/history.jsonl     one line per evaluation (step, epoch, train and held-out loss)

A run killed at any moment resumes from its last checkpoint and ends bit-identical (CPU, float32) to a run
that was never interrupted: everything random is restored, and the data order is a function of the seed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csmstream.errors import CsmstreamError
from csmstream.voices.storage import fsync_dir

RUN_FILE = "run.json"
CHECKPOINT_FILE = "checkpoint.pt"
ADAPTER_DIR = "adapter"
HISTORY_FILE = "history.jsonl"
STATE_VERSION = 1

# Settings a resumed run may change: they decide when the run stops or saves, or where its voice goes, not
# what a step computes. Everything else in run.json must match.
FREE_ON_RESUME = frozenset(
    {"steps", "checkpoint_every", "patience", "device", "voice", "name", "voices_dir", "speaker", "progress"}
)


class RunDirError(CsmstreamError):
    """RUN_DIR cannot hold this run (not empty, another run's settings, a damaged checkpoint)."""


def check_run_dir(run_dir: Path, settings: dict[str, Any], resume: bool) -> bool:
    """Check RUN_DIR for a new run or a resume; True when there is a checkpoint to resume from.

    Without --resume the folder must be absent or empty. With --resume its run.json must hold the same
    settings (except those in FREE_ON_RESUME); a folder without run.json is a fresh start when empty.
    """
    run_file = run_dir / RUN_FILE
    exists = run_dir.exists()
    if exists and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is a file; give a folder for the run (-o RUN_DIR)")
    entries = [p for p in run_dir.iterdir() if not p.name.startswith(".tmp-")] if exists else []
    if not resume:
        if entries and run_file.is_file():
            raise RunDirError(
                f"{run_dir} is not empty: it holds a training run. Add --resume to continue it, "
                "or choose another -o RUN_DIR"
            )
        if entries:
            raise RunDirError(
                f"{run_dir} is not empty and holds no training run; choose another -o RUN_DIR (or empty it)"
            )
        return False
    if not run_file.is_file():
        if entries:
            raise RunDirError(
                f"{run_dir} holds no {RUN_FILE}: there is no run to resume there; choose another -o RUN_DIR"
            )
        return False
    try:
        saved = json.loads(run_file.read_text(encoding="utf-8"))["settings"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunDirError(
            f"{run_file} cannot be read ({exc}); start a new run in another -o RUN_DIR"
        ) from exc
    differ = [
        f"{key} (the run has {saved.get(key)!r}, now {settings.get(key)!r})"
        for key in sorted(set(saved) | set(settings))
        if key not in FREE_ON_RESUME and saved.get(key) != settings.get(key)
    ]
    if differ:
        raise RunDirError(
            f"--resume: {run_dir} was started with other settings: {'; '.join(differ)}. "
            "Resume with the run's settings, or start a new run in another -o RUN_DIR."
        )
    return (run_dir / CHECKPOINT_FILE).is_file()


def write_run_file(run_dir: Path, settings: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run_dir / RUN_FILE, (json.dumps({"settings": settings}, indent=2) + "\n").encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    temp = path.parent / f".tmp-{path.name}-{uuid.uuid4().hex[:12]}"
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def sweep_temp_files(run_dir: Path) -> None:
    """Remove the temp files and folders a killed run left half-written (never read: renames publish)."""
    for path in run_dir.glob(".tmp-*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def append_history(run_dir: Path, record: dict[str, Any]) -> None:
    with open(run_dir / HISTORY_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


# ---- random state --------------------------------------------------------------------------------------


def capture_rng(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Every random state a step may touch: torch (CPU and CUDA), numpy, python, and our generators.
    Kept as tensors and plain numbers, so the checkpoint loads with `weights_only=True`."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(np.array(keys, dtype=np.int64)), position, has_gauss, cached),
        "python": (py_version, list(py_state), py_gauss),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    for name, generator in generators.items():
        generator.set_state(state["generators"][name])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- the checkpoint ------------------------------------------------------------------------------------


@dataclass
class Progress:
    """Where a run stands (everything but tensors)."""

    step: int = 0
    epoch: int = 0
    batch_index: int = 0
    best_loss: float | None = None  # best held-out loss so far
    best_step: int = 0
    evals_since_best: int = 0
    stopped_early: bool = False
    train_frames: int = 0  # learnt frames seen in training steps
    train_seconds: float = 0.0  # wall time spent in training steps (not evaluation or saving)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunCheckpoint:
    progress: Progress
    adapter: dict[str, torch.Tensor]
    best_adapter: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]


def save_checkpoint(run_dir: Path, checkpoint: RunCheckpoint) -> Path:
    path = run_dir / CHECKPOINT_FILE
    temp = run_dir / f".tmp-{CHECKPOINT_FILE}-{uuid.uuid4().hex[:12]}"
    payload = {
        "version": STATE_VERSION,
        "progress": checkpoint.progress.__dict__,
        "adapter": checkpoint.adapter,
        "best_adapter": checkpoint.best_adapter,
        "optimizer": checkpoint.optimizer,
        "scheduler": checkpoint.scheduler,
        "rng": checkpoint.rng,
    }
    try:
        with open(temp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(run_dir)
    return path


def load_checkpoint(run_dir: Path) -> RunCheckpoint:
    path = run_dir / CHECKPOINT_FILE
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("version") != STATE_VERSION:
            raise ValueError(f"version {payload.get('version')!r}, this csmstream reads {STATE_VERSION}")
        return RunCheckpoint(
            progress=Progress(**payload["progress"]),
            adapter=payload["adapter"],
            best_adapter=payload["best_adapter"],
            optimizer=payload["optimizer"],
            scheduler=payload["scheduler"],
            rng=payload["rng"],
        )
    except Exception as exc:  # torch.load raises many kinds
        raise RunDirError(
            f"{path} cannot be read ({exc}); delete it to restart the run from step 0, "
            "or start a new run in another -o RUN_DIR"
        ) from exc
