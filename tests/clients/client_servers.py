"""Real `csmstream serve` processes on loopback for the client tests (the clients talk to the real thing)."""

from __future__ import annotations

import socket
from pathlib import Path

from serve_process import ServeProcess, start_serve

API_KEY = "client-test-key"  # the piper test server wants it

Server = ServeProcess


def start_server(
    args: list[str], voices_dir: Path, env: dict[str, str] | None = None, timeout_s: float = 120.0
) -> Server:
    """Spawn `csmstream serve --port 0 ARGS` and wait for the address it announces."""
    return start_serve(Server, args, voices_dir, env=env, startup_timeout_s=timeout_s)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
