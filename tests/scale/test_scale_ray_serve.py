"""`csmstream serve --ray`: two piper replicas behind Ray Serve on a local Ray instance the tests start.

Both replicas answer, a new stream goes to the replica with headroom, the WebSocket protocol and the OpenAI
client work through Ray's proxy, and a replica killed mid-stream ends only its own stream while Ray brings
it back. One Ray instance for the module (starting one takes tens of seconds)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import httpx
import pytest

pytest.importorskip("ray.serve")

from ray_serve_process import RayServe, start_ray_serve  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

LONG_TEXT = " ".join(
    f"This is sentence number {i} of a long text that keeps the voice busy for a while." for i in range(20)
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    server = start_ray_serve(
        ["--replicas", "2", "--engine", "piper", "--replica-cpus", "0.5"], tmp_path_factory.mktemp("voices")
    )
    try:
        wait_for_replicas(server, 2, timeout_s=120)
        yield server
    finally:
        server.stop()


def wait_for_replicas(server: RayServe, count: int, timeout_s: float, without: str | None = None) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        seen = server.replicas()
        seen.pop(without, None)
        if len(seen) >= count:
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(seen)} healthy replicas of {count} after {timeout_s} s\n{server.log()}"
            )
        time.sleep(1.0)


def speech(server: RayServe, text: str, response_format: str = "wav") -> httpx.Response:
    body = {"model": "tts-1", "voice": "default", "input": text, "response_format": response_format}
    return httpx.post(server.url + "/v1/audio/speech", json=body, timeout=120)


class HttpStream(threading.Thread):
    """A streamed `/v1/audio/speech` read in the background: which replica, how many bytes, how it ended."""

    def __init__(self, server: RayServe, text: str) -> None:
        super().__init__(daemon=True)
        self.server, self.text = server, text
        self.replica: str | None = None
        self.num_bytes = 0
        self.error: Exception | None = None
        self.started = threading.Event()

    def run(self) -> None:
        body = {"model": "tts-1", "voice": "default", "input": self.text, "response_format": "pcm"}
        try:
            with httpx.stream(
                "POST", self.server.url + "/v1/audio/speech", json=body, timeout=120
            ) as response:
                response.raise_for_status()
                self.replica = response.headers["x-csmstream-replica"]
                for chunk in response.iter_bytes():
                    self.num_bytes += len(chunk)
                    self.started.set()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            self.error = exc
        finally:
            self.started.set()


def test_both_replicas_answer_and_the_router_is_headroom(cluster):
    assert len(cluster.replicas()) == 2
    assert any("by real-time headroom" in line for line in cluster.log_lines), "the router did not start"
    # piper speaks one stream at a time (headroom 1): a second stream while the first runs goes elsewhere
    first, second = HttpStream(cluster, LONG_TEXT), HttpStream(cluster, LONG_TEXT)
    first.start()
    assert first.started.wait(60) and first.error is None, first.error
    second.start()
    first.join(120)
    second.join(120)
    assert first.error is None and second.error is None, (first.error, second.error)
    assert first.replica != second.replica, "two concurrent streams went to the same piper replica"
    assert first.num_bytes > 0 and second.num_bytes > 0


def test_websocket_protocol_through_ray(cluster):
    with connect(cluster.ws_url, open_timeout=30, max_size=None) as ws:
        ws.send(json.dumps({"type": "synthesize", "text": "Hello through the proxy.", "request_id": "a"}))
        ws.send(json.dumps({"type": "start", "request_id": "b", "audio_encoding": "base64"}))
        ws.send(json.dumps({"type": "text", "request_id": "b", "text": "Spoken in pieces, "}))
        ws.send(json.dumps({"type": "end", "request_id": "b", "text": "and then finished."}))
        done: dict[str, dict] = {}
        samples = {"a": 0, "b": 0}
        while len(done) < 2:
            message = json.loads(ws.recv(timeout=60))
            rid = message.get("request_id")
            if message["type"] == "audio_chunk":
                samples[rid] += message["samples"]
                if "audio" not in message:
                    assert isinstance(ws.recv(timeout=60), bytes), (
                        "a binary frame follows a binary audio_chunk"
                    )
            elif message["type"] in ("completion", "error"):
                done[rid] = message
    assert done["a"]["type"] == "completion" and done["a"]["finish_reason"] == "eos", done["a"]
    assert done["b"]["type"] == "completion" and done["b"]["finish_reason"] == "eos", done["b"]
    assert samples["a"] > 0 and samples["b"] > 0


def test_openai_client_through_ray(cluster):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=cluster.url + "/v1", api_key="not-needed", max_retries=0, timeout=60)
    audio = client.audio.speech.create(
        model="tts-1", voice="default", input="Hello there.", response_format="wav"
    )
    data = audio.read()
    assert data[:4] == b"RIFF" and len(data) > 10_000


def test_killed_replica_ends_only_its_streams_and_comes_back(cluster):
    replicas = wait_for_replicas(cluster, 2, timeout_s=60)
    doomed, spared = HttpStream(cluster, LONG_TEXT), HttpStream(cluster, LONG_TEXT)
    doomed.start()
    assert doomed.started.wait(60) and doomed.error is None, doomed.error
    spared.start()
    assert spared.started.wait(60) and spared.error is None, spared.error
    assert doomed.replica != spared.replica and doomed.replica in replicas, (doomed.replica, replicas)

    os.kill(replicas[doomed.replica], signal.SIGKILL)
    doomed.join(60)
    spared.join(120)
    # the killed replica's stream ends with an error (the body stops short: no silent truncation) ...
    assert isinstance(doomed.error, httpx.RemoteProtocolError), doomed.error
    # ... the other replica's stream is whole
    assert spared.error is None, spared.error
    assert spared.num_bytes > 20 * 24_000 * 2, (
        spared.num_bytes
    )  # 20 sentences: well over 20 s of 16-bit audio

    # new streams are answered, never by the dead replica
    for _ in range(4):
        response = speech(cluster, "Still here.")
        assert response.status_code == 200, response.text
        assert response.headers["x-csmstream-replica"] != doomed.replica

    # and Ray replaces it: two healthy replicas again, the dead one not among them
    back = wait_for_replicas(cluster, 2, timeout_s=120, without=doomed.replica)
    assert doomed.replica not in back
