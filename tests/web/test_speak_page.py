"""The Speak page in a real browser: streamed audio plays through the AudioWorklet and matches what came in."""

from __future__ import annotations

import base64

import pytest
from web_helpers import read_wav, screenshot

SAMPLE_RATE = 24_000
FRAME_SAMPLES = 1920  # one 80 ms codec frame


def open_speak_page(page, web_server) -> None:
    page.goto(web_server.url + "/")
    # the voice picker is filled from GET /v1/voices, the engine badge from GET /health
    page.wait_for_function("document.querySelectorAll('#voice option').length > 1")
    page.wait_for_function("document.getElementById('engine').textContent.includes('csm')")


def open_sampling(page) -> None:
    if not page.is_visible("#max-seconds"):
        page.click("summary:has-text('Sampling')")


def speak(page, text: str, max_seconds: float, seed: int = 7) -> None:
    page.fill("#text", text)
    open_sampling(page)
    page.fill("#max-seconds", str(max_seconds))
    page.fill("#seed", str(seed))
    page.click("#speak")


def stats(page) -> dict:
    return page.evaluate("({...window.csmstreamStats})")


# Browser conditions the player must cope with, forced by a script that runs before the page's own.
PLAYBACK_MODES = {
    # the usual path: an AudioContext at 24 kHz, the AudioWorklet plays the samples as they are
    "worklet": ("", "AudioWorklet, 24000 Hz"),
    # a browser that keeps its own rate: the worklet resamples 24 → 48 kHz
    "worklet-resampling": (
        """const Native = window.AudioContext;
        window.AudioContext = class extends Native {
            constructor(options = {}) { super({ ...options, sampleRate: 48000 }); }
        };""",
        "AudioWorklet, 48000 Hz",
    ),
    # no AudioWorklet (pages served over plain http to another machine): scheduled buffers
    "scheduled-buffers": (
        "delete BaseAudioContext.prototype.audioWorklet; delete AudioContext.prototype.audioWorklet;",
        "scheduled buffers, 24000 Hz",
    ),
}


@pytest.mark.parametrize("mode", list(PLAYBACK_MODES))
def test_speak_streams_and_plays_audio(page, web_server, mode):
    init_script, player_kind = PLAYBACK_MODES[mode]
    if init_script:
        page.add_init_script(init_script)
    open_speak_page(page, web_server)
    voices = web_server.get("/v1/voices").json()["voices"]
    options = page.eval_on_selector_all("#voice option", "els => els.map(o => o.value)")
    assert options[1:] == [v["id"] for v in voices], "the picker lists the server's voices, in order"

    speak(page, "Hello from the browser.", max_seconds=1.2)
    page.wait_for_function("window.csmstreamStats.samplesPlayed > 0")
    page.wait_for_function("['done', 'error'].includes(window.csmstreamStats.state)")
    result = stats(page)
    assert result["state"] == "done", f"the request failed: {result['error']}"
    assert result["finishReason"] in ("eos", "length"), result
    assert result["chunks"] >= 1 and result["samplesReceived"] > 0, result
    # everything that arrived was played, through to the end: no chunk dropped or cut short
    assert result["samplesPlayed"] == result["samplesReceived"], result
    assert abs(result["audioSeconds"] * SAMPLE_RATE - result["samplesReceived"]) <= 1, result
    assert result["samplesReceived"] <= 1.2 * SAMPLE_RATE + FRAME_SAMPLES, "max_seconds reached the server"
    assert result["ttfaMs"] > 0 and result["error"] is None, result
    assert "Done" in page.text_content("#status")
    assert page.text_content("#fig-ttfa").endswith("ms")
    assert player_kind in page.text_content("#player-kind"), "the mode under test was the one used"
    screenshot(page, f"speak_done_{mode}")

    # the download is a WAV built in the page from exactly the samples received
    assert page.is_visible("#download")
    wav_b64 = page.evaluate(
        """async () => {
            const blob = await (await fetch(document.getElementById('download').href)).blob();
            const bytes = new Uint8Array(await blob.arrayBuffer());
            let s = ''; for (const b of bytes) s += String.fromCharCode(b);
            return btoa(s);
        }"""
    )
    samples, rate = read_wav(base64.b64decode(wav_b64))
    assert rate == SAMPLE_RATE and samples.shape[0] == result["samplesReceived"]
    assert float(abs(samples).max()) > 0, "the saved audio is not silence"


def test_speak_twice_on_one_connection_with_int16(page, web_server):
    open_speak_page(page, web_server)
    open_sampling(page)
    page.select_option("#format", "pcm_s16le")
    for attempt in range(2):
        speak(page, f"Attempt number {attempt}.", max_seconds=0.5, seed=attempt)
        page.wait_for_function("['done', 'error'].includes(window.csmstreamStats.state)")
        result = stats(page)
        assert result["state"] == "done", result
        assert result["samplesPlayed"] == result["samplesReceived"] > 0, result


def test_cancel_stops_playback_at_once(page, web_server):
    open_speak_page(page, web_server)
    speak(page, "A long sentence that would take many seconds to say out loud, " * 3, max_seconds=12)
    page.wait_for_function("window.csmstreamStats.samplesPlayed > 0")
    page.click("#cancel")
    page.wait_for_function("window.csmstreamStats.state === 'cancelled'")
    page.wait_for_timeout(300)  # let any late chunk or stats message land
    before = stats(page)["samplesPlayed"]
    page.wait_for_timeout(400)
    after = stats(page)
    assert after["samplesPlayed"] == before, "playback went on after Cancel"
    assert after["samplesPlayed"] < 12 * SAMPLE_RATE, "it was cancelled before the end"
    assert page.is_disabled("#cancel")


def test_server_errors_are_shown(page, web_server):
    open_speak_page(page, web_server)
    # a voice the server does not have: its `error` message must reach the user
    page.evaluate("document.getElementById('voice').add(new Option('ghost', 'no-such-voice'))")
    page.select_option("#voice", "no-such-voice")
    page.fill("#text", "Hello.")
    page.click("#speak")
    page.wait_for_function("window.csmstreamStats.state === 'error'")
    assert "unknown_voice" in page.text_content("#error")
    assert page.get_attribute("#error", "role") == "alert"
    screenshot(page, "speak_error")
