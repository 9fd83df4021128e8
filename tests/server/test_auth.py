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
    SUBPROTOCOL,
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
    values = {
        "api_keys": "",
        "api_keys_file": None,
        "allowed_origins": "",
        "public_url": "",
        "host": "127.0.0.1",
    }
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

    @app.delete("/v1/voices/{voice_id}")
    async def delete_voice(voice_id: str) -> dict:
        return {"deleted": voice_id}

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
        {"url": "/v1/tts/stream", "subprotocols": [SUBPROTOCOL, f"csmstream.bearer.{KEYS[1]}"]},
    ],
    ids=["query", "header", "subprotocol"],
)
def test_websocket_with_a_right_key_works(client, connect):
    kwargs = {"headers": connect.get("headers", {}), "subprotocols": connect.get("subprotocols")}
    with client.websocket_connect(connect["url"], **kwargs) as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "echo:hi"
        if "subprotocols" in connect:  # the server selects the plain one: the key is not echoed back
            assert ws.accepted_subprotocol == SUBPROTOCOL


@pytest.mark.parametrize(
    "protocols",
    [[SUBPROTOCOL, "csmstream.bearer.wrong"], [SUBPROTOCOL, "csmstream.bearer."], [SUBPROTOCOL]],
    ids=["wrong", "empty", "none"],
)
def test_websocket_with_a_wrong_subprotocol_key_is_closed_with_4401(client, protocols):
    with client.websocket_connect("/v1/tts/stream", subprotocols=protocols) as ws:
        message = ws.receive()
        assert message["type"] == "websocket.close" and message["code"] == CLOSE_UNAUTHORIZED
        # selected even on refusal: a browser fails a handshake that selects none of its offers (1006)
        assert ws.accepted_subprotocol == SUBPROTOCOL


def test_a_bearer_subprotocol_offered_alone_is_echoed(client):
    protocol = f"csmstream.bearer.{KEYS[0]}"
    with client.websocket_connect("/v1/tts/stream", subprotocols=[protocol]) as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "echo:hi"
        assert ws.accepted_subprotocol == protocol


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


LOOPBACK_PAGES = ("http://127.0.0.1:5173", "http://localhost:8000", "http://[::1]:3000", "https://localhost")
FOREIGN_PAGES = ("https://evil.example", "http://192.168.1.66:8000", "null", "http://localhost.evil.example")


def ws_close_code(client, origin: str | None = None, host: str | None = None) -> int | None:
    headers = {}
    if origin is not None:
        headers["Origin"] = origin
    if host is not None:
        headers["Host"] = host
    # an absolute URL: the test client's WebSockets ignore its base_url (and would say Host: testserver)
    url = "ws" + str(client.base_url).removeprefix("http").rstrip("/") + "/v1/tts/stream"
    return close_code_of_echo(client, url, headers=headers)


def close_code_of_echo(client, url: str, **kwargs) -> int | None:
    """The close code of a refused WebSocket; None when the echo route answered."""
    with client.websocket_connect(url, **kwargs) as ws:
        ws.send_text("ping")
        message = ws.receive()
        if message["type"] == "websocket.close":
            return message["code"]
        assert message["text"] == "echo:ping"
        return None


def preflight(client, origin: str, method: str = "DELETE", path: str = "/v1/voices/x"):
    headers = {"Origin": origin, "Access-Control-Request-Method": method}
    return client.options(path, headers={**headers, "Access-Control-Request-Headers": "authorization"})


def test_by_default_only_loopback_pages_and_non_browsers_may_use_the_websocket():
    with TestClient(build_app(), base_url="http://127.0.0.1:8000") as client:
        assert ws_close_code(client) is None  # no Origin: curl, the Python clients
        for origin in LOOPBACK_PAGES:
            assert ws_close_code(client, origin) is None, origin
        for origin in FOREIGN_PAGES:
            assert ws_close_code(client, origin) == CLOSE_FORBIDDEN_ORIGIN, origin


