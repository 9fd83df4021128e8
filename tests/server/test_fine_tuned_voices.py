"""Fine-tuned voices through a real `csmstream serve` and `csmstream say`: a voice with a LoRA adapter and a
base voice requested at once through the official OpenAI client, each getting the audio it gets alone; a
fine-tuned voice added while the server runs; a damaged one refused without harm."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import numpy as np
import openai
import pytest
import soundfile as sf
from server_process import start_server

from csmstream.cli import main
from csmstream.model.checkpoint import load_checkpoint
from csmstream.voices.library import VoiceLibrary
from lora_helpers import make_peft_adapter

pytest.importorskip("peft")
REQUEST = {"max_seconds": 0.8, "seed": 11}


def _reference() -> list:
    return [(0.2 * np.sin(np.arange(48_000) / 7.0).astype(np.float32), 24_000, "hello there")]


@pytest.fixture(scope="module")
def adapters(tiny_checkpoint_dir, tmp_path_factory):
    model = load_checkpoint(str(tiny_checkpoint_dir), device="cpu", dtype="float32").model
    root = tmp_path_factory.mktemp("adapters")
    for name, seed in (("brand", 1), ("later", 2)):
        make_peft_adapter(model, root / name, seed=seed)
    return root


@pytest.fixture(scope="module")
def voices_dir(adapters, tmp_path_factory):
    directory = tmp_path_factory.mktemp("voices")
    library = VoiceLibrary(directory, builtin_dir=None)
    library.create("plain", "Plain", 0, _reference())
    library.create("brand", "Brand", 0, _reference(), adapter_dir=adapters / "brand")
    return directory


@pytest.fixture(scope="module")
def server(engine_args, voices_dir):
    proc = start_server([*engine_args, "--max-slots", "4"], voices_dir)
    yield proc
    proc.stop()


def _speech(client, voice: str) -> bytes:
    return client.audio.speech.create(
        model="csm-1b", voice=voice, input="Welcome to our store.", response_format="pcm", extra_body=REQUEST
    ).content


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, "<i2").astype(np.int32)


def test_fine_tuned_and_base_voices_at_once_each_sound_as_alone(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    alone = {voice: _speech(client, voice) for voice in ("brand", "plain")}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        voices = ["brand", "plain", "brand", "plain"]
        together = list(pool.map(lambda v: _speech(client, v), voices))
    for voice, audio in zip(voices, together, strict=True):
        # the same codes; the audio of a frame decoded in another batch may differ by float rounding
        difference = np.abs(_samples(audio) - _samples(alone[voice]))
        assert len(audio) == len(alone[voice]) > 0 and difference.max() <= 4, f"{voice} changed when batched"
    assert np.abs(_samples(alone["brand"]) - _samples(alone["plain"])).max() > 1000, (
        "the adapter changes nothing"
    )
    adapters = server.health()["adapters"]
    assert adapters["loads"] == 1 and adapters["in_use"] == 0 and adapters["capacity"] == 4, adapters
    metrics = httpx.get(server.url + "/metrics", timeout=30).text
    assert "csmstream_adapters_loaded 1.0" in metrics


def test_a_fine_tuned_voice_added_while_serving_is_spoken_and_a_damaged_one_refused(
    server, voices_dir, adapters
):
    library = VoiceLibrary(voices_dir, builtin_dir=None)
    library.create("later", "Later", 0, _reference(), adapter_dir=adapters / "later")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    assert len(_speech(client, "later")) > 0
    # an adapter damaged on disk after the voice was written
    library.create("damaged", "Damaged", 0, _reference(), adapter_dir=adapters / "later")
    (voices_dir / "damaged" / "adapter" / "adapter_model.safetensors").write_bytes(b"garbage")
    response = httpx.post(
        server.url + "/v1/audio/speech",
        json={"model": "csm-1b", "voice": "damaged", "input": "Hello.", **REQUEST},
        timeout=60,
    )
    assert response.status_code >= 400 and "damaged" in response.text, response.text
    assert server.health()["status"] == "ok" and server.health()["active_sessions"] == 0
    assert len(_speech(client, "brand")) > 0
    # deleting a fine-tuned voice through the API unloads its adapter from the device
    loaded = server.health()["adapters"]["loaded"]
    assert httpx.delete(server.url + "/v1/voices/later", timeout=30).status_code == 200
    deadline = time.monotonic() + 10
    while server.health()["adapters"]["loaded"] != loaded - 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.health()["adapters"]["loaded"] == loaded - 1


def test_say_speaks_a_fine_tuned_voice_locally(tiny_checkpoint_dir, voices_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CSMSTREAM_VOICES_DIR", str(voices_dir))
    outputs = {}
    for voice in ("brand", "plain"):
        wav = tmp_path / f"{voice}.wav"
        argv = ["say", "Welcome.", "--model", str(tiny_checkpoint_dir), "--engine", "csm", "--seed", "3"]
        assert main([*argv, "--voice", voice, "--max-frames", "4", "-o", str(wav)]) == 0
        outputs[voice], _ = sf.read(wav, dtype="float32")
    assert outputs["brand"].shape == outputs["plain"].shape == (4 * 1920,)
    assert not np.array_equal(outputs["brand"], outputs["plain"])
