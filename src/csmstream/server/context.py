"""Everything a route needs, hung on `app.state.ctx` by `create_app` (no module-level state)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from csmstream.config import Settings
from csmstream.engine.base import SpeechEngine
from csmstream.server.options import ServerOptions

if TYPE_CHECKING:
    from csmstream.server.metrics import ServerMetrics
    from csmstream.voices.library import VoiceLibrary


@dataclass(frozen=True)
class ServerContext:
    settings: Settings
    engine: SpeechEngine
    voices: VoiceLibrary
    options: ServerOptions
    metrics: ServerMetrics


def server_context(connection: HTTPConnection) -> ServerContext:
    """The context of the app serving this request or WebSocket."""
    return connection.app.state.ctx
