"""Processes shared by the realtime end-to-end tests, started once per test session: a real LLM server, the
speech server (tiny CSM checkpoint, the real engine path) wired to it, and one without an LLM."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The spoken test input (piper), the word error rate and a free port come from the pipeline tests' helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))

from realtime_process import start_llm_server, start_speech_server  # noqa: E402

# Each synthesized unit is cut at this length: the tiny random checkpoint never ends an utterance by itself,
# and a second of (noise) speech per unit keeps every answer a few seconds long.
UNIT_MAX_SECONDS = "1.0"
LLM_MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def gguf_path() -> str:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (optional extra)")
    pytest.importorskip("sse_starlette", reason="llama_cpp.server needs llama-cpp-python[server]")
    from csmstream.pipeline.llm import bundled_gguf

    path = bundled_gguf()  # SmolLM2-135M-Instruct, shipped by the llm-model extra
    if path is None:
        pytest.skip("the bundled conversation model is not installed (the llm-model extra)")
    return str(path)


@pytest.fixture(scope="session")
def llm_server(gguf_path, tmp_path_factory):
    from pipeline_helpers import free_port

    server = start_llm_server(gguf_path, free_port(), tmp_path_factory.mktemp("llm") / "llama_server.log")
    yield server
    server.stop()


def _engine_args(checkpoint_dir) -> list[str]:
    return ["--engine", "csm", "--model", str(checkpoint_dir), "--device", "cpu", "--dtype", "float32"]


@pytest.fixture(scope="session")
def realtime_server(llm_server, tiny_checkpoint_dir, tmp_path_factory):
    """The speech server answering with the LLM server; room for several conversations at once."""
    env = {
        "CSMSTREAM_LLM_BASE_URL": llm_server.url + "/v1",
        "CSMSTREAM_LLM_MODEL": LLM_MODEL,
        "CSMSTREAM_DEFAULT_MAX_SECONDS": UNIT_MAX_SECONDS,
    }
    args = [*_engine_args(tiny_checkpoint_dir), "--max-slots", "4", "--max-queue", "8"]
    server = start_speech_server(args, tmp_path_factory.mktemp("voices"), env)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def server_without_llm(tiny_checkpoint_dir, tmp_path_factory):
    """A speech server with no LLM configured (answers must fail with a clear error)."""
    env = {
        "CSMSTREAM_LLM_BASE_URL": "",
        "CSMSTREAM_LLM_GGUF": "",
        "CSMSTREAM_DEFAULT_LLM": "0",  # not the bundled model either
        "CSMSTREAM_DEFAULT_MAX_SECONDS": UNIT_MAX_SECONDS,
    }
    args = [*_engine_args(tiny_checkpoint_dir), "--max-slots", "2"]
    server = start_speech_server(args, tmp_path_factory.mktemp("voices"), env)
    yield server
    server.stop()
