"""`create_app`: the FastAPI application around one speech engine and one voice library."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from csmstream import __version__
from csmstream.config import Settings
from csmstream.engine.base import SpeechEngine
from csmstream.server import google_tts, health, metrics, openai_speech, tts_ws, voices_api
from csmstream.server.auth import ApiKeyMiddleware, load_api_keys
from csmstream.server.context import ServerContext
from csmstream.server.metrics import ServerMetrics
from csmstream.server.options import ServerOptions

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
    app.state.ctx = ServerContext(
        settings=settings,
        engine=engine,
        voices=voices,
        options=options or ServerOptions(),
        metrics=ServerMetrics(),
    )
    for module in (health, metrics, tts_ws, openai_speech, google_tts, voices_api):
        app.include_router(module.router)
    _mount_web_demo(app)

    # middleware added last runs first: CORS answers preflights before the key check
    api_keys = load_api_keys(settings)
    if api_keys:
        app.add_middleware(ApiKeyMiddleware, keys=api_keys)
    origins = [origin.strip() for origin in settings.allowed_origins.split(",") if origin.strip()]
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["*"], allow_headers=["*"])
    return app


def _mount_web_demo(app: FastAPI) -> None:
    """Serve the static web demo (csmstream/web) at /web/ when it is installed."""
    web_dir = resources.files("csmstream") / "web"
    if not (web_dir / "index.html").is_file():
        return
    app.mount("/web", StaticFiles(directory=str(web_dir), html=True), name="web")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/web/")
