"""API keys (CSMSTREAM_API_KEYS) and CORS on a real server."""

from __future__ import annotations

import httpx
import pytest
from server_process import start_server
from server_ws import gather_one, open_ws, send
from websockets.exceptions import ConnectionClosed

KEY = "secret-key-1"


@pytest.fixture(scope="module")
def keyed_server(engine_args, tmp_path_factory):
    env = {"CSMSTREAM_API_KEYS": f"{KEY}, other-key", "CSMSTREAM_ALLOWED_ORIGINS": "https://app.example"}
    proc = start_server(engine_args, tmp_path_factory.mktemp("voices"), env=env)
    yield proc
    proc.stop()


def test_health_is_open_but_the_api_needs_a_key(keyed_server):
    url = keyed_server.url
    assert httpx.get(url + "/health", timeout=30).status_code == 200
    refused = httpx.get(url + "/v1/voices", timeout=30)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    wrong = httpx.get(url + "/v1/voices", headers={"Authorization": "Bearer nope"}, timeout=30)
    assert wrong.status_code == 401
    for headers, params in [
        ({"Authorization": f"Bearer {KEY}"}, None),
        ({"x-api-key": "other-key"}, None),
        ({"x-goog-api-key": KEY}, None),
        ({}, {"key": KEY}),
    ]:
        response = httpx.get(url + "/v1/voices", headers=headers, params=params, timeout=30)
        assert response.status_code == 200, (headers, params, response.text)


def test_websocket_needs_a_key_too(keyed_server):
    # accepted, then closed at once with 4401: browsers see close codes, never a refused handshake's status
    with open_ws(keyed_server) as ws, pytest.raises(ConnectionClosed) as refused:
        ws.recv(timeout=30)
    assert refused.value.rcvd is not None and refused.value.rcvd.code == 4401, refused.value
    with open_ws(keyed_server, additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
        send(ws, type="synthesize", text="Authorized.", request_id="k", max_seconds=0.3)
        assert gather_one(ws, "k").final["type"] == "completion"


def test_websocket_from_a_foreign_page_is_refused(keyed_server):
    headers = {"Authorization": f"Bearer {KEY}", "Origin": "https://evil.example"}
    with open_ws(keyed_server, additional_headers=headers) as ws, pytest.raises(ConnectionClosed) as refused:
        ws.recv(timeout=30)
    assert refused.value.rcvd is not None and refused.value.rcvd.code == 4403, refused.value


def test_web_demo_pages_are_public(keyed_server):
    response = httpx.get(keyed_server.url + "/", timeout=30)
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]


def test_cors_preflight_from_an_allowed_origin(keyed_server):
    response = httpx.options(
        keyed_server.url + "/v1/audio/speech",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    other = httpx.options(
        keyed_server.url + "/v1/audio/speech",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        timeout=30,
    )
    assert other.headers.get("access-control-allow-origin") != "https://evil.example"
