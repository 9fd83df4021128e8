"""Opening a WebSocket (or an HTTP GET) to a csmstream server, and turning every way that can fail into
one sentence that says what happened and what to do (no tracebacks for a server that is not running)."""

from __future__ import annotations

import socket
from typing import Any

from csmstream.clients.errors import AuthenticationFailed, EndpointMissing, ServerUnreachable
from csmstream.clients.server_url import (
    API_KEY_ENV,
    auth_headers,
    http_url,
    is_loopback_url,
    normalize_server_url,
    websocket_url,
)
from csmstream.errors import CsmstreamError

OPEN_TIMEOUT_S = 10.0
# The server's own close codes (server/auth.py, server/tts_ws.py) and the usual RFC 6455 ones.
CLOSE_REASONS = {
    1001: "the server is shutting down",
    1003: "the server refused a message of this client (protocol violation)",
    1008: "the server closed the connection: this client was not reading its audio fast enough",
    1011: "the server hit an internal error",
    4403: "the server does not accept this client's origin (CSMSTREAM_ALLOWED_ORIGINS)",
}
CLOSE_UNAUTHORIZED = 4401


def unreachable_message(server_url: str) -> str:
    return f"no csmstream server at {server_url} — start one with `csmstream serve`"


def key_advice(server_url: str, api_key: str | None) -> str:
    if api_key:
        return f"the server at {server_url} refused the API key"
    return f"the server at {server_url} needs an API key: pass --api-key KEY or set {API_KEY_ENV}"


async def open_websocket(
    server_url: str, path: str, api_key: str | None, open_timeout_s: float = OPEN_TIMEOUT_S
):
    """A connected `websockets` client connection to `path`; a `CsmstreamError` that explains any failure."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException

    base = normalize_server_url(server_url)
    url = websocket_url(base, path)
    try:
        return await connect(
            url,
            additional_headers=auth_headers(api_key),
            open_timeout=open_timeout_s,
            max_size=None,  # audio chunks can be large; the server bounds them
            compression=None,  # PCM does not compress; deflate would only cost CPU
            proxy=None if is_loopback_url(base) else True,
        )
    except InvalidStatus as exc:
        raise _status_error(base, path, exc.response.status_code, api_key) from None
    except InvalidURI as exc:
        raise CsmstreamError(f"not a valid server address: {exc}") from None
    except ConnectionRefusedError:
        raise ServerUnreachable(unreachable_message(base)) from None
    except socket.gaierror as exc:
        raise ServerUnreachable(f"cannot find the host of {base} ({exc.strerror or exc})") from None
    except TimeoutError:
        raise ServerUnreachable(
            f"no answer from {base} within {open_timeout_s:g} s; is the address right?"
        ) from None
    except OSError as exc:
        raise ServerUnreachable(f"cannot connect to {base}: {exc.strerror or exc}") from None
    except WebSocketException as exc:
        raise CsmstreamError(f"{base} did not accept a WebSocket on {path}: {exc}") from None


def _status_error(base: str, path: str, status: int, api_key: str | None) -> CsmstreamError:
    if status == 401:
        return AuthenticationFailed(key_advice(base, api_key))
    if status in (403, 404):
        # Starlette refuses a WebSocket to a route it does not have with 403
        return EndpointMissing(f"the server at {base} has no {path} endpoint (an older csmstream server?)")
    return CsmstreamError(f"the server at {base} refused the connection to {path}: HTTP {status}")


def closed_error(server_url: str, exc: Exception, api_key: str | None) -> CsmstreamError:
    """A `ConnectionClosed` from the server → what it means for the person."""
    received = getattr(exc, "rcvd", None)
    code = received.code if received is not None else None
    if code == CLOSE_UNAUTHORIZED:
        return AuthenticationFailed(key_advice(server_url, api_key))
    if code in CLOSE_REASONS:
        return CsmstreamError(CLOSE_REASONS[code])
    if code is None:
        return ServerUnreachable(f"the connection to {server_url} was lost")
    reason = f": {received.reason}" if received.reason else ""
    return CsmstreamError(f"the server closed the connection (code {code}{reason})")


def get_json(server_url: str, path: str, api_key: str | None, timeout_s: float = OPEN_TIMEOUT_S) -> Any:
    """GET a JSON document from the server, with the same error sentences as `open_websocket`."""
    import httpx

    base = normalize_server_url(server_url)
    try:
        response = httpx.get(
            http_url(base, path),
            headers=auth_headers(api_key),
            timeout=timeout_s,
            trust_env=not is_loopback_url(base),
        )
    except httpx.ConnectError:
        raise ServerUnreachable(unreachable_message(base)) from None
    except httpx.TimeoutException:
        raise ServerUnreachable(f"no answer from {base} within {timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise ServerUnreachable(f"cannot reach {base}: {exc}") from None
    if response.status_code == 401:
        raise AuthenticationFailed(key_advice(base, api_key))
    if response.status_code == 404:
        raise EndpointMissing(f"the server at {base} has no {path} endpoint")
    if response.status_code >= 400:
        raise CsmstreamError(f"GET {path} on {base} failed: HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise CsmstreamError(f"GET {path} on {base} did not return JSON; is it a csmstream server?") from None


def server_voice_ids(server_url: str, api_key: str | None) -> list[str]:
    """The voice ids `GET /v1/voices` lists."""
    document = get_json(server_url, "/v1/voices", api_key)
    voices = document.get("voices") if isinstance(document, dict) else None
    if not isinstance(voices, list):
        raise CsmstreamError("GET /v1/voices returned no `voices` list")
    return [v["id"] for v in voices if isinstance(v, dict) and isinstance(v.get("id"), str)]
