"""Run `csmstream serve` as a real process on loopback, for the server tests and the server benchmark."""

from __future__ import annotations

from pathlib import Path

from serve_process import ServeProcess, start_serve


class ServerProcess(ServeProcess):
    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http") :] + "/v1/tts/stream"


def start_server(
    args: list[str], voices_dir: Path, startup_timeout_s: float = 120.0, env: dict[str, str] | None = None
) -> ServerProcess:
    """Spawn the server with `--port 0`, read the address it prints; raise with its log if it never does."""
    return start_serve(ServerProcess, args, voices_dir, env=env, startup_timeout_s=startup_timeout_s)
