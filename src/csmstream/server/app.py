"""`create_app`: the FastAPI application around one speech engine and one voice library."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from csmstream import __version__
from csmstream.config import Settings
from csmstream.engine.base import SpeechEngine
from csmstream.server import google_tts, health, metrics, openai_speech, realtime, tts_ws, voices_api
from csmstream.server.auth import DEFAULT_PUBLIC_PATHS, install_access_control
from csmstream.server.body_limit import BodyLimitMiddleware
from csmstream.server.context import ServerContext
from csmstream.server.http_errors import install_http_error_handlers
from csmstream.server.metrics import ServerMetrics
from csmstream.server.options import ServerOptions
from csmstream.web import mount_web

if TYPE_CHECKING:
    from csmstream.voices.library import VoiceLibrary


def create_app(
    settings: Settings, engine: SpeechEngine, voices: VoiceLibrary, options: ServerOptions | None = None
) -> FastAPI:
    """The app; the engine is started when the app starts (lifespan) and stopped when it stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await engine.start()
        try:
            yield
        finally:
            await engine.stop()

    app = FastAPI(title="csmstream", version=__version__, lifespan=lifespan)
    options = options or ServerOptions()
    app.state.ctx = ServerContext(
        settings=settings,
        engine=engine,
        voices=voices,
        options=options,
        metrics=ServerMetrics(),
    )
    # request bodies are bounded before any endpoint reads them; 404/405 on /v1/* in the APIs' error shapes
    app.add_middleware(BodyLimitMiddleware, max_bytes=options.max_body_bytes)
    install_http_error_handlers(app)
    for module in (health, metrics, tts_ws, openai_speech, google_tts, voices_api, realtime):
        app.include_router(module.router)
    # after the API routes: the demo takes only its own paths (/, the pages, /assets/*), which stay public
    public_paths = (*DEFAULT_PUBLIC_PATHS, *mount_web(app))
    install_access_control(app, settings, public_paths)
    return app
