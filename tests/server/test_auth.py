"""Access control (`csmstream.server.auth`): unit tests on a small FastAPI app with HTTP and WebSocket routes,
then the same rules on a real `csmstream serve` process."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI, WebSocket
from server_process import start_server
from server_ws import gather_one, open_ws, send
from starlette.testclient import TestClient
from websockets.exceptions import ConnectionClosed

from csmstream.config import Settings
from csmstream.errors import CsmstreamError
from csmstream.server.auth import (
    CLOSE_FORBIDDEN_ORIGIN,
    CLOSE_UNAUTHORIZED,
    DEFAULT_PUBLIC_PATHS,
    ApiKeyMiddleware,
    install_access_control,
    is_loopback,
    load_api_keys,
    warn_if_exposed,
)
from csmstream.web import mount_web

KEYS = ("first-key-0123", "second-key-abcdefgh")


def settings(**overrides) -> Settings:
    # explicit values: a CSMSTREAM_* variable in the environment must not change what a test means
    values = {"api_keys": "", "api_keys_file": None, "allowed_origins": "*", "host": "127.0.0.1"}
    return Settings(**{**values, **overrides})


def build_app(**setting_overrides) -> FastAPI:
    """Routes like the server's: health, an HTTP API, a WebSocket, and the static web demo."""
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/voices")
    async def voices() -> dict:
        return {"voices": []}

    @app.post("/v1/audio/speech")
    async def speech() -> dict:
        return {"ok": True}

    @app.websocket("/v1/tts/stream")
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(f"echo:{text}")
        await websocket.close()

    public_paths = (*DEFAULT_PUBLIC_PATHS, *mount_web(app))
    install_access_control(app, settings(**setting_overrides), public_paths)
    return app


@pytest.fixture
def client():
    with TestClient(build_app(api_keys=",".join(KEYS))) as test_client:
        yield test_client


# ---- keys from settings


def test_load_api_keys_from_the_list_and_the_file(tmp_path):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# team keys\n  file-key-1  \n\nfile-key-2\n")
    assert load_api_keys(settings()) == set()
    assert load_api_keys(settings(api_keys=" a , b,,")) == {"a", "b"}
    assert load_api_keys(settings(api_keys="a", api_keys_file=keys_file)) == {"a", "file-key-1", "file-key-2"}


