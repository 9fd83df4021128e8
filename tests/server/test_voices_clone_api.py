"""`POST /v1/voices` without a transcript, on a real server: the server finds the speech in a long recording,
transcribes it and keeps the cleanest 5-20 s; a recording without speech is refused in plain words."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
import soundfile as sf
from server_ws import gather_one, open_ws, send

from speech_recordings import SENTENCES, noise, recording

pytest.importorskip("piper", reason="piper-tts speaks the test recording")
pytest.importorskip("faster_whisper", reason="cloning without a transcript needs faster-whisper")


def wav_bytes(audio: np.ndarray, sample_rate: int = 24_000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_upload_without_a_transcript_clones_the_speech(server):
    talk = recording(SENTENCES[1:6], gap_seconds=1.2, noise_level=0.003, seed=3)  # about 25 s
    response = httpx.post(
        server.url + "/v1/voices",
        files={"audio": ("talk.wav", wav_bytes(talk), "audio/wav")},
        data={"voice_id": "cloned-upload", "name": "Cloned"},
        timeout=120,
    )
    assert response.status_code == 201, response.text
    info = response.json()
    assert info["id"] == "cloned-upload" and 5.0 <= info["reference_seconds"] <= 20.0, info
    assert info["num_segments"] >= 2, info

    with open_ws(server) as ws:  # the new voice speaks
        send(ws, type="synthesize", text="Hello.", voice_id="cloned-upload", request_id="c", max_seconds=0.3)
        assert gather_one(ws, "c").final["type"] == "completion"
    assert httpx.delete(server.url + "/v1/voices/cloned-upload", timeout=30).status_code == 200


def test_upload_without_speech_is_refused(server):
    response = httpx.post(
        server.url + "/v1/voices",
        files={"audio": ("hiss.wav", wav_bytes(noise(6.0, level=0.05)), "audio/wav")},
        data={"voice_id": "hiss"},
        timeout=120,
    )
    assert response.status_code == 400, response.text
    assert "no speech found in hiss.wav" in response.json()["error"]["message"]
    assert httpx.get(server.url + "/v1/voices/hiss", timeout=30).status_code == 404
