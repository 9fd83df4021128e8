"""One `/v1/realtime` client flooding `input_audio_buffer.append` must not stall the server for everyone else
(issue 9, item 1): appends within the limit are fed to the VAD in slices, appends over it get a clear `error`
and the session goes on, and a WebSocket message over the server's size limit closes that connection alone
with 1009 (message too big)."""

from __future__ import annotations

import base64
import json
import threading
import time

import httpx
import numpy as np
from realtime_client import RealtimeClient, pcm16
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from csmstream.server.realtime_events import MAX_APPEND_SECONDS

SAMPLE_RATE = 24_000
# Before the fix, five 10 MB appends held the event loop for 10 s (/health 0.05 s → 2.35 s). The one timing
# assertion this issue asks for; the bound is generous (2 shared cores, other tests running).
HEALTH_P95_BOUND_S = 1.0
WS_MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # csmstream serve's WebSocket message limit (commands/serve.py)


def _append_event(audio: np.ndarray) -> str:
    return json.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm16(audio)).decode("ascii")}
    )


def _quiet(seconds: float, seed: int = 0) -> np.ndarray:
    """Low noise: the VAD analyses all of it and hears no speech (no turn, no transcription)."""
    return np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE)).astype(np.float32) * 1e-3


class HealthProbe:
    """Times `GET /health` back to back on its own thread, as another client of the same server would."""

    def __init__(self, url: str) -> None:
        self.url = url + "/health"
        self.latencies_s: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="health-probe")

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                t0 = time.monotonic()
                client.get(self.url)
                self.latencies_s.append(time.monotonic() - t0)
                time.sleep(0.02)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def test_append_flood_leaves_other_clients_responsive(server_without_llm):
    big = _append_event(_quiet(MAX_APPEND_SECONDS - 1))  # just within the limit: ~3.8 MB each
    too_big = _append_event(_quiet(160, seed=1))  # ~10 MB, the appends: over the limit
    with RealtimeClient(server_without_llm.realtime_url) as flooder:
        flooder.wait_for("session.created")
        with HealthProbe(server_without_llm.url) as probe:
            time.sleep(0.3)  # a baseline reading or two
            mark = flooder.mark()
            for _ in range(6):
                flooder.send_raw(big)
            for _ in range(3):
                flooder.send_raw(too_big)
            for _ in range(2):
                flooder.send_raw(big)
            # events are handled in order: `cleared` comes once every append before it has been analysed
            flooder.send("input_audio_buffer.clear")
            flooder.wait_for("input_audio_buffer.cleared", timeout_s=180, after=mark)
        # 1. the other client was served all along
        latencies = sorted(probe.latencies_s)
        assert len(latencies) >= 10, f"too few /health readings during the flood: {latencies}"
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        print(f"/health during the flood: p95 {p95:.3f} s, max {latencies[-1]:.3f} s, n={len(latencies)}")
        assert p95 < HEALTH_P95_BOUND_S, (
            f"/health p95 {p95:.2f} s during the flood (max {latencies[-1]:.2f} s, {len(latencies)} readings)"
        )
        # 2. each append over the limit got a clear error
        errors = flooder.of_type("error")
        assert [e["error"]["code"] for e in errors] == ["audio_too_long"] * 3, errors
        assert errors[0]["error"]["param"] == "audio"
        assert f"at most {MAX_APPEND_SECONDS} s" in errors[0]["error"]["message"]
        # 3. and the session goes on
        mark = flooder.mark()
        flooder.send("input_audio_buffer.append", audio=base64.b64encode(pcm16(_quiet(0.1))).decode())
        flooder.send("input_audio_buffer.clear")
        flooder.wait_for("input_audio_buffer.cleared", after=mark)
        assert not flooder.closed


def test_message_over_the_websocket_limit_closes_that_connection_only(server_without_llm):
    with RealtimeClient(server_without_llm.realtime_url) as bystander:
        bystander.wait_for("session.created")
        with connect(server_without_llm.realtime_url, open_timeout=30, max_size=None) as ws:
            assert json.loads(ws.recv(timeout=30))["type"] == "session.created"
            ws.send("x" * (WS_MAX_MESSAGE_BYTES + 1))
            try:
                while True:
                    ws.recv(timeout=30)
            except ConnectionClosed as exc:
                assert exc.rcvd is not None and exc.rcvd.code == 1009, exc  # message too big
        mark = bystander.mark()
        bystander.send("input_audio_buffer.clear")
        bystander.wait_for("input_audio_buffer.cleared", after=mark)
    assert server_without_llm.health()["status"] == "ok"
