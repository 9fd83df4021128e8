"""The Talk page in a real browser.

1. Against a scripted `/v1/realtime` inside the page (a stand-in WebSocket that records what the page sends
   and replays server events the test chooses): the microphone is streamed, transcripts and state are shown,
   and barge-in silences the assistant at once. This checks the page's own logic, event by event.
2. Against the real server, with Chromium's fake microphone playing a spoken question from a WAV file:
   a whole conversation (speech recognition, LLM, speech). It skips while the server has no `/v1/realtime`.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest
from web_helpers import SPEECH_TEXT, screenshot, talk_page_with_fake_microphone

SAMPLE_RATE = 24_000

# A stand-in for the realtime WebSocket, installed before the page's scripts run. It opens at once, keeps
# what the page sends in `window.__sent`, and `window.__server(event)` delivers a server event.
FAKE_REALTIME_SOCKET = """
(() => {
  const Native = window.WebSocket;
  window.__sent = [];
  class FakeRealtimeSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      window.__socket = this;
      setTimeout(() => { this.readyState = 1; this.onopen && this.onopen({}); }, 10);
    }
    send(data) { window.__sent.push(JSON.parse(data)); }
    close(code = 1000) {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.onclose && this.onclose({ code, reason: "" });
    }
  }
  for (const [name, value] of Object.entries({ CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 })) {
    FakeRealtimeSocket[name] = value;
  }
  window.WebSocket = function (url, protocols) {
    return String(url).includes("/v1/realtime") ? new FakeRealtimeSocket(url) : new Native(url, protocols);
  };
  Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  window.__server = (event) => window.__socket.onmessage({ data: JSON.stringify(event) });
})();
"""


def tone_pcm16_b64(seconds: float, frequency_hz: float = 220.0) -> str:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    samples = (0.3 * np.sin(2 * np.pi * frequency_hz * t) * 32767).astype("<i2")
    return base64.b64encode(samples.tobytes()).decode("ascii")


def talk(page) -> dict:
    return page.evaluate("({...window.csmstreamTalk})")


def sent_of_type(page, kind: str) -> list[dict]:
    return page.evaluate(f"window.__sent.filter(e => e.type === {kind!r})")


def test_talk_page_streams_the_microphone_shows_the_turns_and_barges_in(page, web_server):
    page.add_init_script(FAKE_REALTIME_SOCKET)
    page.goto(web_server.url + "/talk.html")
    page.wait_for_function("document.querySelectorAll('#voice option').length > 1")
    page.select_option("#voice", "narrator")
    page.click("#mic")
    page.wait_for_function("window.csmstreamTalk.connected")

    # 1. the session is configured, then the microphone streams as base64 PCM16
    first = page.evaluate("window.__sent[0]")
    assert first["type"] == "session.update", first
    assert first["session"]["voice"] == "narrator"
    assert first["session"]["input_audio_format"] == "pcm16"
    page.wait_for_function("window.__sent.filter(e => e.type === 'input_audio_buffer.append').length >= 40")
    appended = sent_of_type(page, "input_audio_buffer.append")
    pcm = np.concatenate([np.frombuffer(base64.b64decode(e["audio"]), dtype="<i2") for e in appended])
    assert np.abs(pcm).max() > 300, "the fake microphone's beeps (one a second) arrive, not silence"
    assert page.get_attribute("#mic", "aria-pressed") == "true"

    # 2. a user turn: listening → thinking, and the transcript is shown
    page.evaluate("__server({type: 'session.updated', session: {}})")
    assert talk(page)["state"] == "listening"
    page.evaluate(
        "__server({type: 'input_audio_buffer.speech_started', item_id: 'item_u1', audio_start_ms: 0})"
    )
    page.evaluate(
        "__server({type: 'input_audio_buffer.speech_stopped', item_id: 'item_u1', audio_end_ms: 900})"
    )
    assert talk(page)["state"] == "thinking"
    page.evaluate(
        "__server({type: 'conversation.item.input_audio_transcription.completed',"
        " item_id: 'item_u1', content_index: 0, transcript: 'What is the capital of France?'})"
    )
    assert talk(page)["userTranscripts"] == ["What is the capital of France?"]
    assert page.locator("#transcript li.user").last.text_content().endswith("What is the capital of France?")

    # 3. the assistant answers: its text and audio (3 s, far more than plays before the barge-in)
    page.evaluate("__server({type: 'response.created', response: {id: 'resp_1', status: 'in_progress'}})")
    page.evaluate(
        "__server({type: 'response.audio_transcript.delta', response_id: 'resp_1', item_id: 'item_a1',"
        " delta: 'Paris is the capital.'})"
    )
    audio = tone_pcm16_b64(3.0)
    page.evaluate(
        f"__server({{type: 'response.audio.delta', response_id: 'resp_1', item_id: 'item_a1', delta: '{audio}'}})"
    )
    page.wait_for_function(
        "window.csmstreamTalk.state === 'speaking' && window.csmstreamTalk.samplesPlayed > 0"
    )
    assert talk(page)["assistantText"] == "Paris is the capital."
    assert "Paris is the capital." in page.locator("#transcript li.assistant").last.text_content()
    screenshot(page, "talk_speaking")

    # 4. barge-in: the user speaks over the assistant; playback stops at once, the server hears how much
    page.evaluate(
        "__server({type: 'input_audio_buffer.speech_started', item_id: 'item_u2', audio_start_ms: 2000})"
    )
    after_barge_in = talk(page)
    assert after_barge_in["state"] == "listening" and after_barge_in["bargeIns"] == 1
    page.wait_for_timeout(300)
    played = talk(page)["samplesPlayed"]
    page.wait_for_timeout(400)
    assert talk(page)["samplesPlayed"] == played < 3 * SAMPLE_RATE, "playback stopped at the barge-in"
    truncate = sent_of_type(page, "conversation.item.truncate")
    assert len(truncate) == 1 and truncate[0]["item_id"] == "item_a1" and truncate[0]["content_index"] == 0
    assert abs(truncate[0]["audio_end_ms"] - played * 1000 / SAMPLE_RATE) <= 100, (truncate, played)

    # late audio of the interrupted response is dropped; the next response plays
    page.evaluate(
        f"__server({{type: 'response.audio.delta', response_id: 'resp_1', item_id: 'item_a1', delta: '{audio}'}})"
    )
    page.wait_for_timeout(300)
    assert talk(page)["samplesPlayed"] == played
    page.evaluate("__server({type: 'response.done', response: {id: 'resp_1', status: 'cancelled'}})")
    assert "(interrupted)" in page.locator("#transcript li.assistant").last.text_content()
    page.evaluate(
        "__server({type: 'input_audio_buffer.speech_stopped', item_id: 'item_u2', audio_end_ms: 2600})"
    )
    assert talk(page)["state"] == "thinking"
    short = tone_pcm16_b64(0.3)
    page.evaluate("__server({type: 'response.created', response: {id: 'resp_2', status: 'in_progress'}})")
    page.evaluate(
        f"__server({{type: 'response.audio.delta', response_id: 'resp_2', item_id: 'item_a2', delta: '{short}'}})"
    )
    page.evaluate("__server({type: 'response.audio.done', response_id: 'resp_2', item_id: 'item_a2'})")
    page.wait_for_function(f"window.csmstreamTalk.samplesPlayed === {played + int(0.3 * SAMPLE_RATE)}")
    page.wait_for_function("window.csmstreamTalk.state === 'listening'")  # played out: back to listening

    # 5. server errors are shown; stopping releases everything
    page.evaluate(
        "__server({type: 'error', error: {type: 'invalid_request_error', code: 'x', message: 'Boom.'}})"
    )
    assert "Boom." in page.text_content("#error")
    page.click("#mic")
    page.wait_for_function("window.csmstreamTalk.state === 'idle'")
    assert page.get_attribute("#mic", "aria-pressed") == "false"


# ---- the real thing


def realtime_available(server) -> bool:
    """True when the server accepts a WebSocket at /v1/realtime (an HTTP GET cannot tell: it is WS-only)."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = "ws" + server.url[len("http") :] + "/v1/realtime"
    try:
        with connect(url, open_timeout=30, close_timeout=5):
            return True
    except InvalidStatus as exc:
        if exc.response.status_code in (403, 404):  # Starlette refuses a WebSocket to an unknown path
            return False
        raise


