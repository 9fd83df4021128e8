"""`csmstream say --server`: against real servers on loopback (piper, and the tiny CSM model)."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import numpy as np
import pytest
import soundfile as sf
from client_servers import API_KEY, free_port
from websockets.sync.client import connect

from csmstream.cli import main
from csmstream.clients.errors import AuthenticationFailed
from csmstream.clients.tts_stream import TtsChunk, TtsCompletion, TtsStatus, TtsStreamClient

SAMPLE_RATE = 24_000
SUMMARY = re.compile(r"wrote (\S+): (\d+\.\d+) s of audio \((eos|length)\), TTFA (\d+) ms here")


def say(*argv: str) -> int:
    return main(["say", *argv])


def check_wav(path, printed_seconds: float) -> np.ndarray:
    audio, sample_rate = sf.read(str(path), dtype="float32")
    assert sample_rate == SAMPLE_RATE, f"the wav must be 24 kHz, got {sample_rate}"
    assert audio.ndim == 1, f"the wav must be mono, got shape {audio.shape}"
    assert len(audio) / SAMPLE_RATE == pytest.approx(printed_seconds, abs=1e-3), "wav length != completion"
    return audio


def run_say_and_parse(capsys, *argv: str) -> tuple[int, re.Match | None, str]:
    rc = say(*argv)
    captured = capsys.readouterr()
    return rc, SUMMARY.search(captured.out), captured.err


@pytest.mark.parametrize("engine", ["piper", "csm"])
def test_say_server_writes_the_streamed_audio_to_a_24k_wav(
    engine, request, tmp_path, capsys, no_sound, with_key
):
    server = request.getfixturevalue(f"{engine}_server")
    out = tmp_path / "speech.wav"
    rc, summary, err = run_say_and_parse(
        capsys,
        "Hello there, this is a client test.",
        "--server",
        server.url,
        "-o",
        str(out),
        "--max-seconds",
        "0.6",
        "--seed",
        "3",
    )
    assert rc == 0, err
    assert summary is not None, f"no summary line with TTFA in the output; stderr: {err}"
    assert summary.group(1) == str(out)
    audio = check_wav(out, float(summary.group(2)))
    # CSM stops at the first whole 80 ms frame past the limit
    assert 0 < len(audio) <= 8 * 1920, f"max_seconds 0.6 not respected: {len(audio)} samples"
    assert "first audio after" in err, "the time to first audio is printed as it happens"
    assert "no sound card" in err, "without a sound card the command says so"


def test_the_completion_matches_the_audio_received(piper_server):
    async def collect():
        async with await TtsStreamClient.connect(piper_server.url, API_KEY) as client:
            return [event async for event in client.synthesize("Two sentences. Here is the second one.")]

    events = asyncio.run(collect())
    chunks = [e for e in events if isinstance(e, TtsChunk)]
    assert isinstance(events[0], TtsStatus) and isinstance(events[-1], TtsCompletion), events
    assert [c.seq for c in chunks] == list(range(len(chunks))), "chunks arrive in order"
    num_samples = sum(c.pcm.size for c in chunks)
    assert events[-1].audio_seconds == pytest.approx(num_samples / SAMPLE_RATE, abs=1e-3)
    assert all(c.pcm.dtype == np.int16 for c in chunks)


def test_without_sound_card_and_without_o_it_writes_out_wav(
    piper_server, tmp_path, monkeypatch, capsys, no_sound, with_key
):
    monkeypatch.chdir(tmp_path)
    rc, summary, err = run_say_and_parse(capsys, "Where does this go?", "--server", piper_server.url)
    assert rc == 0, err
    assert summary is not None and summary.group(1) == "out.wav", f"summary: {summary}"
    check_wav(tmp_path / "out.wav", float(summary.group(2)))
    assert err.count("no sound card") == 1, "the missing sound card is reported once"


def test_unreachable_server_exits_1_with_advice(tmp_path, capsys, no_sound):
    url = f"http://127.0.0.1:{free_port()}"
    rc = say("Hello?", "--server", url, "-o", str(tmp_path / "x.wav"))
    err = capsys.readouterr().err
    assert rc == 1
    assert f"no csmstream server at {url}" in err and "csmstream serve" in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "x.wav").exists(), "no file is written when nothing was said"


def test_unknown_voice_lists_the_servers_voices(piper_server, tmp_path, capsys, no_sound, with_key):
    voices = httpx.get(piper_server.url + "/v1/voices", headers={"Authorization": f"Bearer {API_KEY}"}).json()
    ids = [v["id"] for v in voices["voices"]]
    assert ids, "the server ships built-in voices"
    rc = say("Hello", "--server", piper_server.url, "--voice", "no-such-voice", "-o", str(tmp_path / "x.wav"))
    err = capsys.readouterr().err
    assert rc == 1
    assert "unknown voice 'no-such-voice'" in err, err
    for voice_id in ids:
        assert voice_id in err, f"{voice_id} missing from: {err}"
    assert not (tmp_path / "x.wav").exists(), "a refused request leaves no file"


def test_missing_or_wrong_api_key_is_explained(piper_server, tmp_path, capsys, monkeypatch, no_sound):
    monkeypatch.delenv("CSMSTREAM_API_KEY", raising=False)
    rc = say("Hello", "--server", piper_server.url, "-o", str(tmp_path / "x.wav"))
    err = capsys.readouterr().err
    assert rc == 1 and "needs an API key" in err and "CSMSTREAM_API_KEY" in err, err
    monkeypatch.setenv("CSMSTREAM_API_KEY", "wrong")
    with pytest.raises(AuthenticationFailed, match="refused the API key"):
        asyncio.run(_one_request(piper_server.url, "wrong"))


async def _one_request(url: str, key: str) -> list:
    async with await TtsStreamClient.connect(url, key) as client:
        return [event async for event in client.synthesize("Hello")]


def test_busy_server_is_explained(csm_server, tmp_path, capsys, no_sound):
    # hold the only slot (and there is no queue) with a long request on another connection
    with connect(csm_server.url.replace("http", "ws") + "/v1/tts/stream", open_timeout=30) as holder:
        holder.send(
            json.dumps(
                {"type": "synthesize", "text": "Hold the slot.", "request_id": "hold", "max_seconds": 30}
            )
        )
        while True:  # wait until it runs, so the next request cannot get the slot
            message = holder.recv(timeout=60)
            if isinstance(message, str) and json.loads(message).get("type") == "audio_chunk":
                break
        rc = say("Am I next?", "--server", csm_server.url, "-o", str(tmp_path / "x.wav"))
        holder.send(json.dumps({"type": "cancel", "request_id": "hold"}))
    err = capsys.readouterr().err
    assert rc == 1
    assert "busy" in err and "try again" in err, err
