"""Access control: optional API keys, browser origins (CORS and WebSockets), and a warning when exposed
without keys.

Keys are off by default. When `Settings.api_keys` / `api_keys_file` hold any key, every HTTP and WebSocket
endpoint except the public paths (`/health`, its probes and the static web demo) needs one, presented as
`Authorization: Bearer KEY` (OpenAI clients), `x-api-key` / `x-goog-api-key`, on a WebSocket as the
subprotocol `csmstream.bearer.KEY` (what browsers should use: they cannot set headers on a WebSocket, and a
URL ends up in logs; offer `csmstream` beside it and the server selects that one), or `?api_key=` / `?key=`
in the URL (kept for older clients; Google's clients use `?key=`; access logs redact it).

Browsers are held to their origin whatever the keys (`OriginPolicy`): a request that carries an `Origin`
(every browser WebSocket, every cross-origin or non-GET fetch) is served only for a loopback page
(http://127.0.0.1:*, http://localhost:*, http://[::1]:*), this server's own pages, `public_url`, and the
origins in `allowed_origins` (`*`: any). "This server's own pages" means the `Origin` names the `Host` the
request was sent to, and that `Host` is one a DNS-rebinding page cannot choose: an IP address, localhost,
the bound host name, `public_url`'s host or an allowed origin's host. A browser request (`is_browser`: one
with `Origin`, `Sec-Fetch-Site` or a `Mozilla/` user agent) to any other `Host` is refused. Clients that are
no browsers (curl, the Python clients, the OpenAI SDK) send none of these and may name any host. A page
that can change its fetch()'s user agent (Firefox allows it) may still read GET answers through a rebound
name: API keys are the protection against that.

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
DEFAULT_PUBLIC_PATHS = ("/health", "/health/ready", "/health/live")
KEY_HEADERS = ("x-api-key", "x-goog-api-key")
KEY_QUERY_PARAMS = ("api_key", "key")
# WebSocket subprotocols: a browser offers ["csmstream", "csmstream.bearer.KEY"]; the server selects "csmstream"
SUBPROTOCOL = "csmstream"
BEARER_SUBPROTOCOL_PREFIX = "csmstream.bearer."
# pages served by this machine: any port, http or https
LOOPBACK_ORIGIN_REGEX = r"https?://(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d{1,5})?"
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


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
    """`allowed_origins` as a list, written as browsers write an `Origin`; `["*"]` allows every origin."""
    origins = [origin.strip() for origin in settings.allowed_origins.split(",") if origin.strip()]
    return [
        origin if origin in ("*", "null") else (origin_of(origin) or origin.lower()) for origin in origins
    ]


DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL as a browser's `Origin` says it (lower case, no default port); ""
    when it has none."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.hostname:
        return ""
    try:
        port = parts.port
    except ValueError:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    scheme = parts.scheme.lower()
    suffix = "" if port is None or DEFAULT_PORTS.get(scheme) == port else f":{port}"
    return f"{scheme}://{host}{suffix}"


def _hostname(netloc: str) -> str | None:
    """The host name of `host[:port]` (brackets off an IPv6 address), lower case; None when malformed."""
    try:
        parts = urlsplit("//" + netloc.strip())
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return None
    return parts.hostname


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def is_loopback_origin(origin: str) -> bool:
    """http(s)://127.0.0.1:*, http(s)://localhost:*, http(s)://[::1]:*: pages served by this very machine."""
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and is_loopback(parts.hostname)


def is_browser(headers: Headers) -> bool:
    """A browser sends `Origin` on every WebSocket and every non-GET or cross-origin fetch, `Sec-Fetch-Site`
    to secure and loopback hosts, and a `Mozilla/` user agent on all of them (the one sign a same-origin
    GET over plain http to a rebound name carries). curl, httpx, the OpenAI SDK and websockets send none."""
    return (
        "origin" in headers
        or "sec-fetch-site" in headers
        or headers.get("user-agent", "").startswith("Mozilla/")
    )


