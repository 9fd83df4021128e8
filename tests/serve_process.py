"""A real `csmstream serve` process on loopback, shared by the test folders that talk to the real server
(server, clients, web, e2e) and by the server benchmark."""

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
from typing import TypeVar

import httpx

LISTENING = re.compile(r"csmstream: listening on (http://\S+)")
STARTUP_TIMEOUT_S = 120.0


@dataclass
class ServeProcess:
    process: subprocess.Popen
    url: str = ""  # http://127.0.0.1:PORT
    log_lines: list[str] = field(default_factory=list)

    def health(self) -> dict:
        """/health's JSON whatever its status code (503 while starting, draining or unhealthy)."""
        response = httpx.get(self.url + "/health", timeout=10)
        if response.status_code not in (200, 503):
            response.raise_for_status()
        return response.json()

    def wait_ready(self, timeout_s: float) -> dict:
        """/health once the engine has left `starting` (warm-up done); the last reading at the deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            health = self.health()
            if health["status"] != "starting" or time.monotonic() > deadline:
                return health
            time.sleep(0.05)

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


ProcessT = TypeVar("ProcessT", bound=ServeProcess)


def start_serve(
    process_class: type[ProcessT],
    args: list[str],
    voices_dir: Path,
    env: dict[str, str] | None = None,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
    name: str = "the server",
    program: list[str] | None = None,
) -> ProcessT:
    """Spawn `csmstream serve --port 0 ARGS` with `env` added and read the address it prints; raise with its
    log if it never does. `process_class` lets each test folder add its own helpers to the handle.
    `program` replaces `python -m csmstream.cli` (a script that patches something, then runs the CLI)."""
    program = program or [sys.executable, "-m", "csmstream.cli"]
    command = [*program, "serve", "--port", "0", "--host", "127.0.0.1"]
    command += ["--voices-dir", str(voices_dir), "--log-level", "warning", *args]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env, bufsize=1
    )
    server = process_class(process)
    found: queue.Queue[str] = queue.Queue()

    def pump() -> None:  # keep reading so the server never blocks on a full pipe
        assert process.stdout is not None, "stdout is piped"
        for line in process.stdout:
            server.log_lines.append(line)
            match = LISTENING.search(line)
            if match:
                found.put(match.group(1))

    threading.Thread(target=pump, daemon=True, name="serve-log").start()
    deadline = time.monotonic() + startup_timeout_s
    while time.monotonic() < deadline:
        try:
            server.url = found.get(timeout=0.2)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        # listening; requests sent now would queue until the engine has warmed up: wait for that too
        health = server.wait_ready(max(1.0, deadline - time.monotonic()))
        if health["status"] != "starting":
            return server
        break
    server.stop()
    raise RuntimeError(f"{name} did not start: {' '.join(command)}\n{server.log()}")


def start_server(
    args: list[str],
    voices_dir: Path,
    env: dict[str, str] | None = None,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
) -> ServeProcess:
    """`start_serve` with the plain handle."""
    return start_serve(ServeProcess, args, voices_dir, env=env, startup_timeout_s=startup_timeout_s)
