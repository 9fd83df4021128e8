"""Helpers of the browser tests (a plain module: test files import it; they never import conftest)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import wave
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS_DIR = REPO_ROOT / "artifacts" / "screenshots"
SPEECH_TEXT = "Hello there. What is the capital of France?"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    # a fake microphone (a beep) granted without a prompt, for recording in the Voices page
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


def chromium_executable() -> str | None:
    for candidate in (os.environ.get("CSMSTREAM_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def launch_chromium(driver, extra_args: list[str] = ()):
    return driver.chromium.launch(executable_path=chromium_executable(), args=[*CHROMIUM_ARGS, *extra_args])


@contextlib.contextmanager
def talk_page_with_fake_microphone(driver, server_url: str, wav: Path):
    """The Talk page of `server_url` in a Chromium whose microphone plays `wav` once: yields (page, the page's
    JavaScript errors); the browser is closed after."""
    browser = launch_chromium(driver, [f"--use-file-for-fake-audio-capture={wav}%noloop"])
    try:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.set_default_timeout(120_000)
        page.goto(server_url + "/talk.html")
        yield page, errors
    finally:
        browser.close()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def read_wav(path_or_bytes) -> tuple[np.ndarray, int]:
    """16-bit mono/stereo WAV → (S,) float32 mono and its rate (only what these tests write or receive)."""
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    with wave.open(source, "rb") as wav_file:
        assert wav_file.getsampwidth() == 2, "the tests only handle 16-bit WAV"
        data = np.frombuffer(wav_file.readframes(wav_file.getnframes()), dtype="<i2")
        channels = wav_file.getnchannels()
        return data.reshape(-1, channels).mean(axis=1).astype(np.float32) / 32768.0, wav_file.getframerate()
