"""`csmstream serve --ray` as a real process: a local Ray instance with CPU (piper) replicas, for tests/scale.

The process is the leader of its own session, so that whatever Ray started under it (GCS, raylet, proxy,
controller, replicas) can be stopped with it even when Ray's own shutdown does not finish."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

LISTENING = re.compile(r"csmstream: listening on (http://\S+)")


@dataclass
class RayServe:
    process: subprocess.Popen
    url: str = ""
    log_lines: list[str] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http") :] + "/v1/tts/stream"

    def health(self) -> tuple[dict, str, int]:
        """/health's JSON, and which replica answered and its pid (from the response headers)."""
        response = httpx.get(self.url + "/health", timeout=10)
        return (
            response.json(),
            response.headers["x-csmstream-replica"],
            int(response.headers["x-csmstream-pid"]),
        )

    def replicas(self, tries: int = 40) -> dict[str, int]:
        """Replica id → pid of the healthy replicas that answered `tries` /health requests."""
        seen = {}
        for _ in range(tries):
            try:
                body, replica, pid = self.health()
            except (httpx.HTTPError, KeyError):
                continue
            if body.get("status") == "ok":
                seen[replica] = pid
        return seen

    def log(self) -> str:
        return "".join(self.log_lines[-120:])

    def stop(self) -> None:
        """SIGTERM (the command deletes the app and stops Ray), then whatever is left of the session."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # our own session only: Ray processes left behind
        except (ProcessLookupError, PermissionError):
            pass
        if self.process.poll() is None:
            self.process.wait(timeout=15)


def start_ray_serve(
    args: list[str], voices_dir: Path, env: dict[str, str] | None = None, startup_timeout_s: float = 240.0
) -> RayServe:
    command = [sys.executable, "-m", "csmstream.cli", "serve", "--ray", "--port", "0", "--host", "127.0.0.1"]
    command += ["--voices-dir", str(voices_dir), "--log-level", "warning", *args]
    full_env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "RAY_USAGE_STATS_ENABLED": "0",  # nothing leaves the machine
        **(env or {}),
    }
    full_env.pop("RAY_ADDRESS", None)  # always a local instance of our own
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full_env,
        bufsize=1,
        start_new_session=True,
    )
    server = RayServe(process)
    listening = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            server.log_lines.append(line)
            match = LISTENING.search(line)
            if match:
                server.url = match.group(1)
                listening.set()

    threading.Thread(target=pump, daemon=True, name="ray-serve-log").start()
    deadline = time.monotonic() + startup_timeout_s
    while not listening.wait(0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"csmstream serve --ray did not start: {' '.join(command)}\n{server.log()}")
    return server
