"""A real `csmstream serve` process on loopback, for the browser tests."""

from __future__ import annotations

from pathlib import Path

import httpx

from serve_process import ServeProcess, start_serve


class WebServer(ServeProcess):
    def get(self, path: str, **kwargs) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kwargs)


def start_web_server(
    args: list[str], voices_dir: Path, env: dict[str, str] | None = None, startup_timeout_s: float = 120.0
) -> WebServer:
    """Spawn the server with `--port 0` and read the address it prints; raise with its log if it never does."""
    return start_serve(WebServer, args, voices_dir, env=env, startup_timeout_s=startup_timeout_s)
