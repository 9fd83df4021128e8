"""`GET /health/ready` and `GET /health/live` (server/health.py): readiness follows the engine's status and
the drain, liveness holds while the process answers at all.

The engine statuses that a real process shows only briefly or after a device failure (`starting`,
`unhealthy`) are checked on the app with a stand-in engine; ready/live while a real server drains on SIGTERM
is checked on a real `csmstream serve` (the tiny random CSM checkpoint, whose slow CPU frames keep a stream
running long enough to look)."""

from __future__ import annotations

import json
import signal
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from websockets.sync.client import connect

from csmstream.config import Settings
from csmstream.engine.base import EngineStats, SpeechEngine
from csmstream.server.app import create_app
from csmstream.voices.library import VoiceLibrary
from serve_process import start_server

EXIT_TIMEOUT_S = 60.0


class _StatusEngine(SpeechEngine):
    """An engine that only has a status: what the probes read."""

    name = "stand-in"
    model_name = "none"
    sample_rate = 24000

    def __init__(self) -> None:
        self.current = "ok"

    @property
    def status(self):
        return self.current

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def submit(self, request):
        raise AssertionError("the probes submit nothing")

    def stats(self) -> EngineStats:
        return EngineStats(active_sessions=0, queued=0, max_slots=1, max_queue=0, step_ms_avg=None)


@pytest.fixture
def probe_client(tmp_path):
    engine = _StatusEngine()
    settings = Settings(api_keys="secret-key", voices_dir=tmp_path / "voices")  # the probes need no key
    app = create_app(settings, engine, VoiceLibrary(tmp_path / "voices"))
    with TestClient(app) as client:
        yield client, engine


def test_ready_only_when_the_engine_is_ok_and_live_always(probe_client):
    client, engine = probe_client
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json() == {"ready": True, "status": "ok"}
    for status, words in (("starting", "warming up"), ("draining", "draining"), ("unhealthy", "failed")):
        engine.current = status
        ready = client.get("/health/ready")
        assert ready.status_code == 503, (status, ready.text)
        body = ready.json()
        assert body["ready"] is False and body["status"] == status and words in body["reason"], body
        live = client.get("/health/live")
        assert live.status_code == 200 and live.json() == {"live": True, "status": status}
    # the API itself still wants the key: only the probes (and /health) are public
    assert client.get("/v1/voices").status_code == 401


def test_a_draining_server_is_live_but_not_ready_then_exits_zero(tiny_checkpoint_dir, tmp_path):
    args = ["--engine", "csm", "--model", str(tiny_checkpoint_dir), "--device", "cpu", "--dtype", "float32"]
    server = start_server([*args, "--max-slots", "1", "--drain-timeout", "1.5"], tmp_path / "voices")
    try:
        ready = httpx.get(server.url + "/health/ready", timeout=10)
        assert ready.status_code == 200 and ready.json()["ready"] is True, ready.text
        ws_url = "ws" + server.url[len("http") :] + "/v1/tts/stream"
        with connect(ws_url, open_timeout=30, close_timeout=5, max_size=None) as ws:
            # a stream longer than the drain timeout: the tiny model's window ends it after about 7.8 s of audio,
            # which takes it 3 s or more (measured RTF 0.4 on a quiet machine; a stream that ended before a 3 s
            # drain timeout failed this test once)
            ws.send(
                json.dumps(
                    {
                        "type": "synthesize",
                        "text": "Keep the slot busy.",
                        "request_id": "long",
                        "max_seconds": 10.0,
                    }
                )
            )
            while True:
                frame = ws.recv(timeout=60)
                if isinstance(frame, str) and json.loads(frame).get("status") == "started":
                    break
            server.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            while (ready := httpx.get(server.url + "/health/ready", timeout=10)).status_code == 200:
                assert time.monotonic() < deadline, "still ready 10 s after SIGTERM"
                time.sleep(0.05)
            live = httpx.get(server.url + "/health/live", timeout=10)
            assert ready.status_code == 503 and ready.json()["status"] == "draining", ready.text
            assert "draining" in ready.json()["reason"], ready.text
            assert live.status_code == 200 and live.json() == {"live": True, "status": "draining"}, live.text
            # at the drain timeout the stream ends with the shutdown error, then the server exits 0
            final = None
            while final is None:
                frame = ws.recv(timeout=EXIT_TIMEOUT_S)
                if isinstance(frame, str) and json.loads(frame)["type"] in ("completion", "error"):
                    final = json.loads(frame)
            assert final["type"] == "error" and "shutting down" in final["message"], final
        assert server.process.wait(timeout=EXIT_TIMEOUT_S) == 0, server.log()
    finally:
        server.stop()
