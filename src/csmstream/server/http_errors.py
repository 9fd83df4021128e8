"""HTTP errors raised outside our endpoints (no route, wrong method, a body over the limit) in the error shape
of the API the path belongs to: Google's for `/v1/text:synthesize`, OpenAI's for every other `/v1/*` path,
FastAPI's `{"detail": ...}` elsewhere (the demo pages, /health, /metrics)."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from csmstream.server.google_tts import GOOGLE_PATH, google_error
from csmstream.server.openai_speech import openai_error

# the `code` of an OpenAI-shaped error for these statuses
_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def error_for_path(
    path: str, status_code: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    if path == GOOGLE_PATH:
        response = google_error(status_code, message)
    elif path.startswith("/v1/"):
        response = openai_error(status_code, message, _CODES.get(status_code, "http_error"))
    else:
        response = JSONResponse({"detail": message}, status_code=status_code)
    response.headers.update(headers or {})
    return response


def install_http_error_handlers(app: FastAPI) -> None:
    """404, 405 (and any other `HTTPException`) on `/v1/*` in the API's own error shape."""

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException), "registered for HTTPException only"
        path = request.url.path
        if not path.startswith("/v1/"):
            return await http_exception_handler(request, exc)
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if message == HTTPStatus(exc.status_code).phrase:  # Starlette's own "Not Found": say what was asked
            if exc.status_code == 404:
                message = f"no such endpoint: {request.method} {path}"
            elif exc.status_code == 405:
                message = f"method {request.method} is not allowed on {path}"
        return error_for_path(path, exc.status_code, message, dict(exc.headers or {}))

    app.add_exception_handler(StarletteHTTPException, handler)