def test_by_default_cors_answers_loopback_pages_only():
    with TestClient(build_app(), base_url="http://127.0.0.1:8000") as client:
        for origin in FOREIGN_PAGES:
            response = preflight(client, origin)
            assert "access-control-allow-origin" not in response.headers, origin
            # CORS hides the answer, this refuses the request itself (a form POST needs no preflight)
            refused = client.post("/v1/audio/speech", headers={"Origin": origin})
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden_origin"
            assert client.delete("/v1/voices/x", headers={"Origin": origin}).status_code == 403
        for origin in LOOPBACK_PAGES:
            response = preflight(client, origin)
            assert response.status_code == 200, origin
            assert response.headers["access-control-allow-origin"] == origin
            assert client.delete("/v1/voices/x", headers={"Origin": origin}).json() == {"deleted": "x"}
        # the public pages stay readable by anyone's fetch() only where CORS says so, but are served
        assert client.get("/", headers={"Origin": "https://evil.example"}).status_code == 200


def test_the_servers_own_pages_pass_when_their_host_cannot_be_a_rebinding_name():
    # same origin: the Origin names the Host the browser connected to, and that Host is an address
    for base in ("http://10.1.2.3:8000", "http://[fd00::5]:8000", "http://localhost:8000"):
        with TestClient(build_app(host="0.0.0.0"), base_url=base) as client:
            assert ws_close_code(client, base) is None, base
            assert client.post("/v1/audio/speech", headers={"Origin": base}).status_code == 200
    # the bound host name is this server's own name too
    with TestClient(build_app(host="speech.lan"), base_url="http://speech.lan:8000") as client:
        assert ws_close_code(client, "http://speech.lan:8000") is None


def test_dns_rebinding_is_refused_even_with_allowed_origins():
    """A page on http://rebind.attacker:8000 whose name now resolves to this server: Origin and Host agree."""
    rebind = "rebind.attacker:8000"
    for allowed in ("", "https://app.example"):
        with TestClient(build_app(allowed_origins=allowed, host="0.0.0.0")) as client:
            assert ws_close_code(client, f"http://{rebind}", host=rebind) == CLOSE_FORBIDDEN_ORIGIN
            # the page's same-origin GET carries no Origin, but a browser's Sec-Fetch-Site gives it away
            browser_get = {"Host": rebind, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}
            refused = client.get("/v1/voices", headers=browser_get)
            assert refused.status_code == 403 and "CSMSTREAM_PUBLIC_URL" in refused.json()["error"]["message"]
            # over plain http a browser sends no Sec-Fetch-* to such a name: its user agent still gives it away
            firefox = {
                "Host": rebind,
                "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Firefox/140.0",
            }
            assert client.get("/v1/voices", headers=firefox).status_code == 403
            post = client.post("/v1/audio/speech", headers={"Host": rebind, "Origin": f"http://{rebind}"})
            assert post.status_code == 403
            # clients that are no browsers send neither header, whatever Host they name: they keep working
            assert client.get("/v1/voices", headers={"Host": rebind}).status_code == 200
            assert ws_close_code(client, host=rebind) is None


def test_cors_and_websockets_answer_allowed_origins_and_the_public_url():
    app = build_app(
        allowed_origins="https://App.example:443, https://other.example/",
        public_url="https://speech.example.com/x",
    )
    with TestClient(app, base_url="https://speech.example.com") as client:
        for origin in ("https://app.example", "https://other.example", "https://speech.example.com"):
            assert ws_close_code(client, origin) is None, origin
            assert preflight(client, origin).headers["access-control-allow-origin"] == origin
        assert ws_close_code(client, "https://evil.example") == CLOSE_FORBIDDEN_ORIGIN
        assert "access-control-allow-origin" not in preflight(client, "https://evil.example").headers
        # behind a proxy that forwards Host: the public URL's host is trusted, its pages are same-origin
        get = {"Sec-Fetch-Site": "same-origin"}
        assert client.get("/v1/voices", headers={"Host": "speech.example.com", **get}).status_code == 200


def test_a_star_opens_the_server_to_every_page():
    with TestClient(build_app(allowed_origins="*")) as client:
        rebind = "rebind.attacker:8000"
        assert ws_close_code(client, "https://anywhere.example") is None
        assert ws_close_code(client, f"http://{rebind}", host=rebind) is None
        assert preflight(client, "https://anywhere.example").headers["access-control-allow-origin"] == "*"


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
