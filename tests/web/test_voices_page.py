"""The Voices page in a real browser: create a voice from a real speech clip, list it, delete it."""

from __future__ import annotations

import uuid

import pytest
from web_helpers import SPEECH_TEXT, screenshot


def open_voices_page(page, web_server) -> None:
    page.goto(web_server.url + "/voices.html")
    page.wait_for_selector("#voice-list[aria-busy='false']")


def test_create_list_and_delete_a_voice(page, web_server, reference_wav):
    open_voices_page(page, web_server)
    builtin_ids = [v["id"] for v in web_server.get("/v1/voices").json()["voices"]]
    assert page.evaluate("window.csmstreamVoices.ids") == builtin_ids

    voice_id = f"web-test-{uuid.uuid4().hex[:8]}"
    page.set_input_files("#audio-file", str(reference_wav))
    assert page.is_visible("#preview"), "the chosen clip can be listened to before uploading"
    page.fill("#transcript", SPEECH_TEXT)
    page.fill("#voice-name", "Web Test")
    page.fill("#voice-id", voice_id)
    page.fill("#speaker", "2")
    page.click("#create")
    page.wait_for_selector(f"li[data-voice-id='{voice_id}']")
    assert "Created" in page.text_content("#status")
    assert page.input_value("#transcript") == "", "the form is cleared for the next voice"
    screenshot(page, "voices_created")

    # the server really has it, with what the form said
    created = web_server.get(f"/v1/voices/{voice_id}")
    assert created.status_code == 200, created.text
    info = created.json()
    assert info["name"] == "Web Test" and info["speaker"] == 2 and not info["builtin"]
    assert info["reference_seconds"] > 1.0, "the whole clip was uploaded"

    # built-in voices cannot be deleted, so they offer no Delete button
    for builtin_id in builtin_ids:
        assert page.locator(f"li[data-voice-id='{builtin_id}'] button:has-text('Delete')").count() == 0

    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.click(f"li[data-voice-id='{voice_id}'] button:has-text('Delete')")
    page.wait_for_selector(f"li[data-voice-id='{voice_id}']", state="detached")
    assert dialogs and voice_id in dialogs[0], "deleting asks first"
    assert "Deleted" in page.text_content("#status")
    assert web_server.get(f"/v1/voices/{voice_id}").status_code == 404


def test_declined_confirmation_keeps_the_voice(page, web_server, reference_wav):
    voice_id = f"web-keep-{uuid.uuid4().hex[:8]}"
    open_voices_page(page, web_server)
    page.set_input_files("#audio-file", str(reference_wav))
    page.fill("#transcript", SPEECH_TEXT)
    page.fill("#voice-id", voice_id)
    page.click("#create")
    page.wait_for_selector(f"li[data-voice-id='{voice_id}']")
    page.on("dialog", lambda dialog: dialog.dismiss())
    page.click(f"li[data-voice-id='{voice_id}'] button:has-text('Delete')")
    page.wait_for_timeout(300)
    assert web_server.get(f"/v1/voices/{voice_id}").status_code == 200
    assert page.locator(f"li[data-voice-id='{voice_id}']").count() == 1


def test_record_a_clip_with_the_microphone(page, web_server):
    """Chromium's fake microphone (a beep) → the capture worklet at 24 kHz → a WAV the server accepts."""
    voice_id = f"web-rec-{uuid.uuid4().hex[:8]}"
    open_voices_page(page, web_server)
    page.click("#record")
    page.wait_for_function(
        "document.getElementById('record').getAttribute('aria-pressed') === 'true'"
        " || document.getElementById('error').textContent"
    )
    assert page.text_content("#error") == "", "the microphone started"
    # the server takes references of 5 s or more
    page.wait_for_function("parseFloat(document.getElementById('record-time').textContent) >= 5.3")
    page.click("#record")
    page.wait_for_function("document.getElementById('record-time').textContent.includes('recorded')")
    recorded_s = float(page.text_content("#record-time").split()[0])
    assert recorded_s >= 5.2, "the recording holds about as much audio as time passed"
    assert page.is_visible("#preview")
    peak = page.evaluate(
        """async () => {
            const bytes = await (await fetch(document.getElementById('preview').src)).arrayBuffer();
            const pcm = new Int16Array(bytes, 44);
            return pcm.reduce((m, x) => Math.max(m, Math.abs(x)), 0) / 32768;
        }"""
    )
    assert peak > 0.01, "the recording holds the fake microphone's beeps, not silence"
    page.fill("#transcript", "Beep beep.")
    page.fill("#voice-id", voice_id)
    page.click("#create")
    page.wait_for_selector(f"li[data-voice-id='{voice_id}']")
    info = web_server.get(f"/v1/voices/{voice_id}").json()
    assert abs(info["reference_seconds"] - recorded_s) < 0.15, (info, recorded_s)


def test_server_errors_are_shown(page, web_server, reference_wav):
    open_voices_page(page, web_server)
    page.click("#create")  # nothing chosen: the page says what is missing, nothing is sent
    assert "audio file" in page.text_content("#error")

    # a duplicate id: the server's own message reaches the user
    page.set_input_files("#audio-file", str(reference_wav))
    page.fill("#transcript", SPEECH_TEXT)
    page.fill("#voice-id", "default")
    page.click("#create")
    page.wait_for_function("document.getElementById('error').textContent.includes('already exists')")
    screenshot(page, "voices_error")


def test_create_a_voice_from_a_recording_without_a_transcript(page, web_server, tmp_path):
    """The transcript is optional: the server finds the speech in the recording and transcribes it."""
    pytest.importorskip("faster_whisper", reason="cloning without a transcript needs faster-whisper")
    from speech_recordings import SENTENCES, recording, write_wav

    wav = write_wav(tmp_path / "long talk.wav", recording(SENTENCES[:3], gap_seconds=0.8))
    voice_id = f"web-clone-{uuid.uuid4().hex[:8]}"
    open_voices_page(page, web_server)
    assert "optional" in page.text_content("label[for='transcript']")
    assert page.get_attribute("#transcript", "required") is None
    page.set_input_files("#audio-file", str(wav))
    page.fill("#voice-id", voice_id)
    page.click("#create")
    page.wait_for_selector(f"li[data-voice-id='{voice_id}']")
    assert "Created" in page.text_content("#status") and page.text_content("#error") == ""
    info = web_server.get(f"/v1/voices/{voice_id}").json()
    assert 5.0 <= info["reference_seconds"] <= 20.0 and info["num_segments"] >= 2, info
