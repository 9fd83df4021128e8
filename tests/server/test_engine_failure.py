"""A device error that persists: every stream ends with an error, `/health` turns `unhealthy` (503), new
requests are refused, and the process exits non-zero so that a supervisor restarts it."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
from server_process import ServerProcess
from server_ws import gather, next_message, open_ws, send

from csmstream.commands.serve import EXIT_ENGINE_FAILED
from serve_process import start_serve

FAULTY_SERVE = Path(__file__).with_name("faulty_serve.py")


def test_a_persistent_device_error_ends_streams_turns_unhealthy_and_exits_non_zero(engine_args, tmp_path):
    break_file = tmp_path / "break"
    server = start_serve(
        ServerProcess,
        [*engine_args, "--max-slots", "4", "--log-level", "info"],
        tmp_path / "voices",
        env={"CSMSTREAM_TEST_BREAK_FILE": str(break_file)},
        program=[sys.executable, str(FAULTY_SERVE)],
    )
    try:
        assert server.health()["status"] == "ok"
        with open_ws(server) as ws:
            # 1. a healthy request first: the patch is inert until the file exists
            send(ws, type="synthesize", text="Before.", request_id="ok", max_seconds=0.4)
            assert gather(ws, ["ok"])["ok"].final["type"] == "completion"
            # 2. two streams running, then the device breaks under them
            for rid in ("a", "b"):
                send(
                    ws,
                    type="synthesize",
                    text="A long sentence to keep the slot busy.",
                    request_id=rid,
                    audio_encoding="base64",
                )  # JSON frames only: read one by one below
            while next_message(ws)["type"] != "audio_chunk":
                pass
            break_file.touch()
            logs = gather(ws, ["a", "b"], timeout_s=30)
        for rid in ("a", "b"):
            final = logs[rid].final
            assert final["type"] == "error", f"{rid} must end with an error, got {final}"
            assert "engine failed" in final["message"] or "internal" in final["message"], final
        # 3. /health says unhealthy (503) while the server drains, then the process exits non-zero
        statuses = []
        deadline = time.monotonic() + 30
        while server.process.poll() is None and time.monotonic() < deadline:
            try:
                response = httpx.get(server.url + "/health", timeout=2)
                statuses.append((response.status_code, response.json()["status"]))
            except httpx.HTTPError:
                pass  # the listener closed: the process is on its way out
            time.sleep(0.02)
        assert server.process.wait(timeout=30) == EXIT_ENGINE_FAILED, server.log()
        assert statuses, "the server drains before it exits: /health must have answered meanwhile"
        assert all(s == (503, "unhealthy") for s in statuses), f"after the failure /health said {statuses}"
        assert (
            "speech engine unhealthy" in server.log()
            and "exiting so a supervisor restarts it" in server.log()
        )
    finally:
        server.stop()
