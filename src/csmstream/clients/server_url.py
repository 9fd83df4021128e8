"""Server addresses as people type them (`127.0.0.1:8000`, `http://host:8000/`, `ws://...`) → the URLs
of its endpoints, and the API key that goes with them."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from csmstream.errors import BadRequest

API_KEY_ENV = "CSMSTREAM_API_KEY"
DEFAULT_SERVER_URL = "http://127.0.0.1:8000"
_TO_HTTP = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def normalize_server_url(url: str) -> str:
    """`host:port`, `http(s)://…` or `ws(s)://…` → `http(s)://host:port[/prefix]` without a trailing slash."""
    url = url.strip()
    if not url:
        raise BadRequest("the server address is empty; e.g. --server http://127.0.0.1:8000")
    if "://" not in url:
        url = "http://" + url
    scheme, rest = url.split("://", 1)
    http_scheme = _TO_HTTP.get(scheme.lower())
    if http_scheme is None:
        raise BadRequest(f"a server address starts with http://, https://, ws:// or wss://, got {url!r}")
    normalized = f"{http_scheme}://{rest}".rstrip("/")
    if not urlsplit(normalized).hostname:
        raise BadRequest(f"no host in the server address {url!r}")
    return normalized


def http_url(server_url: str, path: str) -> str:
    return normalize_server_url(server_url) + path


def websocket_url(server_url: str, path: str) -> str:
    """The ws(s):// URL of `path` on the server (a TLS server gets wss)."""
    base = normalize_server_url(server_url)
    return ("wss" if base.startswith("https://") else "ws") + base[base.index("://") :] + path


def is_loopback_url(server_url: str) -> bool:
    """True for this machine's addresses: no proxy should stand between us and them."""
    host = urlsplit(normalize_server_url(server_url)).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_api_key(flag_value: str | None, environ: Mapping[str, str]) -> str | None:
    """`--api-key`, else `CSMSTREAM_API_KEY`; None when neither is set (the server may not need one)."""
    key = flag_value if flag_value is not None else environ.get(API_KEY_ENV)
    key = key.strip() if key else ""
    return key or None


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}
