"""A real `csmstream serve` process on loopback, for the browser tests."""

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


@dataclass
class WebServer:
    url: str  # http://127.0.0.1:PORT
    process: subprocess.Popen
    log_lines: list[str] = field(default_factory=list)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kwargs)

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


def start_web_server(
    args: list[str], voices_dir: Path, env: dict[str, str] | None = None, startup_timeout_s: float = 120.0
) -> WebServer:
    """Spawn the server with `--port 0` and read the address it prints; raise with its log if it never does."""
    command = [sys.executable, "-m", "csmstream.cli", "serve", "--port", "0", "--host", "127.0.0.1"]
    command += ["--voices-dir", str(voices_dir), "--log-level", "warning", *args]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env, bufsize=1
    )
    server = WebServer(url="", process=process)
    found: queue.Queue[str] = queue.Queue()

    def pump() -> None:  # keep reading so the server never blocks on a full pipe
        assert process.stdout is not None, "stdout is piped"
        for line in process.stdout:
            server.log_lines.append(line)
            match = LISTENING.search(line)
            if match:
                found.put(match.group(1))

    threading.Thread(target=pump, daemon=True, name="web-server-log").start()
    deadline = time.monotonic() + startup_timeout_s
    while time.monotonic() < deadline:
        try:
            server.url = found.get(timeout=0.2)
            return server
        except queue.Empty:
            if process.poll() is not None:
                break
    server.stop()
    raise RuntimeError(f"the server did not start: {' '.join(command)}\n{server.log()}")
