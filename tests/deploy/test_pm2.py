"""deploy/pm2/ecosystem.config.js under a real PM2: the server starts from CSMSTREAM_* variables, PM2 restarts
it after a SIGKILL (a new pid, /health answering again), and a `pm2 stop` with PM2_KILL_SIGNAL=SIGTERM drains
it to exit status 0.

PM2 runs with its own PM2_HOME in a temp folder (its daemon, logs and process list stay there) and is killed
at the end whatever happens. The piper engine: no weights needed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
ECOSYSTEM = REPO / "deploy" / "pm2" / "ecosystem.config.js"
APP = "csmstream-pm2-test"
START_TIMEOUT_S = 120.0  # piper's server imports torch and onnxruntime: ~20 s on 2 busy cores

pytestmark = pytest.mark.skipif(
    shutil.which("pm2") is None, reason="pm2 is not installed (npm install -g pm2)"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _csmstream_bin() -> str:
    beside = Path(sys.executable).parent / "csmstream"  # this interpreter's, e.g. a venv's
    found = str(beside) if beside.exists() else shutil.which("csmstream")
    if not found:
        pytest.skip("the csmstream executable is not installed (pip install -e .)")
    return found


class Pm2:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, timeout_s: float = 60) -> str:
        result = subprocess.run(
            ["pm2", *args], env=self.env, capture_output=True, text=True, timeout=timeout_s, cwd=REPO
        )
        assert result.returncode == 0, f"pm2 {' '.join(args)}: {result.stdout}\n{result.stderr}"
        return result.stdout

    def app(self) -> dict:
        """The app's entry in `pm2 jlist` (pid, status, restart count)."""
        listing = self("jlist")
        apps = json.loads(listing[listing.index("[") :])
        return next(app for app in apps if app["name"] == APP)

    def log(self) -> str:
        home = Path(self.env["PM2_HOME"])
        texts = [path.read_text(errors="replace")[-4000:] for path in sorted(home.rglob("*.log"))]
        return "\n".join(texts)


def _wait_health(url: str, pm2: Pm2, timeout_s: float = START_TIMEOUT_S) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url + "/health", timeout=5)
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"no healthy server at {url} after {timeout_s:.0f} s\n{pm2.log()}")


def _wait_new_pid(pm2: Pm2, old_pid: int, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app = pm2.app()
        if app["pid"] not in (0, old_pid) and app["pm2_env"]["status"] == "online":
            return app
        time.sleep(0.2)
    raise AssertionError(f"PM2 did not restart the server\n{pm2.log()}")


def test_pm2_restarts_a_killed_server_and_stops_it_by_draining(tmp_path):
    port = _free_port()
    program = Path(_csmstream_bin())
    env = {
        **{name: value for name, value in os.environ.items() if name != "CSMSTREAM_BIN"},
        # the ecosystem file's default: `csmstream` found on PATH (CSMSTREAM_BIN would name it instead)
        "PATH": f"{program.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PM2_HOME": str(tmp_path / "pm2"),
        "PM2_KILL_SIGNAL": "SIGTERM",  # read by the PM2 daemon: stops drain (deploy/pm2/ecosystem.config.js)
        "CSMSTREAM_PM2_NAME": APP,
        "CSMSTREAM_DRAIN_TIMEOUT": "5",
        "CSMSTREAM_HOST": "127.0.0.1",
        "CSMSTREAM_PORT": str(port),
        "CSMSTREAM_ENGINE": "piper",
        "CSMSTREAM_VOICES_DIR": str(tmp_path / "voices"),
        "CSMSTREAM_DEFAULT_LLM": "0",
    }
    pm2 = Pm2(env)
    url = f"http://127.0.0.1:{port}"
    try:
        pm2("start", str(ECOSYSTEM))
        health = _wait_health(url, pm2)
        assert health["engine"] == "piper", health
        first = pm2.app()
        assert first["pm2_env"]["status"] == "online", first["pm2_env"]["status"]

        os.kill(first["pid"], signal.SIGKILL)  # as the OOM killer or a crash would
        second = _wait_new_pid(pm2, first["pid"])
        assert second["pm2_env"]["restart_time"] >= 1, second["pm2_env"]["restart_time"]
        assert _wait_health(url, pm2)["status"] == "ok"
        assert httpx.get(url + "/health/ready", timeout=5).json() == {"ready": True, "status": "ok"}

        pm2("stop", APP)  # SIGTERM: the idle server drains at once and exits 0
        assert pm2.app()["pm2_env"]["status"] == "stopped"
        # PM2's own line names SIGINT whatever it sent; the exit status and the server's log tell: a SIGINT
        # would stop uvicorn at once and end the process by that signal, not with status 0
        daemon_log = (tmp_path / "pm2" / "pm2.log").read_text()
        assert f"App [{APP}:0] exited with code [0]" in daemon_log, daemon_log[-3000:]
        assert "draining: new requests are refused" in pm2.log(), pm2.log()
    finally:
        subprocess.run(["pm2", "delete", "all"], env=env, capture_output=True, timeout=60)
        subprocess.run(["pm2", "kill"], env=env, capture_output=True, timeout=60)
