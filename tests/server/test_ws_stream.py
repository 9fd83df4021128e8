"""`/v1/tts/stream` against a real server: audio framing, several requests, incremental text, cancel."""

from __future__ import annotations

import math
import socket

import numpy as np
import pytest
from server_ws import BYTES_PER_SAMPLE, RequestLog, gather, gather_one, next_message, open_ws, send

from csmstream.engine.speech_length import runaway_seconds

SAMPLE_RATE = 24_000
SHORT = 0.4  # seconds of audio per request: the tiny random model rarely stops by itself
LONG = 20.0  # long enough to still be running when the test acts on it


def runaway_audio_seconds(unit: str) -> float:
    """The audio a unit makes on the tiny random model, which never ends by itself: its runaway bound."""
    return math.ceil(runaway_seconds(unit) * 12.5) * 0.08


def check_request_stream(log, fmt: str) -> None:
    """The framing rules every finished request follows."""
    chunks = log.of_type("audio_chunk")
    assert chunks, f"no audio: {log.messages}"
    assert [c["seq"] for c in chunks] == list(range(len(chunks))), "seq must count 0, 1, 2 ... per request"
    for chunk, data in zip(chunks, log.audio, strict=True):
        assert chunk["sample_rate"] == SAMPLE_RATE and chunk["format"] == fmt, chunk
        assert len(data) == chunk["samples"] * BYTES_PER_SAMPLE[fmt], (
            "chunk bytes must equal samples x sample size"
        )
    statuses = [m["status"] for m in log.of_type("audio_status")]
    assert statuses and statuses[-1] == "started", f"audio_status must end with started: {statuses}"
    assert log.messages.index(log.of_type("audio_status")[-1]) < log.messages.index(chunks[0]), (
        "started first"
    )
    completion = log.final
    assert completion is not None and completion["type"] == "completion", (
        f"no completion: {log.messages[-3:]}"
    )
    assert sum(m["type"] == "completion" for m in log.messages) == 1, "exactly one completion"
    num_samples = sum(c["samples"] for c in chunks)
    assert completion["audio_seconds"] == pytest.approx(num_samples / SAMPLE_RATE, abs=1e-3)
    assert completion["ttfa_ms"] is not None and completion["ttfa_ms"] >= 0
    assert completion["rtf"] is None or completion["rtf"] > 0


@pytest.mark.parametrize("fmt", ["pcm_s16le", "pcm_f32le"])
@pytest.mark.parametrize("encoding", ["binary", "base64"])
def test_synthesize_sends_audio_chunks_then_one_completion(server, fmt, encoding):
    with open_ws(server) as ws:
        send(
            ws,
            type="synthesize",
            text="Hello there, this is a test.",
            request_id="r1",
            format=fmt,
            audio_encoding=encoding,
            max_seconds=SHORT,
            seed=7,
        )
        log = gather_one(ws, "r1")
    check_request_stream(log, fmt)
    assert log.final["finish_reason"] in ("eos", "length")
    pcm = log.pcm()
    assert np.all(np.isfinite(pcm)) and np.abs(pcm).max() <= 1.0 + 1e-6, (
        "audio must be finite, within [-1, 1]"
    )
    assert all(("audio" in m) == (encoding == "base64") for m in log.of_type("audio_chunk"))


def test_bare_text_message_is_a_synthesize_and_gets_a_server_request_id(server):
    with open_ws(server) as ws:
        send(ws, text="Just text, as older clients send it.", voice_id="default", max_seconds=SHORT)
        first = next_message(ws)
        request_id = first.get("request_id")
        assert isinstance(request_id, str) and request_id, f"the server must assign a request_id: {first}"
        log = gather(ws, [request_id], logs={request_id: RequestLog(messages=[first])})[request_id]
    check_request_stream(log, "pcm_s16le")


def test_several_requests_run_concurrently_on_one_connection(server):
    ids = ["a", "b", "c"]
    with open_ws(server) as ws:
        for i, request_id in enumerate(ids):
            send(
                ws,
                type="synthesize",
                text=f"Request number {i}, spoken aloud.",
                request_id=request_id,
                max_seconds=SHORT,
                seed=i,
            )
        logs = gather(ws, ids)
    for request_id in ids:
        check_request_stream(logs[request_id], "pcm_s16le")
    # different texts and seeds: each request got its own stream of chunks
    assert not np.array_equal(logs["a"].pcm(), logs["b"].pcm()), "two requests must not share audio"


def test_same_seed_gives_the_same_audio(server):
    with open_ws(server) as ws:
        for request_id in ("x", "y"):
            send(
                ws,
                type="synthesize",
                text="Reproducible words.",
                request_id=request_id,
                max_seconds=SHORT,
                seed=123,
                format="pcm_f32le",
            )
        logs = gather(ws, ["x", "y"])
    # the codes are equal; the decoder's float sums may differ in the last bits when batched differently
    np.testing.assert_allclose(logs["x"].pcm(), logs["y"].pcm(), atol=1e-4)


