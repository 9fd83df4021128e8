"""`POST /v1/audio/speech` through the official `openai` client, and its errors in OpenAI's shape."""

from __future__ import annotations

import httpx
import numpy as np
import openai
import pytest

from csmstream.audio.io import read_audio

# response_format → how to read the bytes back
FORMATS = ["pcm", "wav", "mp3", "opus", "flac"]
EXTRA = {"max_seconds": 0.4, "seed": 5}  # extensions, sent through the client's extra_body


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="not-needed", max_retries=0, timeout=60)


def decode(data: bytes, response_format: str) -> tuple[np.ndarray, int]:
    if response_format == "pcm":  # OpenAI's pcm: raw 16-bit little-endian mono at 24 kHz
        assert len(data) % 2 == 0, "pcm must hold whole 16-bit samples"
        return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0, 24_000
    samples, sample_rate = read_audio(data)  # (S, C)
    return samples.mean(axis=1), sample_rate


@pytest.mark.parametrize("response_format", FORMATS)
def test_streamed_speech_decodes_to_audio(client, response_format):
    with client.audio.speech.with_streaming_response.create(
        model="csm-1b",
        voice="default",
        input="Hello from the speech endpoint.",
        response_format=response_format,
        extra_body=EXTRA,
    ) as response:
        assert response.status_code == 200
        pieces = list(response.iter_bytes())
    data = b"".join(pieces)
    samples, sample_rate = decode(data, response_format)
    assert sample_rate == 24_000
    # 0.4 s at most was asked for; lossy codecs pad a little, so allow a frame or two
    assert 0.05 < samples.shape[0] / sample_rate < 0.4 + 0.1, f"{samples.shape[0]} samples"
    assert np.all(np.isfinite(samples))


def test_models_list_names_the_served_model(client, server):
    models = client.models.list()
    assert [m.id for m in models.data] == [server.health()["model"]]


def post(server, body, **kwargs) -> httpx.Response:
    return httpx.post(server.url + "/v1/audio/speech", timeout=60, **({"json": body} | kwargs))


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"model": "m", "input": "Hi.", "voice": "default", "response_format": "aac"}, "aac"),
        ({"model": "m", "input": "", "voice": "default"}, "input"),
        ({"model": "m", "voice": "default"}, "input"),
        ({"input": "Hi.", "voice": "default"}, "model"),
        ({"model": "m", "input": "Hi.", "voice": "alloy-not-here"}, "alloy-not-here"),
        ({"model": "m", "input": "Hi.", "voice": "default", "speed": 2.0}, "speed"),
        ({"model": "m", "input": "Hi.", "voice": "default", "temperature": -1}, "temperature"),
        ({"model": "m", "input": "Hi." * 1000, "voice": "default"}, "text_too_long"),
    ],
)
def test_bad_requests_get_400_in_openai_error_shape(server, body, fragment):
    response = post(server, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert fragment in (error["message"], error["code"]) or fragment in error["message"], error
    assert error["type"] == "invalid_request_error", error


def test_invalid_json_body(server):
    response = post(server, None, content=b"{oops", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "JSON" in response.json()["error"]["message"]


def test_client_raises_on_a_bad_request(client):
    with pytest.raises(openai.BadRequestError, match="aac"):
        client.audio.speech.create(model="m", voice="default", input="Hi.", response_format="aac")


def test_client_leaving_mid_stream_frees_the_slot(server):
    body = {
        "model": "m",
        "input": "A long answer nobody listens to.",
        "voice": "default",
        "response_format": "pcm",
        "max_seconds": 20.0,
        "seed": 1,
    }
    with httpx.Client(timeout=60) as http:
        with http.stream("POST", server.url + "/v1/audio/speech", json=body) as response:
            assert response.status_code == 200
            chunks = (
                response.iter_raw()
            )  # kept in a variable: a dropped iterator would close the response now
            assert next(chunks), "audio must stream before the request ends"
            health = server.health()
            assert health["active_sessions"] >= 1, health
    # leaving the `with` blocks closed the connection with the body unread
    health = server.wait_idle()
    assert (health["active_sessions"], health["queued"]) == (0, 0), health
