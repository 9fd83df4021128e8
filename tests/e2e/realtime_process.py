"""Real processes for the realtime tests: the speech server (`csmstream serve`) and
an OpenAI-compatible LLM server (`python -m llama_cpp.server` with the bundled SmolLM2-135M-Instruct GGUF)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from serve_process import STARTUP_TIMEOUT_S, ServeProcess, start_serve


class Process(ServeProcess):
    @property
    def realtime_url(self) -> str:
        return "ws" + self.url[len("http") :] + "/v1/realtime"


def start_speech_server(args: list[str], voices_dir: Path, env: dict[str, str]) -> Process:
    """`csmstream serve --port 0 ARGS` with `env` added (settings come from `CSMSTREAM_*` too)."""
    return start_serve(Process, args, voices_dir, env=env, name="the speech server")


def start_llm_server(gguf_path: str, port: int, log_path: Path) -> Process:
    """llama.cpp's OpenAI-compatible server on loopback; returns once `/v1/models` answers."""
    # The GGUF carries its chat template. Two threads: the test machine has two cores. By default a new
    # request interrupts the one streaming; conversations running at once must queue instead.
    command = [sys.executable, "-m", "llama_cpp.server", "--model", gguf_path]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--n_threads", "2"]
    command += ["--interrupt_requests", "False"]
    # Its log goes to a file: it writes more than a pipe holds, and an unread pipe would stall it.
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    server = Process(process, url=f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.url}/v1/models", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"llama_cpp.server did not start in time: {log_path.read_text()[-2000:]}")
        time.sleep(0.2)
