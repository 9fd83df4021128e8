"""OpenAICompatibleLLM against a tiny SSE server of our own: streaming, cancel, and every error it names."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pipeline_helpers import free_port

from csmstream.pipeline.llm import (
    LLMAuthError,
    LLMError,
    LLMModelNotFound,
    LLMTimeout,
    LLMUnavailable,
    OpenAICompatibleLLM,
    build_llm,
)

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]


def chunk(content: str | None) -> bytes:
    delta = {"role": "assistant"} if content is None else {"content": content}
    return ("data: " + json.dumps({"choices": [{"index": 0, "delta": delta}]}) + "\n\n").encode()


class ScriptedLLMServer(BaseHTTPRequestHandler):
    """The first path segment picks the behaviour: /ok/v1, /auth/v1, /nomodel/v1, /slow/v1, ..."""

    requests: list[dict] = []  # replaced per server instance (see the fixture)
    stream_ended = threading.Event()

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def _json(self, status: int, payload: object) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        mode = self.path.split("/")[1]
        if not self.path.endswith("/v1/chat/completions"):
            self.send_response(404)
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"Not Found")
        elif mode == "ok":
            self._start_stream()
            # a role-only chunk, a comment, an event split over two writes, a multi-byte character
            self.wfile.write(chunk(None) + b": keep-alive\n\n" + chunk("Hel"))
            self.wfile.flush()
            half = chunk("lo, wörld.")
            self.wfile.write(half[:20])
            self.wfile.flush()
            time.sleep(0.02)
            self.wfile.write(half[20:] + chunk(" Bye.") + b"data: [DONE]\n\n")
        elif mode == "auth":
            self._json(401, {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})
        elif mode == "nomodel":
            self._json(
                404, {"error": {"message": f"model '{body.get('model')}' not found, try pulling it first"}}
            )
        elif mode == "slow":
            self._start_stream()
            self.wfile.write(chunk("Thinking"))
            self.wfile.flush()
            time.sleep(1.5)  # longer than the client's read timeout
        elif mode == "midstream":
            self._start_stream()
            self.wfile.write(chunk("Sure") + b'data: {"error": {"message": "out of memory"}}\n\n')
        elif mode == "endless":
            self._start_stream()
            try:
                for _ in range(200):  # bounded: about 10 s at most
                    self.wfile.write(chunk("tick "))
                    self.wfile.flush()
                    time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                pass
            type(self).stream_ended.set()
        elif mode == "notsse":  # a server that ignores `stream: true` and answers with one JSON body
            self._json(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}}]})
        else:
            self._json(500, {"error": "unknown mode"})


@pytest.fixture(scope="module")
def server_url():
    handler = type("Handler", (ScriptedLLMServer,), {"requests": [], "stream_ended": threading.Event()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


async def collect(llm, cancel: asyncio.Event | None = None) -> list[str]:
    return [delta async for delta in llm.stream_chat(MESSAGES, cancel=cancel)]


def test_streams_deltas_and_sends_an_openai_request(server_url):
    url, handler = server_url
    llm = OpenAICompatibleLLM(f"{url}/ok/v1/", "tiny-model", "secret")
    deltas = asyncio.run(collect(llm))
    assert deltas == ["Hel", "lo, wörld.", " Bye."]
    request = handler.requests[-1]
    assert request["path"] == "/ok/v1/chat/completions"
    assert request["body"]["stream"] is True
    assert request["body"]["model"] == "tiny-model"
    assert request["body"]["messages"] == MESSAGES
    assert request["auth"] == "Bearer secret"


def test_401_is_an_auth_error(server_url):
    with pytest.raises(LLMAuthError, match="CSMSTREAM_LLM_API_KEY"):
        asyncio.run(collect(OpenAICompatibleLLM(f"{server_url[0]}/auth/v1", "m", "wrong")))


def test_unknown_model_is_named(server_url):
    with pytest.raises(LLMModelNotFound, match="llama9"):
        asyncio.run(collect(OpenAICompatibleLLM(f"{server_url[0]}/nomodel/v1", "llama9")))


def test_wrong_path_hints_at_v1(server_url):
    with pytest.raises(LLMUnavailable, match="/v1"):
        asyncio.run(collect(OpenAICompatibleLLM(f"{server_url[0]}/ok", "m")))


def test_a_stalled_stream_times_out(server_url):
    llm = OpenAICompatibleLLM(f"{server_url[0]}/slow/v1", "m", read_timeout_s=0.3)
    with pytest.raises(LLMTimeout):
        asyncio.run(collect(llm))


def test_an_error_event_in_the_stream_is_raised(server_url):
    with pytest.raises(LLMError, match="out of memory"):
        asyncio.run(collect(OpenAICompatibleLLM(f"{server_url[0]}/midstream/v1", "m")))


def test_an_answer_that_is_not_an_event_stream_is_an_error(server_url):
    url, _ = server_url
    llm = OpenAICompatibleLLM(f"{url}/notsse/v1", "m")
    with pytest.raises(LLMError, match="did not stream server-sent events"):
        asyncio.run(collect(llm))


def test_an_unreachable_server_says_so():
    llm = OpenAICompatibleLLM(f"http://127.0.0.1:{free_port()}/v1", "m")  # nothing listens there
    with pytest.raises(LLMUnavailable, match="cannot reach"):
        asyncio.run(collect(llm))


def test_cancel_ends_the_stream_promptly_and_closes_the_connection(server_url):
    url, handler = server_url
    llm = OpenAICompatibleLLM(f"{url}/endless/v1", "m")

    async def run() -> tuple[list[str], float]:
        cancel = asyncio.Event()
        received: list[str] = []

        async def consume() -> None:
            async for delta in llm.stream_chat(MESSAGES, cancel=cancel):
                received.append(delta)
                if len(received) == 3:
                    cancel.set()  # from outside the loop's body it would be the same: the watcher closes it

        started = time.monotonic()
        await asyncio.wait_for(consume(), timeout=5)
        return received, time.monotonic() - started

    received, _ = asyncio.run(run())
    assert 3 <= len(received) <= 4, received  # at most the delta already in flight
    assert handler.stream_ended.wait(timeout=5), "the server never saw the client go away"


def test_cancel_while_waiting_for_a_token(server_url):
    """Cancelling while the stream is idle (no delta arriving) ends it at once, without an error."""
    llm = OpenAICompatibleLLM(f"{server_url[0]}/slow/v1", "m", read_timeout_s=10)

    async def run() -> list[str]:
        cancel = asyncio.Event()
        asyncio.get_running_loop().call_later(0.3, cancel.set)
        return await asyncio.wait_for(collect(llm, cancel), timeout=1.0)

    assert asyncio.run(run()) == ["Thinking"]


def test_build_llm_picks_a_backend_or_says_what_to_set():
    with pytest.raises(LLMUnavailable, match="CSMSTREAM_LLM_BASE_URL"):
        build_llm()
    llm = build_llm("http://127.0.0.1:1/v1", "m", None)
    assert isinstance(llm, OpenAICompatibleLLM) and llm.model == "m"
    with pytest.raises(LLMError, match="http"):
        OpenAICompatibleLLM("127.0.0.1:8080/v1")
