"""What the Voices page (and the server behind it) says before a voice is made wrongly: a name or id is
needed, a file that is not audio or a recording too short is refused in words for a person, and on the CPU
voice the pages say that cloned voices and sampling settings change nothing."""

from __future__ import annotations

import wave

import numpy as np
import pytest
from test_voices_page import open_voices_page
from web_helpers import SPEECH_TEXT, screenshot


@pytest.fixture(scope="module")
def piper_web_server(tmp_path_factory):
    from web_server import start_web_server

    server = start_web_server(["--engine", "piper"], tmp_path_factory.mktemp("piper_voices"))
    yield server
    server.stop()


def _short_wav(path, seconds: float = 2.46, rate: int = 24_000):
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav_file:
        wav_file.setnchannels(1)
        wav_file.setsampwidth(2)
        wav_file.setframerate(rate)
        wav_file.writeframes(samples.tobytes())
    return path


def test_the_labels_say_a_name_or_an_id_is_needed(page, web_server, reference_wav):
    open_voices_page(page, web_server)
    assert "optional" not in page.text_content("label[for='voice-name']")
    assert "unless you give a voice id" in page.text_content("label[for='voice-name']")
    # a recording chosen with no name and no id: nothing is sent, the page says what is missing
    page.evaluate("document.getElementById('voice-name').value = ''")
    page.set_input_files("#audio-file", str(reference_wav))
    assert page.input_value("#voice-name") == "hello reference", "the file's name is offered as the name"
    page.fill("#voice-name", "")
    page.fill("#transcript", SPEECH_TEXT)
    page.click("#create")
    assert "Give the voice a name" in page.text_content("#error")
    assert page.evaluate("document.activeElement.id") == "voice-name"


def test_a_file_that_is_not_audio_is_refused_in_plain_words(page, web_server, tmp_path):
    not_audio = tmp_path / "notes.txt"
    not_audio.write_text("these are my notes, not a recording\n" * 20)
    open_voices_page(page, web_server)
    page.set_input_files("#audio-file", str(not_audio))
    page.fill("#transcript", "Hello.")
    page.fill("#voice-name", "Notes")
    page.click("#create")
    page.wait_for_function("document.getElementById('error').textContent.length > 0")
    error = page.text_content("#error")
    assert "“notes.txt” is not a sound file the server can read" in error, error
    assert "BytesIO" not in error and "soundfile" not in error, error
    screenshot(page, "voices_not_audio")


def test_a_recording_under_five_seconds_is_refused(page, web_server, tmp_path):
    open_voices_page(page, web_server)
    page.set_input_files("#audio-file", str(_short_wav(tmp_path / "short.wav")))
    page.fill("#transcript", "Hello.")
    page.click("#create")  # the name comes from the file name
    page.wait_for_function("document.getElementById('error').textContent.length > 0")
    error = page.text_content("#error")
    assert "only 2.5 s long" in error and "at least 5 s" in error, error
    assert web_server.get("/v1/voices/short").status_code == 404, "nothing was created"


def test_on_the_cpu_voice_the_pages_say_voices_and_sampling_do_nothing(page, piper_web_server):
    open_voices_page(page, piper_web_server)
    page.wait_for_selector("#engine-note", state="visible")
    assert "CPU voice" in page.text_content("#engine-note")

    page.goto(piper_web_server.url + "/speak.html")
    page.wait_for_selector("#voice-note", state="visible")
    assert "own voice" in page.text_content("#voice-note")
    page.click("summary:has-text('Sampling')")
    note = page.text_content("#sampling-note")
    assert page.is_visible("#sampling-note") and "ignores temperature, top-k and seed" in note, note

    page.goto(piper_web_server.url + "/talk.html")
    page.wait_for_selector("#voice-note", state="visible")


def test_on_csm_there_is_no_such_note(page, web_server):
    page.goto(web_server.url + "/speak.html")
    page.wait_for_function("document.getElementById('engine').textContent.includes('csm')")
    page.wait_for_timeout(200)
    assert not page.is_visible("#voice-note") and not page.is_visible("#sampling-note")
    open_voices_page(page, web_server)
    page.wait_for_timeout(200)
    assert not page.is_visible("#engine-note")
