"""`SpeechReplica`: one Ray Serve replica = one speech engine + the usual FastAPI app (`server/app.py`).

The replica builds everything in its own process, as `csmstream serve` does: `Settings` from the `CSMSTREAM_*`
environment (which `deployment.py` hands every replica through `runtime_env`), the voice library from the
shared `voices_dir`, the engine, the app. Ray Serve runs the app's lifespan (engine start and stop) and passes
it every HTTP request and WebSocket that its router sends here, so the protocols are the single server's.

What Ray Serve calls besides the app:
- `record_routing_stats`: the engine's headroom, for `router.HeadroomRouter`;
- `record_autoscaling_stats`: its streams and capacity, for `autoscale.streams_policy`;
- `check_health`: fails once the engine is `unhealthy` (a persistent device error), so Ray replaces the
  replica, as a supervisor restarts a failed `csmstream serve`.

Each HTTP response carries `x-csmstream-replica` (which replica answered); `/health` responses also carry
`x-csmstream-pid` (the replica's process) for operators and tests.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ray import serve

from csmstream.scale.autoscale import autoscaling_stats
from csmstream.scale.headroom import replica_stats

log = logging.getLogger(__name__)

REPLICA_HEADER = b"x-csmstream-replica"
PID_HEADER = b"x-csmstream-pid"


class ReplicaHeaders:
    """Pure ASGI middleware: name the replica on every HTTP response, and its pid on `/health*`."""

    def __init__(self, app, replica: str) -> None:
        self.app = app
        self.replica = replica.encode()
        self.pid = str(os.getpid()).encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [(REPLICA_HEADER, self.replica)]
        if scope.get("path", "").startswith("/health"):
            extra.append((PID_HEADER, self.pid))

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _replica_name() -> str:
    try:
        return serve.get_replica_context().replica_id.unique_id
    except Exception:  # outside a replica (unit tests): the process stands for it
        return f"pid-{os.getpid()}"


@serve.ingress()
class SpeechReplica:
    def __init__(self, server_options: dict[str, Any] | None = None, log_level: str = "info") -> None:
        from csmstream.config import Settings
        from csmstream.engine.factory import build_engine
        from csmstream.pipeline.llm.default_model import with_default_llm
        from csmstream.server.app import create_app
        from csmstream.server.log_redaction import install_log_redaction
        from csmstream.server.options import ServerOptions
        from csmstream.voices.library import VoiceLibrary

        logging.getLogger("csmstream").setLevel(log_level.upper())
        install_log_redaction()
        settings, llm_line = with_default_llm(Settings())
        self.replica = _replica_name()
        log.info("replica %s (pid %d): %s", self.replica, os.getpid(), llm_line)
        voices = VoiceLibrary(settings.resolved_voices_dir())
        self.engine = build_engine(settings, voices)
        self.fatal: list[str] = []
        self.engine.on_fatal = self.fatal.append  # from the engine's thread; check_health reads it
        app = create_app(settings, self.engine, voices, ServerOptions(**(server_options or {})))
        app.add_middleware(ReplicaHeaders, replica=self.replica)
        self._app = app

    def __serve_build_asgi_app__(self):
        return self._app

    def record_routing_stats(self) -> dict[str, Any]:
        return replica_stats(self.engine, self.replica)

    def record_autoscaling_stats(self) -> dict[str, float]:
        return autoscaling_stats(replica_stats(self.engine, self.replica))

    def check_health(self) -> None:
        if self.fatal or self.engine.status == "unhealthy":
            reason = self.fatal[0] if self.fatal else "the engine reports unhealthy"
            raise RuntimeError(f"speech engine failed on replica {self.replica}: {reason}")
