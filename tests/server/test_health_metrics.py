"""`/health` and `/metrics`."""

from __future__ import annotations

import httpx
from server_ws import gather_one, open_ws, send


def test_health_reports_the_engine_and_its_load(server):
    health = server.health()
    assert health["status"] == "ok"
    assert isinstance(health["engine"], str) and isinstance(health["model"], str)
    assert health["max_slots"] >= 1
    assert health["active_sessions"] >= 0 and health["queued"] >= 0
    # the warm-up measured the step: the real-time capacity and the fitted cost are known
    assert isinstance(health["capacity_streams"], int) and health["capacity_streams"] >= 0, health
    assert health["streams_behind"] >= 0, health
    assert health["step_fixed_ms"] >= 0 and health["step_per_stream_ms"] >= 0, health


def test_metrics_count_requests_errors_and_latency(server):
    def scrape() -> dict[str, float]:
        response = httpx.get(server.url + "/metrics", timeout=30)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        values = {}
        for line in response.text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    before = scrape()
    with open_ws(server) as ws:
        send(ws, type="synthesize", text="Counted.", request_id="m", max_seconds=0.3)
        gather_one(ws, "m")
        send(ws, type="synthesize", text="Hi.", voice_id="nobody", request_id="e")
        gather_one(ws, "e")
    after = scrape()
    key = 'csmstream_requests_total{protocol="ws"}'
    assert after[key] - before.get(key, 0) == 2
    key = 'csmstream_errors_total{code="unknown_voice"}'
    assert after[key] - before.get(key, 0) == 1
    assert after["csmstream_ttfa_seconds_count"] > before.get("csmstream_ttfa_seconds_count", 0)
    for gauge in (
        "csmstream_active_sessions",
        "csmstream_queued_sessions",
        "csmstream_max_slots",
        "csmstream_capacity_streams",
        "csmstream_streams_behind",
        'csmstream_step_cost_ms{term="fixed"}',
        'csmstream_step_cost_ms{term="per_stream"}',
    ):
        assert gauge in after, f"{gauge} missing"
    # how the step runs: on this CPU the step is eager (compile is for CUDA), built at warm-up, never rebuilt
    assert after["csmstream_step_shapes"] >= 1
    assert after["csmstream_compile_enabled"] == 0 and after["csmstream_cuda_graphs"] == 0
    assert after["csmstream_recompiles_after_warmup"] == 0
    health = server.health()
    assert health["compile"]["warmed_up"] is True, health["compile"]
