"""Real processes for the realtime tests: the speech server (`csmstream serve`) and
an OpenAI-compatible LLM server (`python -m llama_cpp.server` with the Gemma 3 270M GGUF)."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

LISTENING = re.compile(r"csmstream: listening on (http://\S+)")
STARTUP_TIMEOUT_S = 120.0


@dataclass
class Process:
    process: subprocess.Popen
    url: str = ""  # http://127.0.0.1:PORT
    log_lines: list[str] = field(default_factory=list)

    @property
    def realtime_url(self) -> str:
        return "ws" + self.url[len("http") :] + "/v1/realtime"

    def health(self) -> dict:
        response = httpx.get(self.url + "/health", timeout=10)
        response.raise_for_status()
        return response.json()

    def wait_idle(self, timeout_s: float = 20.0) -> dict:
        """/health once no request holds a slot or waits; the last reading if that never happens."""
        deadline = time.monotonic() + timeout_s
        while True:
            health = self.health()
            if (health["active_sessions"] == 0 and health["queued"] == 0) or time.monotonic() > deadline:
                return health
            time.sleep(0.05)

    def log(self) -> str:
        return "".join(self.log_lines[-80:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def start_speech_server(args: list[str], voices_dir: Path, env: dict[str, str]) -> Process:
    """`csmstream serve --port 0 ARGS` with `env` added (settings come from `CSMSTREAM_*` too)."""
    command = [sys.executable, "-m", "csmstream.cli", "serve", "--port", "0", "--host", "127.0.0.1"]
    command += ["--voices-dir", str(voices_dir), "--log-level", "warning", *args]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env, bufsize=1
    )
    server = Process(process)
    found: queue.Queue[str] = queue.Queue()

    def pump() -> None:  # keep reading so the server never blocks on a full pipe
        assert process.stdout is not None, "stdout is piped"
        for line in process.stdout:
            server.log_lines.append(line)
            match = LISTENING.search(line)
            if match:
                found.put(match.group(1))

    threading.Thread(target=pump, daemon=True, name="server-log").start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            server.url = found.get(timeout=0.2)
            return server
        except queue.Empty:
            if process.poll() is not None:
                break
    server.stop()
    raise RuntimeError(f"the speech server did not start: {' '.join(command)}\n{server.log()}")


def start_llm_server(gguf_path: str, port: int, log_path: Path) -> Process:
    """llama.cpp's OpenAI-compatible server on loopback; returns once `/v1/models` answers."""
    # The GGUF carries no chat template: name gemma's. Two threads: the test machine has two cores. By default
    # a new request interrupts the one streaming; conversations running at once must queue instead.
    command = [sys.executable, "-m", "llama_cpp.server", "--model", gguf_path, "--chat_format", "gemma"]
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