def test_load_api_keys_refuses_a_missing_or_empty_file(tmp_path):
    with pytest.raises(CsmstreamError, match="cannot read"):
        load_api_keys(settings(api_keys_file=tmp_path / "absent.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n\n")
    with pytest.raises(CsmstreamError, match="holds no key"):
        load_api_keys(settings(api_keys_file=empty))


def test_the_middleware_needs_a_key():
    with pytest.raises(AssertionError, match="at least one key"):
        ApiKeyMiddleware(FastAPI(), keys=[])


# ---- HTTP


def test_http_without_a_key_gets_401_json(client):
    for method, path in (("GET", "/v1/voices"), ("POST", "/v1/audio/speech")):
        response = client.request(method, path)
        assert response.status_code == 401, (method, path)
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "wrong",
    ["nope", KEYS[0][:-1], KEYS[0] + "x", KEYS[0].upper(), f"{KEYS[0]},{KEYS[1]}", " "],
    ids=["other", "prefix", "longer", "case", "both-joined", "blank"],
)
def test_http_with_a_wrong_key_gets_401(client, wrong):
    assert client.get("/v1/voices", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
    assert client.get("/v1/voices", params={"api_key": wrong}).status_code == 401


@pytest.mark.parametrize("key", KEYS)
def test_http_with_a_right_key_passes_every_way_it_may_come(client, key):
    ways = [
        {"headers": {"Authorization": f"Bearer {key}"}},
        {"headers": {"authorization": f"bearer {key}"}},
        {"headers": {"x-api-key": key}},
        {"headers": {"x-goog-api-key": key}},
        {"params": {"api_key": key}},
        {"params": {"key": key}},
    ]
    for way in ways:
        response = client.get("/v1/voices", **way)
        assert response.status_code == 200, way
        assert response.json() == {"voices": []}


def test_a_basic_auth_header_is_not_a_key(client):
    assert client.get("/v1/voices", headers={"Authorization": f"Basic {KEYS[0]}"}).status_code == 401


def test_health_and_the_web_pages_stay_public(client):
    assert client.get("/health").json() == {"status": "ok"}
    for path in ("/", "/speak.html", "/talk.html", "/voices.html", "/index.html"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
    assert client.get("/assets/speak.js").status_code == 200
    assert client.get("/assets/no-such-file.js").status_code == 404  # public, and honestly missing


def test_public_prefixes_match_whole_segments_only(client):
    # `/assets/*` opens the folder, not every path that happens to start with "/assets"
    assert client.get("/assets-private/x").status_code == 401
    assert client.get("/healthz").status_code == 401


# ---- WebSocket


def close_code_of(client, url: str, **kwargs) -> int | None:
    """The close code a WebSocket gets before it could exchange anything; None when it stays open."""
    with client.websocket_connect(url, **kwargs) as ws:
        message = ws.receive()
        if message["type"] == "websocket.close":
            return message["code"]
        return None


@pytest.mark.parametrize(
    "query", ["", "?api_key=wrong", f"?api_key={KEYS[0]}x"], ids=["missing", "wrong", "longer"]
)
def test_websocket_without_the_right_key_is_closed_with_4401(client, query):
    with client.websocket_connect("/v1/tts/stream" + query) as ws:
        message = ws.receive()  # the very first thing the client hears is the close
        assert message == {"type": "websocket.close", "code": CLOSE_UNAUTHORIZED, "reason": message["reason"]}
        assert "API key" in message["reason"]


@pytest.mark.parametrize(
    "connect",
    [
        {"url": f"/v1/tts/stream?api_key={KEYS[1]}"},
        {"url": "/v1/tts/stream", "headers": {"x-api-key": KEYS[0]}},
    ],
    ids=["query", "header"],
)
def test_websocket_with_a_right_key_works(client, connect):
    with client.websocket_connect(connect["url"], headers=connect.get("headers", {})) as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "echo:hi"


# ---- off by default


def test_without_keys_everything_is_open():
    with TestClient(build_app()) as client:
        assert client.get("/v1/voices").status_code == 200
        with client.websocket_connect("/v1/tts/stream") as ws:
            ws.send_text("open")
            assert ws.receive_text() == "echo:open"


# ---- browser origins


def test_cors_answers_allowed_origins_only():
    allowed, other = "https://app.example", "https://evil.example"
    with TestClient(build_app(api_keys=KEYS[0], allowed_origins=allowed)) as client:
        preflight = {
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        }
        response = client.options("/v1/voices", headers={"Origin": allowed, **preflight})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == allowed
        assert "authorization" in response.headers["access-control-allow-headers"].lower()
        refused = client.options("/v1/voices", headers={"Origin": other, **preflight})
        assert "access-control-allow-origin" not in refused.headers
        # a 401 still carries CORS headers, so a page on an allowed origin can read why
        response = client.get("/v1/voices", headers={"Origin": allowed})
        assert response.status_code == 401
        assert response.headers["access-control-allow-origin"] == allowed


def test_websocket_from_a_foreign_origin_is_closed_with_4403():
    with TestClient(build_app(allowed_origins="https://app.example")) as client:
        url = "/v1/tts/stream"
        assert (
            close_code_of(client, url, headers={"Origin": "https://evil.example"}) == CLOSE_FORBIDDEN_ORIGIN
        )
        for origin in ("https://app.example", "http://testserver"):  # allowed, and this server's own pages
            with client.websocket_connect(url, headers={"Origin": origin}) as ws:
                ws.send_text(origin)
                assert ws.receive_text() == f"echo:{origin}"
        with client.websocket_connect(url) as ws:  # a client that is no browser sends no Origin
            ws.send_text("cli")
            assert ws.receive_text() == "echo:cli"


def test_any_origin_is_allowed_by_default():
    with TestClient(build_app()) as client:
        with client.websocket_connect("/v1/tts/stream", headers={"Origin": "https://anywhere.example"}) as ws:
            ws.send_text("x")
            assert ws.receive_text() == "echo:x"


# ---- the exposure warning

LOOPBACK_HOSTS = ("127.0.0.1", "127.0.1.1", "::1", "[::1]", "localhost")


@pytest.mark.parametrize(
    ("host", "keys", "warns"),
    [
        ("0.0.0.0", set(), True),
        ("::", set(), True),
        ("192.168.1.20", set(), True),
        ("", set(), True),
        ("0.0.0.0", {"k"}, False),
        ("127.0.0.1", set(), False),
        ("127.0.1.1", set(), False),
        ("::1", set(), False),
        ("[::1]", set(), False),
        ("localhost", set(), False),
    ],
)
def test_warn_if_exposed(caplog, host, keys, warns):
    with caplog.at_level(logging.WARNING, logger="csmstream.server.auth"):
        assert warn_if_exposed(host, keys) is warns
    assert any("without API keys" in record.getMessage() for record in caplog.records) is warns
    assert is_loopback(host) is (host in LOOPBACK_HOSTS)


def test_install_access_control_warns_for_an_exposed_host(caplog):
    with caplog.at_level(logging.WARNING, logger="csmstream.server.auth"):
        build_app(host="0.0.0.0")
    assert any("without API keys" in record.getMessage() for record in caplog.records)


# ---- on a real server

SERVER_KEY = "secret-key-1"


@pytest.fixture(scope="module")
def keyed_server(engine_args, tmp_path_factory):
    env = {
        "CSMSTREAM_API_KEYS": f"{SERVER_KEY}, other-key",
        "CSMSTREAM_ALLOWED_ORIGINS": "https://app.example",
    }
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
        ({"Authorization": f"Bearer {SERVER_KEY}"}, None),
        ({"x-api-key": "other-key"}, None),
        ({"x-goog-api-key": SERVER_KEY}, None),
        ({}, {"key": SERVER_KEY}),
    ]:
        response = httpx.get(url + "/v1/voices", headers=headers, params=params, timeout=30)
        assert response.status_code == 200, (headers, params, response.text)


def test_websocket_needs_a_key_too(keyed_server):
    # accepted, then closed at once with 4401: browsers see close codes, never a refused handshake's status
    with open_ws(keyed_server) as ws, pytest.raises(ConnectionClosed) as refused:
        ws.recv(timeout=30)
    assert refused.value.rcvd is not None and refused.value.rcvd.code == 4401, refused.value
    with open_ws(keyed_server, additional_headers={"Authorization": f"Bearer {SERVER_KEY}"}) as ws:
        send(ws, type="synthesize", text="Authorized.", request_id="k", max_seconds=0.3)
        assert gather_one(ws, "k").final["type"] == "completion"


def test_websocket_from_a_foreign_page_is_refused(keyed_server):
    headers = {"Authorization": f"Bearer {SERVER_KEY}", "Origin": "https://evil.example"}
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
