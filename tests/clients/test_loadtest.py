"""`csmstream loadtest`: the jitter buffer on a simulated clock, and short runs against a real piper server
(the shared `piper_server` of tests/clients, which wants an API key)."""

from __future__ import annotations

import json

import pytest
from client_servers import API_KEY, free_port

from csmstream import cli
from csmstream.clients.loadtest.listener import JitterBuffer, play_back
from csmstream.clients.loadtest.report import concurrency
from csmstream.clients.loadtest.workload import Workload
from csmstream.errors import BadRequest


def loadtest(monkeypatch, *argv: str) -> int:
    """`csmstream loadtest ARGV` through the real entry point (its error handling included), building only
    this subcommand's parser (the others import heavy modules)."""
    monkeypatch.setattr(cli, "SUBCOMMANDS", ["loadtest"])
    return cli.main(["loadtest", *argv])


# ---- the listener's jitter buffer, on a simulated clock ------------------------------------------------------
def test_audio_faster_than_real_time_is_heard_without_underruns():
    buffer = JitterBuffer(jitter_s=0.2)
    clock_s = 0.0
    for _ in range(30):  # 0.32 s of audio every 0.16 s: twice real time
        buffer.receive(clock_s, 0.32)
        clock_s += 0.16
    buffer.end(clock_s)
    assert buffer.playback().underruns == 0
    assert buffer.playback().underrun_s == 0.0
    assert buffer.drained_at_s() == pytest.approx(30 * 0.32), "playback started with the first chunk"


def test_a_stall_longer_than_the_buffer_is_one_underrun_of_its_length():
    buffer = JitterBuffer(jitter_s=0.2)
    buffer.receive(0.0, 0.5)  # plays from 0.0; runs dry at 0.5
    buffer.receive(0.3, 0.5)  # now dry at 1.0
    buffer.receive(2.0, 0.1)  # stalled: 1.0 s of silence so far; 0.1 s < jitter: still buffering
    buffer.receive(2.25, 0.4)  # 0.5 s buffered: playback restarts at 2.25
    buffer.end(2.5)
    assert buffer.playback().underruns == 1
    assert buffer.playback().underrun_s == pytest.approx(1.25), "from dry (1.0) to restart (2.25)"
    assert play_back([(0.0, 0.5), (0.3, 0.5), (2.0, 0.1), (2.25, 0.4)], 0.2).underruns == 1


def test_a_listener_who_stops_during_a_stall_heard_the_silence_until_then():
    buffer = JitterBuffer(jitter_s=0.2)
    buffer.receive(0.0, 0.4)
    buffer.stop(1.0)  # dry at 0.4, stopped (cancel) at 1.0
    assert buffer.playback().underruns == 1
    assert buffer.playback().underrun_s == pytest.approx(0.6)
    buffer.receive(1.2, 1.0)  # audio after the stop is not heard
    assert buffer.received_s == pytest.approx(0.4)


def test_waiting_for_the_first_audio_is_no_underrun():
    buffer = JitterBuffer(jitter_s=0.2)
    buffer.receive(3.0, 0.1)  # below the jitter buffer: not playing yet
    buffer.end(3.1)  # the whole utterance is there: it plays
    assert buffer.playback().underruns == 0
    assert buffer.drained_at_s() == pytest.approx(3.2)


def test_concurrency_counts_streams_held_at_once():
    most, mean = concurrency([(0.0, 2.0), (1.0, 3.0), (2.0, 4.0)], span_s=4.0)
    assert most == 2, "a stream ending as another starts is not a third at once"
    assert mean == pytest.approx(6.0 / 4.0)


def test_the_workload_arrives_within_the_ramp_and_refuses_nonsense():
    workload = Workload(users=5, ramp_s=3.0, duration_s=10.0, seed=4)
    arrivals = workload.arrivals_s()
    assert len(arrivals) == 5 and arrivals == sorted(arrivals) and 0.0 <= arrivals[0] and arrivals[-1] <= 3.0
    assert arrivals == Workload(users=5, ramp_s=3.0, duration_s=10.0, seed=4).arrivals_s(), "seeded"
    with pytest.raises(BadRequest, match="--duration"):
        Workload(users=1, ramp_s=5.0, duration_s=5.0)
    with pytest.raises(BadRequest, match="must not exceed 1"):
        Workload(users=1, ramp_s=0.0, duration_s=5.0, cancel_fraction=0.7, disconnect_fraction=0.5)


