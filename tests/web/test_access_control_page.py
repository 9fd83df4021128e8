"""The pages against a server that requires an API key: public pages, the key form, Bearer and ?api_key=."""

from __future__ import annotations

import pytest
from web_helpers import screenshot
from web_server import start_web_server

API_KEY = "web-test-key-5f2c"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    """The piper engine (a second real engine, no model files) behind an API key."""
    env = {"CSMSTREAM_API_KEYS": f"some-other-key,{API_KEY}"}
    server = start_web_server(["--engine", "piper"], tmp_path_factory.mktemp("keyed_voices"), env=env)
    yield server
    server.stop()


def test_pages_ask_for_the_key_then_work_with_it(page, keyed_server):
    assert keyed_server.get("/v1/voices").status_code == 401, "the server really requires a key"

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
    page.click("#speak")  # ?api_key= on the WebSocket
    page.wait_for_function("['done', 'error'].includes(window.csmstreamStats.state)")
    result = page.evaluate("({...window.csmstreamStats})")
    assert result["state"] == "done", result
    assert result["samplesPlayed"] == result["samplesReceived"] > 0, result

    # the key is remembered by this browser, for the other pages too
    page.goto(keyed_server.url + "/voices.html")
    page.wait_for_selector("#voice-list[aria-busy='false']")
    assert page.input_value("#api-key") == API_KEY
    assert "default" in page.evaluate("window.csmstreamVoices.ids")
