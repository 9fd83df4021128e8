"""Real `csmstream serve` processes on loopback, shared by the whole session (starting one costs seconds)."""

from __future__ import annotations

import pytest
from server_process import start_server


@pytest.fixture(scope="session")
def engine_args(request) -> list[str]:
    """The tiny random CSM checkpoint on CPU: the real engine, small enough for tests."""
    checkpoint_dir = request.getfixturevalue("tiny_checkpoint_dir")
    return ["--engine", "csm", "--model", str(checkpoint_dir), "--device", "cpu", "--dtype", "float32"]


@pytest.fixture(scope="session")
def server(engine_args, tmp_path_factory):
    """A server with room for several streams."""
    proc = start_server(
        [*engine_args, "--max-slots", "4", "--max-queue", "8"], tmp_path_factory.mktemp("voices")
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def small_server(engine_args, tmp_path_factory):
    """One slot, one queue place and a 1 MiB upload limit: for queueing, `busy` and oversized uploads."""
    args = [*engine_args, "--max-slots", "1", "--max-queue", "1", "--max-upload-mb", "1"]
    proc = start_server(args, tmp_path_factory.mktemp("voices"))
    yield proc
    proc.stop()
