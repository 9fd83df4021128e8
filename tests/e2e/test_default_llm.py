"""The conversation that works out of the box: `csmstream serve` with no LLM configured answers with the bundled
instruction-tuned model (the `llm-model` extra). A question spoken by piper goes in through `/v1/realtime`;
the piper voice speaks the answer; Whisper tiny.en listens to that answer, which must hold the fact."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_helpers import silence, speak
from realtime_client import SAMPLE_RATE, RealtimeClient
from realtime_process import start_speech_server

from csmstream.pipeline.llm import bundled_gguf

QUESTION = "What is the capital of France?"
# Without any LLM setting: the default model must take over by itself.
NO_LLM_ENV = {"CSMSTREAM_LLM_BASE_URL": "", "CSMSTREAM_LLM_GGUF": "", "CSMSTREAM_DEFAULT_LLM": "1"}


@pytest.fixture(scope="module")
def default_llm_server(tmp_path_factory):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (the llm extra)")
    if bundled_gguf() is None:
        pytest.skip("the bundled conversation model is not installed (the llm-model extra)")
    server = start_speech_server(
        ["--engine", "piper", "--log-level", "info"], tmp_path_factory.mktemp("voices"), NO_LLM_ENV
    )
    yield server
    server.stop()


def test_serve_says_which_llm_answers(default_llm_server):
    health = default_llm_server.health()
    assert health["llm"]["configured"] is True, health
    assert "SmolLM2" in (health["llm"]["model"] or ""), health
    log = default_llm_server.log()
    assert log.count("conversation LLM: the bundled SmolLM2") == 1, log


def test_a_spoken_factual_question_gets_the_fact_spoken_back(default_llm_server):
    from csmstream.pipeline.stt import load_stt

    audio = np.concatenate([silence(0.5), speak(QUESTION), silence(1.2)])
    with RealtimeClient(default_llm_server.realtime_url) as client:
        client.wait_for("session.created")
        client.stream(audio)
        heard = client.wait_for("conversation.item.input_audio_transcription.completed").event
        response = client.wait_for("response.created").event["response"]
        done = client.wait_for("response.done", timeout_s=120).event["response"]
        answer_pcm = client.audio_of(response["id"])
    assert done["status"] == "completed", done
    assert answer_pcm, "the answer carried no audio"
    answer = np.frombuffer(answer_pcm, "<i2").astype(np.float32) / 32768.0
    spoken = load_stt().transcribe_sync(answer, SAMPLE_RATE)
    assert "paris" in spoken.lower(), (
        f"asked {heard.get('transcript')!r}, the answer spoken was {spoken!r} (expected Paris)"
    )


def test_the_default_llm_fills_in_only_when_nothing_is_configured(monkeypatch):
    from csmstream.config import Settings
    from csmstream.pipeline.llm import with_default_llm
    from csmstream.pipeline.llm.default_model import describe_llm

    for key in ("CSMSTREAM_LLM_BASE_URL", "CSMSTREAM_LLM_GGUF", "CSMSTREAM_DEFAULT_LLM"):
        monkeypatch.delenv(key, raising=False)
    bundled = bundled_gguf()
    settings, line = with_default_llm(Settings())
    if bundled is None:
        assert settings.llm_gguf == "" and "install the llm-model extra" in line, line
    else:
        assert settings.llm_gguf == str(bundled) and line.startswith("conversation LLM: the bundled"), line
        assert describe_llm(settings) == {"configured": True, "model": "SmolLM2-135M-Instruct (Q4_1)"}
    # off by flag / environment
    off, line = with_default_llm(Settings(default_llm=False))
    assert off.llm_gguf == "" and "--no-default-llm" in line
    assert describe_llm(off) == {"configured": False, "model": None}
    monkeypatch.setenv("CSMSTREAM_DEFAULT_LLM", "0")
    assert with_default_llm(Settings())[0].llm_gguf == ""
    # a configured LLM is left alone
    chosen = Settings(llm_base_url="http://127.0.0.1:11434/v1", llm_model="llama3.2")
    assert with_default_llm(chosen)[0] is chosen
    assert describe_llm(chosen) == {"configured": True, "model": "llama3.2"}


def test_serve_has_a_flag_to_turn_it_off():
    import argparse

    from csmstream.commands import serve

    parser = argparse.ArgumentParser()
    serve.add_parser(parser.add_subparsers())
    assert serve._settings(parser.parse_args(["serve", "--no-default-llm"])).default_llm is False
    assert serve._settings(parser.parse_args(["serve"])).default_llm is True
