"""Access control: optional API keys, browser origins (CORS), and a warning when exposed without keys.

Off by default. When `Settings.api_keys` / `api_keys_file` hold any key, every HTTP and WebSocket endpoint
except the public paths (`/health` and the static web demo) needs one, presented as
`Authorization: Bearer KEY` (OpenAI clients), `x-api-key` / `x-goog-api-key`, or `?api_key=` / `?key=` in
the URL (browsers cannot set headers on a WebSocket; Google's clients use `?key=`).

A refused HTTP request gets 401 with a JSON error. A refused WebSocket is accepted and at once closed with
code 4401, before any message: a browser only sees close codes, never the HTTP status of a refused
handshake, so this is the one way to tell its user "wrong key" rather than "network error".
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from csmstream.config import Settings
from csmstream.errors import CsmstreamError

logger = logging.getLogger(__name__)

# 4000-4999 are for applications (RFC 6455 §7.4.2); these mirror HTTP 401 and 403
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
DEFAULT_PUBLIC_PATHS = ("/health",)
KEY_HEADERS = ("x-api-key", "x-goog-api-key")
KEY_QUERY_PARAMS = ("api_key", "key")


def load_api_keys(settings: Settings) -> set[str]:
    """The keys from `api_keys` (comma-separated) and `api_keys_file` (one a line, `#` comments); empty: off."""
    keys = {key.strip() for key in settings.api_keys.split(",") if key.strip()}
    if settings.api_keys_file is not None:
        path = Path(settings.api_keys_file).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise CsmstreamError(f"cannot read the API keys file {path}: {exc.strerror or exc}") from None
        keys |= {line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")}
        if not keys:
            # an empty file would silently turn authentication off: refuse, the operator meant to turn it on
            raise CsmstreamError(f"the API keys file {path} holds no key")
    return keys


def allowed_origins(settings: Settings) -> list[str]:
    """`allowed_origins` as a list; `["*"]` allows every origin."""
    return [origin.strip().rstrip("/") for origin in settings.allowed_origins.split(",") if origin.strip()]


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or a wildcard such as "" resolves to who knows what: assume exposed


def warn_if_exposed(host: str, keys: Iterable[str]) -> bool:
    """Log a warning when the server listens beyond this machine with no key; True when it warned."""
    if is_loopback(host) or any(True for _ in keys):
        return False
    logger.warning(
        "listening on %s without API keys: anyone who can reach this address can use the server "
        "(set CSMSTREAM_API_KEYS or CSMSTREAM_API_KEYS_FILE)",
        host or "all addresses",
    )
    return True


def presented_key(scope: Scope) -> str | None:
    """The key a request carries, from its headers first, then its query string; None when it has none."""
    headers = Headers(scope=scope)
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    for name in KEY_HEADERS:
        if headers.get(name, "").strip():
            return headers[name].strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    for name in KEY_QUERY_PARAMS:
        if query.get(name):
            return query[name][0]
    return None


def _digest(key: str) -> bytes:
    # comparing fixed-length digests keeps even a key's length out of the timing
    return hashlib.sha256(key.encode("utf-8")).digest()


class PathMatcher:
    """Exact paths, and prefixes written with a trailing `*` (`/assets/*` matches `/assets/app.js`)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        patterns = tuple(patterns)
        self.exact = frozenset(p for p in patterns if not p.endswith("*"))
        self.prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))

    def __call__(self, path: str) -> bool:
        return path in self.exact or any(path.startswith(prefix) for prefix in self.prefixes)


class ApiKeyMiddleware:
    """Pure ASGI middleware: HTTP and WebSocket requests outside `public_paths` must carry a known key."""

    def __init__(
        self, app: ASGIApp, keys: Iterable[str], public_paths: Iterable[str] = DEFAULT_PUBLIC_PATHS
    ) -> None:
        self.app = app
        self.key_digests = tuple(_digest(key) for key in keys)
        assert self.key_digests, "ApiKeyMiddleware needs at least one key (leave it out to turn keys off)"
        self.is_public = PathMatcher(public_paths)

    def allows(self, scope: Scope) -> bool:
        key = presented_key(scope)
        if key is None:
            return False
        digest = _digest(key)
        # look at every known key, so the time taken tells nothing about which one matched
        matches = [hmac.compare_digest(digest, known) for known in self.key_digests]
        return any(matches)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or self.is_public(scope["path"]) or self.allows(scope):
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            await refuse_websocket(receive, send, CLOSE_UNAUTHORIZED, "missing or invalid API key")
            return
        if scope.get("method") == "OPTIONS":  # a CORS preflight never carries credentials
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


class WebSocketOriginMiddleware:
    """Browsers apply no CORS to WebSockets, so any page could open one to this server with its visitor's
    network position. This refuses (close 4403) a handshake whose `Origin` is neither allowed nor this
    server itself. Clients that send no `Origin` (not browsers) pass."""

    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        self.app = app
        self.origins = frozenset(origin.rstrip("/").lower() for origin in origins)

    def allows(self, scope: Scope) -> bool:
        if "*" in self.origins:
            return True
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            return True
        origin = origin.rstrip("/").lower()
        same_host = urlsplit(origin).netloc == headers.get("host", "").lower()
        return same_host or origin in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket" or self.allows(scope):
            await self.app(scope, receive, send)
            return
        await refuse_websocket(receive, send, CLOSE_FORBIDDEN_ORIGIN, "origin not allowed")


async def refuse_websocket(receive: Receive, send: Send, code: int, reason: str) -> None:
    """Accept, then close with `code` before anything else is sent (see the module docstring for why)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return  # the client already left
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": code, "reason": reason})


def install_access_control(
    app, settings: Settings, public_paths: Iterable[str] = DEFAULT_PUBLIC_PATHS
) -> set[str]:
    """Add keys (when configured), the WebSocket origin check and CORS to a Starlette/FastAPI app; warn when
    listening beyond loopback without keys. Returns the keys (empty: authentication is off).

    Call it after the routes are in place. Middleware added last runs first, so CORS is outermost: it
    answers preflights and also labels 401 responses, which lets a page on another origin read them."""
    from starlette.middleware.cors import CORSMiddleware

    keys = load_api_keys(settings)
    if keys:
        app.add_middleware(ApiKeyMiddleware, keys=keys, public_paths=tuple(public_paths))
    origins = allowed_origins(settings)
    app.add_middleware(WebSocketOriginMiddleware, origins=origins)
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["*"],
        )
    warn_if_exposed(settings.host, keys)
    return keys
