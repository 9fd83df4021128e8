"""The pages against a server that requires an API key: public pages, the key form, Bearer over HTTP and
the `csmstream.bearer.KEY` subprotocol on WebSockets (never `?api_key=`: URLs end up in logs)."""

from __future__ import annotations

import http.server
import threading
from urllib.parse import urlsplit

import pytest
from web_helpers import launch_chromium, screenshot
from web_server import start_web_server

API_KEY = "web-test-key-5f2c"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    """The piper engine (a second real engine, no model files) behind an API key."""
    env = {"CSMSTREAM_API_KEYS": f"some-other-key,{API_KEY}", "CSMSTREAM_ALLOWED_ORIGINS": ""}
    args = ["--engine", "piper", "--log-level", "info"]  # info: uvicorn logs every request line
    server = start_web_server(args, tmp_path_factory.mktemp("keyed_voices"), env=env)
    yield server
    server.stop()


def test_pages_ask_for_the_key_then_work_with_it(page, keyed_server):
    assert keyed_server.get("/v1/voices").status_code == 401, "the server really requires a key"
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))

    page.goto(keyed_server.url + "/")  # the page itself is public
    page.wait_for_function("document.getElementById('error').textContent.includes('API key')")
    assert "piper" in page.text_content("#engine"), "/health stays public"

    # the WebSocket is refused with 4401, and the page says why
    page.fill("#text", "Hello.")
    page.click("#speak")
    page.wait_for_function("window.csmstreamStats.state === 'error'")
    assert "refused the API key" in page.text_content("#error")
    screenshot(page, "speak_needs_key")

    page.click("summary:has-text('API key')")
    page.fill("#api-key", API_KEY)
    page.click("#key-form button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#voice option').length > 1")  # Bearer over HTTP
    assert page.text_content("#error") == ""

    page.fill("#text", "Hello with a key.")
    page.click("#speak")  # the key in the WebSocket subprotocol, which the server selects as "csmstream"
    page.wait_for_function("['done', 'error'].includes(window.csmstreamStats.state)")
    result = page.evaluate("({...window.csmstreamStats})")
    assert result["state"] == "done", result
    assert result["samplesPlayed"] == result["samplesReceived"] > 0, result
    assert sockets and all("api_key" not in url and API_KEY not in url for url in sockets), sockets
    assert '"WebSocket /v1/tts/stream" [accepted]' in "".join(keyed_server.log_lines)
    assert API_KEY not in "".join(keyed_server.log_lines), "the key must stay out of the server's log"

    # the key is remembered by this browser, for the other pages too
    page.goto(keyed_server.url + "/voices.html")
    page.wait_for_selector("#voice-list[aria-busy='false']")
    assert page.input_value("#api-key") == API_KEY
    assert "default" in page.evaluate("window.csmstreamVoices.ids")


# ---- other pages, in a real browser, against a server with the default settings

REBIND_HOST = "rebind.attacker"
FOREIGN_HOST = "other.example"
WS_CLOSE_CODE = """(url) => new Promise((resolve) => {
  const ws = new WebSocket(url);
  ws.onopen = () => ws.send(JSON.stringify({type: "synthesize", text: ""}));
  ws.onmessage = () => { ws.close(); resolve("open"); };
  ws.onclose = (event) => resolve(event.code);
})"""
FETCH_STATUS = (
    """(url) => fetch(url, {method: "DELETE"}).then((r) => r.status, (e) => "blocked: " + e.message)"""
)


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    env = {"CSMSTREAM_API_KEYS": "", "CSMSTREAM_ALLOWED_ORIGINS": "", "CSMSTREAM_PUBLIC_URL": ""}
    server = start_web_server(["--engine", "piper"], tmp_path_factory.mktemp("open_voices"), env=env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mapped_browser(playwright_driver):
    """A Chromium in which the attacker's name now resolves to this machine (DNS rebinding), and so does
    another site's."""
    rules = f"--host-resolver-rules=MAP {REBIND_HOST} 127.0.0.1, MAP {FOREIGN_HOST} 127.0.0.1"
    browser = launch_chromium(playwright_driver, [rules])
    yield browser
    browser.close()


def test_a_dns_rebinding_page_cannot_use_the_server(mapped_browser, open_server):
    port = urlsplit(open_server.url).port
    page = mapped_browser.new_page()
    try:
        page.goto(f"http://{REBIND_HOST}:{port}/")  # the static page loads: it holds nothing
        # ... but everything it could do with it is refused: same-origin for the browser, not for the server
        assert page.evaluate(WS_CLOSE_CODE, f"ws://{REBIND_HOST}:{port}/v1/tts/stream") == 4403
        status = page.evaluate("() => fetch('/v1/voices').then((r) => r.status)")
        assert status == 403
        page.wait_for_function(
            "document.getElementById('error').textContent.includes('CSMSTREAM_PUBLIC_URL')"
        )
        # the same browser on the server's own address: the demo works
        page.goto(open_server.url + "/")
        assert (
            page.evaluate(WS_CLOSE_CODE, open_server.url.replace("http", "ws") + "/v1/tts/stream") == "open"
        )
        assert page.evaluate("() => fetch('/v1/voices').then((r) => r.status)") == 200
    finally:
        page.close()


@pytest.fixture(scope="module")
def foreign_site():
    """Another web site on this machine (so the browser lets its page reach loopback), at another name."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html><body>another site</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    yield f"http://{FOREIGN_HOST}:{site.server_address[1]}/"
    site.shutdown()


def test_a_foreign_page_cannot_use_the_server(mapped_browser, foreign_site, open_server):
    page = mapped_browser.new_page()
    try:
        page.goto(foreign_site)
        ws_url = open_server.url.replace("http", "ws") + "/v1/tts/stream"
        assert page.evaluate(WS_CLOSE_CODE, ws_url) == 4403
        result = page.evaluate(FETCH_STATUS, open_server.url + "/v1/voices/default")
        assert str(result).startswith("blocked"), result  # the CORS preflight for DELETE is not answered
        assert "default" in open_server.get("/v1/voices").text, "nothing was deleted"
    finally:
        page.close()
