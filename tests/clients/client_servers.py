"""Real `csmstream serve` processes on loopback for the client tests (the clients talk to the real thing)."""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

API_KEY = "client-test-key"  # the piper test server wants it
LISTENING = re.compile(r"csmstream: listening on (http://\S+)")


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_lines: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def start_server(
    args: list[str], voices_dir: Path, env: dict[str, str] | None = None, timeout_s: float = 120.0
) -> Server:
    """Spawn `csmstream serve --port 0 ARGS` and wait for the address it announces."""
    command = [sys.executable, "-m", "csmstream.cli", "serve", "--port", "0", "--host", "127.0.0.1"]
    command += ["--voices-dir", str(voices_dir), "--log-level", "warning", *args]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env, bufsize=1
    )
    server = Server(url="", process=process)
    found: queue.Queue[str] = queue.Queue()

    def pump() -> None:  # keep reading so the server never blocks on a full pipe
        assert process.stdout is not None, "stdout is piped"
        for line in process.stdout:
            server.log_lines.append(line)
            match = LISTENING.search(line)
            if match:
                found.put(match.group(1))

    threading.Thread(target=pump, daemon=True, name="client-test-server-log").start()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            server.url = found.get(timeout=0.2)
            return server
        except queue.Empty:
            if process.poll() is not None:
                break
    server.stop()
    raise RuntimeError(f"the server did not start: {' '.join(command)}\n{''.join(server.log_lines[-40:])}")


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