def test_a_conversation_from_a_fake_microphone(playwright_driver, conversation_server, question_wav):
    assert realtime_available(conversation_server), "the server refused a WebSocket on /v1/realtime"
    with talk_page_with_fake_microphone(playwright_driver, conversation_server.url, question_wav) as (
        page,
        errors,
    ):
        page.click("#mic")
        page.wait_for_function("window.csmstreamTalk.connected || window.csmstreamTalk.error")
        assert talk(page)["error"] is None, talk(page)
        page.wait_for_function("window.csmstreamTalk.userTranscripts.length >= 1")
        heard = " ".join(talk(page)["userTranscripts"]).lower()
        assert "capital" in heard or "france" in heard, f"the server heard {heard!r} for {SPEECH_TEXT!r}"
        page.wait_for_function("window.csmstreamTalk.responses >= 1")
        page.wait_for_function("window.csmstreamTalk.assistantText.length > 0")
        page.wait_for_function("window.csmstreamTalk.samplesPlayed > 0")
        assert page.locator("#transcript li.user").count() >= 1
        assert page.locator("#transcript li.assistant").count() >= 1
        screenshot(page, "talk_conversation")
        page.click("#mic")
        page.wait_for_function("window.csmstreamTalk.state === 'idle'")
        assert not errors, errors


@pytest.fixture(scope="module")
def server_without_llm(tmp_path_factory):
    """The piper voice and no conversation LLM at all (not even the bundled one)."""
    from web_server import start_web_server

    env = {"CSMSTREAM_LLM_BASE_URL": "", "CSMSTREAM_LLM_GGUF": "", "CSMSTREAM_DEFAULT_LLM": "0"}
    server = start_web_server(["--engine", "piper"], tmp_path_factory.mktemp("no_llm_voices"), env=env)
    yield server
    server.stop()


def test_without_an_llm_the_page_says_so_before_anyone_speaks(page, server_without_llm):
    assert server_without_llm.get("/health").json()["llm"] == {"configured": False, "model": None}
    page.goto(server_without_llm.url + "/talk.html")
    status = page.locator("#llm-status")
    status.wait_for(state="visible")
    text = status.inner_text()
    assert "cannot answer" in text and "no language model" in text, text
    assert "--llm-base-url" in text and "llm-model" in text, text  # what to do about it
    assert talk(page)["state"] == "idle", "nothing was started: the page said it up front"
    screenshot(page, "talk_without_llm")


def test_with_an_llm_the_page_names_it(page, web_server):
    from csmstream.pipeline.llm import bundled_gguf

    llm = web_server.get("/health").json()["llm"]
    if bundled_gguf() is None:
        pytest.skip("no LLM configured on the test server and no bundled model (the llm-model extra)")
    assert llm["configured"] is True and "SmolLM2" in llm["model"], llm
    page.goto(web_server.url + "/talk.html")
    page.wait_for_function("window.csmstreamTalk.llm !== null")
    assert page.locator("#llm-status").inner_text() == f"Answers come from {llm['model']}."