def test_incremental_text_becomes_one_request_with_continuing_seq(server):
    first = "First sentence here. "  # one unit: the tiny model speaks it up to its runaway bound
    pieces = ["A second one arrives ", "in two pieces. ", "And the last one comes with end."]
    # max_seconds bounds the whole request: the first unit whole, then a little of the next ones
    max_seconds = runaway_audio_seconds(first.strip()) + SHORT
    with open_ws(server) as ws:
        send(ws, type="start", request_id="inc", max_seconds=max_seconds, seed=3, text=first)
        send(ws, type="text", text=pieces[0])  # no request_id: the only open incremental request
        send(ws, type="text", request_id="inc", text=pieces[1])
        send(ws, type="flush", request_id="inc")
        send(ws, type="end", request_id="inc", text=pieces[2])
        log = gather_one(ws, "inc", timeout_s=120)
    check_request_stream(log, "pcm_s16le")
    assert [m["status"] for m in log.of_type("audio_status")].count("started") == 1
    # more audio than the first unit's bound proves a second unit ran under the same id; no more than
    # max_seconds (to the frame) proves it bounds the request, not each unit
    seconds = log.final["audio_seconds"]
    assert runaway_audio_seconds(first.strip()) < seconds <= max_seconds + 0.08, log.final
    assert log.final["finish_reason"] == "length", log.final


def test_incremental_request_with_no_text_completes_empty(server):
    with open_ws(server) as ws:
        send(ws, type="start", request_id="empty")
        send(ws, type="end", request_id="empty")
        log = gather_one(ws, "empty")
    assert log.final["type"] == "completion" and log.final["audio_seconds"] == 0, log.messages
    assert not log.of_type("audio_chunk")


def test_cancel_ends_with_completion_cancelled_and_frees_the_slot(server):
    with open_ws(server) as ws:
        send(
            ws,
            type="synthesize",
            text="A long request that will be cancelled.",
            request_id="c",
            max_seconds=LONG,
            seed=1,
        )
        while next_message(ws)["type"] != "audio_chunk":
            pass
        ws.recv(timeout=30)  # the chunk's binary frame
        send(ws, type="cancel", request_id="c")
        log = gather_one(ws, "c")
    assert log.final["type"] == "completion" and log.final["finish_reason"] == "cancelled", log.final
    assert log.final["audio_seconds"] < LONG
    health = server.wait_idle()
    assert health["active_sessions"] == 0 and health["queued"] == 0, health


def test_cancel_of_an_incremental_request_waiting_for_text(server):
    with open_ws(server) as ws:
        send(ws, type="start", request_id="w")
        send(ws, type="cancel", request_id="w")
        log = gather_one(ws, "w")
    assert log.final["type"] == "completion" and log.final["finish_reason"] == "cancelled"


def test_abrupt_disconnect_mid_stream_cancels_every_request(server):
    ws = open_ws(server)
    for request_id in ("d1", "d2"):
        send(
            ws,
            type="synthesize",
            text="Nobody will hear the end of this.",
            request_id=request_id,
            max_seconds=LONG,
            seed=1,
        )
    while next_message(ws)["type"] != "audio_chunk":
        pass
    assert server.health()["active_sessions"] >= 1, "the requests should be running"
    # no close handshake: the TCP connection just goes away
    ws.socket.shutdown(socket.SHUT_RDWR)
    ws.socket.close()
    health = server.wait_idle()
    assert health["active_sessions"] == 0 and health["queued"] == 0, f"slots leaked: {health}"


def test_incremental_units_are_spoken_with_the_earlier_units_as_context(server):
    """Voice continuity: the second unit is generated after the first one's text and audio, so (greedy) it
    sounds different from the same sentence spoken alone, while the first unit is the same as alone."""
    first = "First sentence here."  # the tiny model speaks it up to its runaway bound, alone or first
    second = "A second sentence follows, and it should carry on the voice."
    opts = dict(greedy=True, format="pcm_f32le")
    with open_ws(server) as ws:
        send(ws, type="synthesize", request_id="a1", text=first, **opts)
        alone_first = gather_one(ws, "a1", timeout_s=120).pcm()
        send(ws, type="synthesize", request_id="a2", text=second, max_seconds=SHORT, **opts)
        alone_second = gather_one(ws, "a2").pcm()
        # the whole request: the first unit as alone, then SHORT seconds of the second
        max_seconds = runaway_audio_seconds(first) + SHORT
        send(ws, type="start", request_id="inc", max_seconds=max_seconds, **opts)
        send(ws, type="text", request_id="inc", text=first + " " + second)
        send(ws, type="end", request_id="inc")
        together = gather_one(ws, "inc", timeout_s=120).pcm()
    n = alone_first.size
    assert n > 0 and together.size > n, f"two units expected: {together.size} samples vs first alone {n}"
    np.testing.assert_allclose(together[:n], alone_first, atol=1e-5, err_msg="the first unit has no context")
    unit2 = together[n:]
    assert not (unit2.size == alone_second.size and np.allclose(unit2, alone_second, atol=1e-5)), (
        "the second unit sounded exactly as if spoken alone: the first unit was not its context"
    )