class OriginPolicy:
    """Which browser requests are served: see the module docstring."""

    def __init__(self, settings: Settings) -> None:
        origins = allowed_origins(settings)
        self.any_origin = "*" in origins
        self.public_origin = origin_of(settings.public_url)
        self.origins = frozenset(o for o in origins if o != "*") | (
            {self.public_origin} if self.public_origin else set()
        )
        hosts = {urlsplit(origin).hostname for origin in self.origins}
        bound = settings.host.strip().lower()
        if bound not in WILDCARD_HOSTS:
            hosts.add(bound.strip("[]"))
        self.trusted_hosts = frozenset(host for host in hosts if host)

    def host_trusted(self, host_header: str) -> bool:
        """A `Host` no DNS-rebinding page can have chosen: an IP address, localhost or one configured."""
        host = _hostname(host_header)
        if not host:
            return False
        return _is_ip_address(host) or is_loopback(host) or host in self.trusted_hosts

    def refusal(self, headers: Headers) -> str | None:
        """Why a request with these headers is refused; None when it is served."""
        origin = headers.get("origin")
        if self.any_origin or not is_browser(headers):
            return None  # opened to every page, or no browser at all (curl, the Python clients)
        if origin is not None and origin.rstrip("/").lower() in self.origins:
            return None
        host = headers.get("host", "")
        if not self.host_trusted(host):
            return (
                f"host {host!r} not allowed for browsers (set CSMSTREAM_PUBLIC_URL to the URL browsers use "
                "to reach this server)"
            )
        if origin is None:
            return None  # a same-origin GET: browsers send no Origin, and the Host is trusted
        origin = origin.rstrip("/").lower()
        if is_loopback_origin(origin) or urlsplit(origin).netloc == host.strip().lower():
            return None
        return f"origin {origin!r} not allowed (CSMSTREAM_ALLOWED_ORIGINS)"


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
    if scope["type"] == "websocket":
        for protocol in scope.get("subprotocols") or ():
            if protocol.startswith(BEARER_SUBPROTOCOL_PREFIX) and len(protocol) > len(
                BEARER_SUBPROTOCOL_PREFIX
            ):
                return protocol[len(BEARER_SUBPROTOCOL_PREFIX) :]
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


class BrowserOriginMiddleware:
    """Browsers apply no CORS to WebSockets, and CORS does not stop a cross-origin POST from being sent, so
    any page could drive this server with its visitor's network position. This refuses a browser request
    that `OriginPolicy` refuses: a WebSocket with close 4403 (before any message), HTTP with 403. The public
    paths (the web demo, /health) are static or harmless and stay open; CORS alone governs their reading."""

    def __init__(self, app: ASGIApp, policy: OriginPolicy, public_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.policy = policy
        self.is_public = PathMatcher(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or (kind == "http" and self.is_public(scope["path"])):
            await self.app(scope, receive, send)
            return
        reason = self.policy.refusal(Headers(scope=scope))
        if reason is None:
            await self.app(scope, receive, send)
            return
        logger.warning("refused a browser request to %s: %s", scope["path"], reason)
        if kind == "websocket":
            await refuse_websocket(receive, send, CLOSE_FORBIDDEN_ORIGIN, "origin not allowed")
            return
        response = JSONResponse(
            {"error": {"code": "forbidden_origin", "message": reason, "type": "forbidden_origin"}},
            status_code=403,
        )
        await response(scope, receive, send)


class WebSocketSubprotocolMiddleware:
    """Selects `csmstream` (else the offered `csmstream.bearer.KEY`) when a client offers it: a browser that
    offered subprotocols fails a handshake whose answer selects none. The handlers need not know."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        offered = (scope.get("subprotocols") or []) if scope["type"] == "websocket" else []
        choice = SUBPROTOCOL if SUBPROTOCOL in offered else None
        choice = choice or next((p for p in offered if p.startswith(BEARER_SUBPROTOCOL_PREFIX)), None)
        if choice is None:
            await self.app(scope, receive, send)
            return

        async def send_selecting(message) -> None:
            if message["type"] == "websocket.accept" and not message.get("subprotocol"):
                message = {**message, "subprotocol": choice}
            await send(message)

        await self.app(scope, receive, send_selecting)


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
    """Add keys (when configured), the browser origin check, CORS and the WebSocket subprotocol to a
    Starlette/FastAPI app; warn when listening beyond loopback without keys. Returns the keys (empty:
    authentication is off).

    Call it after the routes are in place. Middleware added last runs first, so CORS is outermost for HTTP
    (the subprotocol one only touches WebSockets): it answers preflights and also labels 401 responses, which lets a page on an allowed origin read them."""
    from starlette.middleware.cors import CORSMiddleware

    public_paths = tuple(public_paths)
    keys = load_api_keys(settings)
    if keys:
        app.add_middleware(ApiKeyMiddleware, keys=keys, public_paths=public_paths)
    policy = OriginPolicy(settings)
    app.add_middleware(BrowserOriginMiddleware, policy=policy, public_paths=public_paths)
    cors = (
        {"allow_origins": ["*"]}
        if policy.any_origin
        else {
            "allow_origins": sorted(policy.origins),
            "allow_origin_regex": LOOPBACK_ORIGIN_REGEX,
        }
    )
    app.add_middleware(CORSMiddleware, **cors, allow_methods=["*"], allow_headers=["*"], expose_headers=["*"])
    app.add_middleware(WebSocketSubprotocolMiddleware)
    warn_if_exposed(settings.host, keys)
    return keys
