"""`POST /v1/text:synthesize` in the Google Cloud TTS REST shape."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from csmstream.audio.io import read_audio

EXTRA = {"max_seconds": 0.4, "seed": 1}


def synthesize(server, body) -> httpx.Response:
    return httpx.post(server.url + "/v1/text:synthesize", json=body, timeout=60)


def request_body(encoding: str, **audio_config) -> dict:
    return {
        "input": {"text": "Hello from the Google-shaped endpoint."},
        "voice": {"languageCode": "en-US", "name": "default"},
        "audioConfig": {"audioEncoding": encoding, **audio_config},
        **EXTRA,
    }


@pytest.mark.parametrize(
    "encoding, sample_rate", [("LINEAR16", None), ("LINEAR16", 16000), ("MP3", None), ("OGG_OPUS", 48000)]
)
def test_audio_content_decodes_at_the_asked_rate(server, encoding, sample_rate):
    config = {"sampleRateHertz": sample_rate} if sample_rate else {}
    response = synthesize(server, request_body(encoding, **config))
    assert response.status_code == 200, response.text
    audio = base64.b64decode(response.json()["audioContent"])
    if encoding == "LINEAR16":
        assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE", "LINEAR16 is a wav file with its header"
        data_bytes = int.from_bytes(audio[40:44], "little")
        assert data_bytes == len(audio) - 44, "the header must give the real data size"
    samples, rate = read_audio(audio)
    assert rate == (sample_rate or 24_000)
    assert 0.05 < samples.shape[0] / rate < 0.5 and np.all(np.isfinite(samples))


def test_pcm_is_raw_16_bit(server):
    response = synthesize(server, request_body("PCM"))
    audio = base64.b64decode(response.json()["audioContent"])
    assert len(audio) % 2 == 0 and audio[:4] != b"RIFF"


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda b: b.update(input={"ssml": "<speak>Hi</speak>"}), "ssml"),
        (lambda b: b["audioConfig"].update(audioEncoding="MULAW"), "MULAW"),
        (lambda b: b.pop("audioConfig"), "audioConfig"),
        (lambda b: b["audioConfig"].update(speakingRate=1.5), "speakingRate"),
        (lambda b: b["voice"].update(name="nobody-here"), "nobody-here"),
        (lambda b: b["input"].update(text=""), "input.text"),
    ],
)
def test_errors_in_google_shape(server, mutate, fragment):
    body = request_body("MP3")
    mutate(body)
    response = synthesize(server, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT" and fragment in error["message"], (
        error
    )
