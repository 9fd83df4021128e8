"""Server addresses as typed → endpoint URLs; the API key's sources."""

from __future__ import annotations

import pytest

from csmstream.clients.server_url import (
    auth_headers,
    is_loopback_url,
    normalize_server_url,
    resolve_api_key,
    websocket_url,
)
from csmstream.errors import BadRequest


@pytest.mark.parametrize(
    ("typed", "normalized"),
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("ws://host:1", "http://host:1"),
        ("WSS://host/speech/", "https://host/speech"),
        ("  https://host  ", "https://host"),
    ],
)
def test_normalize_server_url(typed, normalized):
    assert normalize_server_url(typed) == normalized


@pytest.mark.parametrize("bad", ["", "ftp://host", "http://"])
def test_bad_addresses_are_refused(bad):
    with pytest.raises(BadRequest):
        normalize_server_url(bad)


def test_websocket_url_keeps_tls_and_prefix():
    assert websocket_url("http://h:1", "/v1/tts/stream") == "ws://h:1/v1/tts/stream"
    assert websocket_url("https://h/proxy/", "/v1/realtime") == "wss://h/proxy/v1/realtime"


def test_loopback_detection():
    assert (
        is_loopback_url("http://127.0.0.1:9")
        and is_loopback_url("localhost:1")
        and is_loopback_url("http://[::1]:5")
    )
    assert not is_loopback_url("http://example.com") and not is_loopback_url("http://10.0.0.1")


def test_api_key_flag_wins_over_environment():
    assert resolve_api_key("flag", {"CSMSTREAM_API_KEY": "env"}) == "flag"
    assert resolve_api_key(None, {"CSMSTREAM_API_KEY": " env "}) == "env"
    assert resolve_api_key(None, {}) is None and resolve_api_key("", {"CSMSTREAM_API_KEY": "env"}) is None
    assert auth_headers("k") == {"Authorization": "Bearer k"} and auth_headers(None) == {}
