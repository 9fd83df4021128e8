"""`/v1/voices`: create from an upload, use it, delete it; bad uploads get clear 400 / 413 errors."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
import soundfile as sf
from server_ws import gather_one, open_ws, send


def wav_bytes(seconds: float, sample_rate: int = 16_000, channels: int = 2) -> bytes:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = 0.3 * np.sin(2 * np.pi * 220.0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))  # not silence
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([tone] * channels, axis=1).astype(np.float32), sample_rate, format="WAV")
    return buffer.getvalue()


def upload(server, files=None, data=None, **kwargs) -> httpx.Response:
    return httpx.post(server.url + "/v1/voices", files=files, data=data, timeout=60, **kwargs)


def test_create_list_use_and_delete_a_voice(server):
    response = upload(
        server,
        files={"audio": ("me.wav", wav_bytes(6.0), "audio/wav")},
        data={
            "transcript": "This is how I sound.",
            "voice_id": "test-voice",
            "name": "Test Voice",
            "speaker": "3",
        },
    )
    assert response.status_code == 201, response.text
    info = response.json()
    assert (info["id"], info["name"], info["speaker"], info["builtin"]) == (
        "test-voice",
        "Test Voice",
        3,
        False,
    )
    assert info["reference_seconds"] == pytest.approx(6.0, abs=0.01), "converted to 24 kHz, same duration"

    listed = httpx.get(server.url + "/v1/voices", timeout=30).json()["voices"]
    assert "test-voice" in [v["id"] for v in listed]
    assert httpx.get(server.url + "/v1/voices/test-voice", timeout=30).json()["id"] == "test-voice"

    with open_ws(server) as ws:
        send(
            ws,
            type="synthesize",
            text="Speaking in the new voice.",
            voice_id="test-voice",
            request_id="v",
            max_seconds=0.3,
        )
        assert gather_one(ws, "v").final["type"] == "completion"

    deleted = httpx.delete(server.url + "/v1/voices/test-voice", timeout=30)
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert httpx.delete(server.url + "/v1/voices/test-voice", timeout=30).status_code == 404
    with open_ws(server) as ws:
        send(ws, type="synthesize", text="Gone.", voice_id="test-voice", request_id="gone")
        assert gather_one(ws, "gone").final["code"] == "unknown_voice"


def test_a_voice_without_an_id_gets_one_from_its_name(server):
    response = upload(
        server,
        files={"audio": ("a.wav", wav_bytes(5.5), "audio/wav")},
        data={"transcript": "Hello.", "name": "Ana María"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["id"].startswith("ana-maria")
    httpx.delete(server.url + "/v1/voices/" + response.json()["id"], timeout=30)


@pytest.mark.parametrize(
    "files, data, status, fragment",
    [
        (
            {"audio": ("x.wav", b"this is not audio at all", "audio/wav")},
            {"transcript": "Hi.", "name": "N"},
            400,
            "“x.wav” is not a sound file the server can read",
        ),
        (
            {"audio": ("x.wav", wav_bytes(2.46), "audio/wav")},
            {"transcript": "Hi.", "name": "N"},
            400,
            "only 2.5 s long; a voice needs at least 5 s",
        ),
        (
            {"audio": ("x.wav", wav_bytes(40.0, 8000, 1), "audio/wav")},
            {"transcript": "Hi.", "name": "L"},
            400,
            "at most",
        ),
        ({"audio": ("x.wav", wav_bytes(5.5), "audio/wav")}, {"transcript": "Hi."}, 400, "name"),
        # no transcript: the server looks for speech to transcribe, and a tone holds none
        ({"audio": ("x.wav", wav_bytes(5.5), "audio/wav")}, {"name": "N"}, 400, "no speech found in x.wav"),
        (
            {"audio": ("x.wav", wav_bytes(5.5), "audio/wav")},
            {"transcript": "  ", "name": "N"},
            400,
            "no speech found",
        ),
        (None, {"transcript": "Hi.", "name": "N"}, 400, "audio"),
        (
            {"audio": ("x.wav", wav_bytes(5.5), "audio/wav")},
            {"transcript": "Hi.", "voice_id": "../etc"},
            400,
            "id",
        ),
        (
            {"audio": ("x.wav", wav_bytes(5.5), "audio/wav")},
            {"transcript": "Hi.", "name": "N", "speaker": "two"},
            400,
            "speaker",
        ),
        (
            {"audio": ("x.wav", wav_bytes(5.5), "audio/wav")},
            {"transcript": "Hi.", "voice_id": "default"},
            400,
            "exists",
        ),
    ],
)
def test_bad_uploads(server, files, data, status, fragment):
    response = upload(server, files=files or {"other": ("o.txt", b"x", "text/plain")}, data=data)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]["message"], response.json()


def test_not_multipart_is_refused(server):
    response = httpx.post(server.url + "/v1/voices", json={"transcript": "Hi."}, timeout=30)
    assert response.status_code == 400 and "multipart" in response.json()["error"]["message"]


def test_upload_over_the_byte_limit_is_413(small_server):
    # small_server accepts 1 MiB; 10 s of 48 kHz stereo float is 3.8 MB
    response = upload(
        small_server,
        files={"audio": ("big.wav", wav_bytes(10.0, 48_000), "audio/wav")},
        data={"transcript": "Hi."},
    )
    assert response.status_code == 413, response.text
    assert "bytes" in response.json()["error"]["message"]


def test_builtin_voices_cannot_be_deleted(server):
    response = httpx.delete(server.url + "/v1/voices/default", timeout=30)
    assert response.status_code == 400 and "built in" in response.json()["error"]["message"]
