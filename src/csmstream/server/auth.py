"""Optional API keys (`Settings.api_keys` / `api_keys_file`): when any key is set, every route except
`/health` needs one. A key may come as `Authorization: Bearer KEY` (the OpenAI clients), `x-api-key`,
`x-goog-api-key` or `?key=` (Google's clients), or `?api_key=` (browsers cannot set WebSocket headers).
A refused HTTP request gets 401; a refused WebSocket is closed before it is accepted (HTTP 403)."""

from __future__ import annotations

import hmac
from pathlib import Path
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from csmstream.config import Settings
from csmstream.errors import CsmstreamError

OPEN_PATHS = frozenset({"/health"})


def load_api_keys(settings: Settings) -> frozenset[str]:
    keys = {key.strip() for key in settings.api_keys.split(",") if key.strip()}
    if settings.api_keys_file is not None:
        path = Path(settings.api_keys_file).expanduser()
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise CsmstreamError(f"cannot read the API keys file {path}: {exc}") from exc
        keys |= {line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")}
    return frozenset(keys)


def presented_key(scope: Scope) -> str | None:
    headers = Headers(scope=scope)
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    for name in ("x-api-key", "x-goog-api-key"):
        if headers.get(name):
            return headers[name].strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    for name in ("api_key", "key"):
        if query.get(name):
            return query[name][0]
    return None


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, keys: frozenset[str]) -> None:
        assert keys, "ApiKeyMiddleware needs at least one key"
        self.app = app
        self.keys = tuple(key.encode() for key in keys)

    def _allowed(self, scope: Scope) -> bool:
        key = presented_key(scope)
        if key is None:
            return False
        # compare against every key in constant time, so timing tells nothing about which keys exist
        matches = [hmac.compare_digest(key.encode(), known) for known in self.keys]
        return any(matches)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "missing or invalid API key"})
            return
        if scope.get("method") == "OPTIONS":  # CORS preflight carries no credentials
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            {
                "error": {
                    "code": "unauthorized",
                    "message": "missing or invalid API key",
                    "type": "invalid_api_key",
                }
            },
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)
