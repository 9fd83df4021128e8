"""API keys stay out of the logs (`csmstream.server.log_redaction`), and browsers have a way to present a
key that never is in a URL: the WebSocket subprotocol `csmstream.bearer.KEY`. Unit tests of the filter,
then a real `csmstream serve --log-level info` process."""

from __future__ import annotations

import logging
import time

import httpx
import pytest
from server_process import start_server
from server_ws import gather_one, open_ws, send
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from csmstream.server.auth import CLOSE_UNAUTHORIZED, SUBPROTOCOL
from csmstream.server.log_redaction import RedactSecrets, install_log_redaction, redact

KEY = "k1-3c9e7f"  # distinctive: it must not turn up in a log by chance


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            '127.0.0.1:5 - "WebSocket /v1/tts/stream?api_key=k1" [accepted]',
            '127.0.0.1:5 - "WebSocket /v1/tts/stream?api_key=***" [accepted]',
        ),
        (
            '1.2.3.4:5 - "GET /v1/text:synthesize?alt=json&key=k1 HTTP/1.1" 200',
            '1.2.3.4:5 - "GET /v1/text:synthesize?alt=json&key=*** HTTP/1.1" 200',
        ),
        ("/v1/realtime?token=abc&voice=x", "/v1/realtime?token=***&voice=x"),
        ("/x?API-KEY=abc;access_token=def", "/x?API-KEY=***;access_token=***"),
        ("offered csmstream, csmstream.bearer.k1", "offered csmstream, csmstream.bearer.***"),
        ("Authorization: Bearer k1.k2", "Authorization: Bearer ***"),
        ("/v1/voices?monkey=banana&turkey=1", "/v1/voices?monkey=banana&turkey=1"),  # not secrets
    ],
)
def test_redact(line, expected):
    assert redact(line) == expected


def test_the_filter_rewrites_records_of_uvicorn_and_handlers(caplog):
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:9", "/v1/tts/stream?api_key=k1"), None,
    )  # fmt: skip
    assert RedactSecrets().filter(record) is True
    assert record.getMessage() == '127.0.0.1:9 - "WebSocket /v1/tts/stream?api_key=***" [accepted]'
    clean = logging.LogRecord("x", logging.INFO, __file__, 1, "%s", ("nothing secret",), None)
    assert RedactSecrets().filter(clean) and clean.args == ("nothing secret",)  # left as it was

    logger = logging.getLogger("uvicorn.error")
    before = list(logger.filters)
    try:
        install_log_redaction(["uvicorn.error"])
        install_log_redaction(["uvicorn.error"])
        assert sum(isinstance(f, RedactSecrets) for f in logger.filters) == 1  # once, however often called
        with caplog.at_level(logging.INFO, logger="uvicorn.error"):
            logger.info('%s - "WebSocket %s" [accepted]', "a", "/v1/tts/stream?key=k1")
        assert "k1" not in caplog.text and "key=***" in caplog.text
    finally:
        logger.filters[:] = before
        for handler in logging.getLogger().handlers:
            handler.filters[:] = [f for f in handler.filters if not isinstance(f, RedactSecrets)]


# ---- on a real server


@pytest.fixture(scope="module")
def logging_server(engine_args, tmp_path_factory):
    env = {"CSMSTREAM_API_KEYS": KEY, "CSMSTREAM_ALLOWED_ORIGINS": "", "CSMSTREAM_PUBLIC_URL": ""}
    proc = start_server([*engine_args, "--log-level", "info"], tmp_path_factory.mktemp("voices"), env=env)
    yield proc
    proc.stop()


def wait_for_log(server, text: str, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        log = "".join(server.log_lines)
        if text in log:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never logged:\n{server.log()}")


def test_a_key_in_the_url_works_but_is_not_logged(logging_server):
    url = f"{logging_server.ws_url}?api_key={KEY}"
    with connect(url, open_timeout=30, close_timeout=5, proxy=None) as ws:
        send(ws, type="synthesize", text="Logged?", request_id="q", max_seconds=0.3)
        assert gather_one(ws, "q").final["type"] == "completion"
    response = httpx.get(logging_server.url + "/v1/voices", params={"key": KEY}, timeout=30)
    assert response.status_code == 200
    log = wait_for_log(logging_server, '"GET /v1/voices?key=***')
    assert '"WebSocket /v1/tts/stream?api_key=***" [accepted]' in log
    assert KEY not in log


def test_the_subprotocol_carries_the_key(logging_server):
    with open_ws(logging_server, subprotocols=[SUBPROTOCOL, f"csmstream.bearer.{KEY}"]) as ws:
        assert ws.subprotocol == SUBPROTOCOL  # selected: the key is not echoed back
        send(ws, type="synthesize", text="By subprotocol.", request_id="s", max_seconds=0.3)
        assert gather_one(ws, "s").final["type"] == "completion"
    assert KEY not in "".join(logging_server.log_lines)


@pytest.mark.parametrize("protocol", ["csmstream.bearer.wrong", "csmstream.bearer." + KEY + "x"])
def test_a_wrong_subprotocol_key_gets_4401(logging_server, protocol):
    with open_ws(logging_server, subprotocols=[SUBPROTOCOL, protocol]) as ws:
        assert ws.subprotocol == SUBPROTOCOL  # accepted as a browser needs, then closed with the reason
        with pytest.raises(ConnectionClosed) as refused:
            ws.recv(timeout=30)
    assert refused.value.rcvd is not None and refused.value.rcvd.code == CLOSE_UNAUTHORIZED