# ---- against a real server ---------------------------------------------------------------------------------
def run_json(monkeypatch, capsys, url: str, *argv: str) -> dict:
    rc = loadtest(monkeypatch, url, *argv, "--json")
    out = capsys.readouterr().out
    assert rc in (0, 3), f"the run itself must succeed (held or not); got {rc}: {out}"
    report = json.loads(out)
    assert report["errors"] == 0, report["first_errors"]
    assert report["started"] == (
        report["completed"] + report["cancelled"] + report["disconnected"] + report["errors"]
    ), report
    assert report["streams_with_audio"] == report["started"], "every stream got audio before its end"
    return report


def test_a_short_run_against_piper_reports_ttfa_and_counts(piper_server, monkeypatch, capsys):
    monkeypatch.setenv("CSMSTREAM_API_KEY", API_KEY)
    argv = ("--users", "3", "--ramp", "2", "--duration", "6", "--seed", "1")
    fractions = ("--cancel-fraction", "0", "--disconnect-fraction", "0")
    report = run_json(monkeypatch, capsys, piper_server.url, *argv, *fractions)
    assert report["started"] >= 3 and report["completed"] == report["started"], report
    ttfa = report["ttfa_ms"]
    assert 0 < ttfa["p50"] <= ttfa["p90"] <= ttfa["p99"], ttfa
    assert 1 <= report["concurrent_max"] <= 3 and 0 < report["concurrent_mean"] <= 3
    assert report["audio_s"] > 3.0 and report["verdict"].split()[0] in ("HELD", "NOT")


def test_cancels_and_hang_ups_happen_and_leave_no_session_behind(piper_server, monkeypatch, capsys):
    monkeypatch.setenv("CSMSTREAM_API_KEY", API_KEY)
    # every stream cancels or hangs up; seed 1 gives each user two-sentence texts first, so that the action
    # (0.05-0.5 s after the first audio) falls before piper's second sentence
    fractions = ("--cancel-fraction", "0.5", "--disconnect-fraction", "0.5")
    argv = ("--users", "3", "--ramp", "1", "--duration", "5", "--seed", "1", *fractions)
    report = run_json(monkeypatch, capsys, piper_server.url, *argv)
    # a cancel or hang-up only counts when it lands before the stream's end (a cancel is confirmed by a
    # `completion` `cancelled`); on a loaded machine piper may finish first, so ask for one of them at least
    assert report["cancelled"] + report["disconnected"] >= 1, report
    health = piper_server.wait_idle(timeout_s=15.0)
    assert health["active_sessions"] == 0 and health["queued"] == 0, f"a session leaked: {health}"


def test_a_wrong_api_key_is_one_clear_error(piper_server, monkeypatch, capsys):
    monkeypatch.delenv("CSMSTREAM_API_KEY", raising=False)
    argv = ("--users", "2", "--ramp", "1", "--duration", "3")
    assert loadtest(monkeypatch, piper_server.url, *argv, "--api-key", "not-the-key") == 1
    err = capsys.readouterr().err
    assert "refused the API key" in err and "Traceback" not in err, err
    assert loadtest(monkeypatch, piper_server.url, *argv) == 1
    assert "needs an API key" in capsys.readouterr().err


def test_an_unreachable_address_is_one_clear_error(monkeypatch, capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert loadtest(monkeypatch, url, "--users", "1", "--ramp", "0", "--duration", "2") == 1
    err = capsys.readouterr().err
    assert f"no csmstream server at {url}" in err and "Traceback" not in err, err


def test_nonsense_flags_are_refused_before_connecting(monkeypatch, capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert loadtest(monkeypatch, url, "--users", "2", "--ramp", "10", "--duration", "5") == 1
    assert "must be longer than --ramp" in capsys.readouterr().err
