"""Browsers against a real `csmstream serve` process: by default only loopback pages and the server's own
pages may use it (WebSocket and CORS), and a DNS-rebinding page (its own name, resolving to this server)
is refused even when other origins are allowed. Clients that are no browsers keep working."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx
import pytest
from server_process import start_server
from server_ws import gather_one, send
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from csmstream.server.auth import CLOSE_FORBIDDEN_ORIGIN

EVIL = "https://evil.example"
APP = "https://app.example"
PUBLIC_HOST = "speech.example.com"
# the environment of the test run must not change what "the default settings" means
DEFAULT_ENV = {"CSMSTREAM_ALLOWED_ORIGINS": "", "CSMSTREAM_PUBLIC_URL": "", "CSMSTREAM_API_KEYS": ""}


@pytest.fixture(scope="module")
def default_server(engine_args, tmp_path_factory):
    proc = start_server(engine_args, tmp_path_factory.mktemp("voices"), env=DEFAULT_ENV)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def opened_server(engine_args, tmp_path_factory):
    """Opened to one web app, and reached by browsers through a proxy at its public URL."""
    env = {**DEFAULT_ENV, "CSMSTREAM_ALLOWED_ORIGINS": APP, "CSMSTREAM_PUBLIC_URL": f"https://{PUBLIC_HOST}"}
    proc = start_server(engine_args, tmp_path_factory.mktemp("voices"), env=env)
    yield proc
    proc.stop()


def port_of(server) -> int:
    return urlsplit(server.url).port


def open_as(server, host: str | None = None, origin: str | None = None) -> ClientConnection:
    """A WebSocket to the server whose handshake says `Host: host` (as a browser would for a page at that
    name, once the name resolves to this server) and `Origin: origin`."""
    sock = socket.create_connection(("127.0.0.1", port_of(server)), timeout=30)
    uri = f"ws://{host or f'127.0.0.1:{port_of(server)}'}/v1/tts/stream"
    return connect(uri, sock=sock, origin=origin, proxy=None, open_timeout=30, close_timeout=5, max_size=None)


def close_code(ws: ClientConnection) -> int:
    with ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=30)
    assert closed.value.rcvd is not None, closed.value
    return closed.value.rcvd.code


def speaks(ws: ClientConnection, request_id: str) -> bool:
    with ws:
        send(ws, type="synthesize", text="Hello.", request_id=request_id, max_seconds=0.3)
        return gather_one(ws, request_id).final["type"] == "completion"


def preflight(server, origin: str, method: str = "DELETE", path: str = "/v1/voices/x") -> httpx.Response:
    headers = {"Origin": origin, "Access-Control-Request-Method": method}
    return httpx.options(server.url + path, headers=headers, timeout=30)


# ---- the default settings


def test_a_foreign_page_cannot_open_a_websocket_by_default(default_server):
    assert close_code(open_as(default_server, origin=EVIL)) == CLOSE_FORBIDDEN_ORIGIN


def test_loopback_pages_the_servers_own_pages_and_non_browsers_can(default_server):
    port = port_of(default_server)
    assert speaks(open_as(default_server, origin=default_server.url), "own")  # the web demo: same origin
    assert speaks(open_as(default_server, origin="http://localhost:5173"), "dev")  # a local dev server
    assert speaks(open_as(default_server, host=f"localhost:{port}", origin=f"http://localhost:{port}"), "lh")
    assert speaks(open_as(default_server), "cli")  # no Origin: curl, the Python clients


def test_cors_answers_no_foreign_page_by_default(default_server):
    refused = preflight(default_server, EVIL)
    assert "access-control-allow-origin" not in refused.headers, refused.headers
    # a form POST needs no preflight: the server refuses it itself
    post = httpx.post(default_server.url + "/v1/audio/speech", headers={"Origin": EVIL}, timeout=30)
    assert post.status_code == 403 and post.json()["error"]["code"] == "forbidden_origin"
    allowed = preflight(default_server, "http://127.0.0.1:3000")
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://127.0.0.1:3000"
    # curl and the Python clients send no Origin
    assert httpx.get(default_server.url + "/v1/voices", timeout=30).status_code == 200


def test_dns_rebinding_is_refused_by_default(default_server):
    rebind = f"rebind.attacker:{port_of(default_server)}"
    assert (
        close_code(open_as(default_server, host=rebind, origin=f"http://{rebind}")) == CLOSE_FORBIDDEN_ORIGIN
    )


# ---- opened to an app, behind a public URL


def test_dns_rebinding_is_refused_when_origins_are_allowed(opened_server):
    rebind = f"rebind.attacker:{port_of(opened_server)}"
    assert (
        close_code(open_as(opened_server, host=rebind, origin=f"http://{rebind}")) == CLOSE_FORBIDDEN_ORIGIN
    )
    # the rebound page's same-origin fetch() has no Origin, but its Sec-Fetch-Site betrays a browser
    browser_get = {"Host": rebind, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}
    refused = httpx.get(opened_server.url + "/v1/voices", headers=browser_get, timeout=30)
    assert refused.status_code == 403, refused.text
    # over plain http Chromium sends no Sec-Fetch-* there, only its user agent (see tests/web too)
    chromium = {
        "Host": rebind,
        "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/150.0.0.0 Safari/537.36",
    }
    assert httpx.get(opened_server.url + "/v1/voices", headers=chromium, timeout=30).status_code == 403
    # a client that is no browser may name any Host
    assert (
        httpx.get(opened_server.url + "/v1/voices", headers={"Host": rebind}, timeout=30).status_code == 200
    )
    assert speaks(open_as(opened_server, host=rebind), "no-origin")


def test_the_allowed_app_and_the_public_url_can(opened_server):
    assert speaks(open_as(opened_server, origin=APP), "app")
    public = f"https://{PUBLIC_HOST}"
    assert speaks(open_as(opened_server, host=PUBLIC_HOST, origin=public), "public")
    for origin in (APP, public):
        assert preflight(opened_server, origin).headers["access-control-allow-origin"] == origin
    assert close_code(open_as(opened_server, origin=EVIL)) == CLOSE_FORBIDDEN_ORIGIN
    assert "access-control-allow-origin" not in preflight(opened_server, EVIL).headers
