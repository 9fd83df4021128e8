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
    for gauge in ("csmstream_active_sessions", "csmstream_queued_sessions", "csmstream_max_slots"):
        assert gauge in after, f"{gauge} missing"
