"""The Speak page's controls in a real browser: busy state, download and replay only once there is audio,
the progress bar (played ÷ received), errors brought into view, the folded Figures panel, and the engine
badge when the server dies."""

from __future__ import annotations

import time

from test_speak_page import open_speak_page, speak, stats
from web_helpers import screenshot

# Watches the Speak button from before the click: whether it ever said it was busy, and when it stopped.
WATCH_BUSY = """
(() => {
  const button = document.getElementById('speak');
  window.__busy = { seen: false, disabledWhileBusy: true, label: null };
  new MutationObserver(() => {
    if (button.getAttribute('aria-busy') === 'true') {
      window.__busy.seen = true;
      window.__busy.label = button.textContent;
      window.__busy.disabledWhileBusy &&= button.disabled;
    }
  }).observe(button, { attributes: true, childList: true, subtree: true });
})()
"""


def test_before_any_audio_download_and_replay_are_hidden_and_figures_folded(page, web_server):
    open_speak_page(page, web_server)
    assert not page.is_visible("#download"), "Download WAV is shown with nothing to download"
    assert page.eval_on_selector("#download", "el => getComputedStyle(el).display") == "none"
    assert not page.is_visible("#replay")
    assert page.get_attribute("#figures", "open") is None, "the Figures panel starts folded"
    assert not page.is_visible("#fig-ttfa")
    page.click("#figures summary")
    assert page.is_visible("#fig-ttfa"), "the summary unfolds it"


def test_speak_is_busy_while_generating_then_offers_download_and_replay(page, web_server):
    open_speak_page(page, web_server)
    page.evaluate(WATCH_BUSY)
    speak(page, "Hello from the browser, once more.", max_seconds=1.2)
    page.wait_for_function("['done', 'error'].includes(window.csmstreamStats.state)")
    result = stats(page)
    assert result["state"] == "done", result
    busy = page.evaluate("window.__busy")
    assert busy["seen"] and busy["disabledWhileBusy"], busy
    assert "Generating" in busy["label"], busy
    assert page.get_attribute("#speak", "aria-busy") == "false" and page.is_enabled("#speak")
    assert page.text_content("#speak").strip() == "Speak"
    # the bar shows played ÷ received: all of it, at the end
    assert float(page.get_attribute("#progress", "aria-valuenow")) == 100.0
    assert page.is_visible("#download") and page.is_visible("#replay")

    page.click("#replay")
    page.wait_for_function("window.csmstreamStats.replays === 1 && window.csmstreamStats.state === 'done'")
    again = stats(page)
    assert again["samplesPlayed"] == again["samplesReceived"] == result["samplesReceived"], again
    screenshot(page, "speak_replayed")


def test_an_error_is_scrolled_into_view_and_focused(page, web_server):
    open_speak_page(page, web_server)
    page.evaluate("document.getElementById('voice').add(new Option('ghost', 'no-such-voice'))")
    page.select_option("#voice", "no-such-voice")
    page.fill("#text", "Hello.")
    page.evaluate("window.scrollTo(0, 0)")
    page.click("#speak")
    page.wait_for_function("window.csmstreamStats.state === 'error'")
    assert page.evaluate("document.activeElement.id") == "error"
    in_view = page.evaluate(
        "(() => { const r = document.getElementById('error').getBoundingClientRect();"
        " return r.top >= 0 && r.bottom <= window.innerHeight; })()"
    )
    assert in_view, "the error is on screen"
    assert page.is_enabled("#speak"), "after an error the user can try again"


def test_the_engine_badge_says_when_the_server_has_gone(page, tmp_path_factory):
    from web_server import start_web_server

    server = start_web_server(["--engine", "piper"], tmp_path_factory.mktemp("dying_voices"))
    try:
        page.goto(server.url + "/")
        page.wait_for_function("document.getElementById('engine').textContent.includes('piper')")
    finally:
        server.stop()
    started = time.monotonic()
    page.wait_for_function(
        "document.getElementById('engine').textContent === 'server unreachable'", timeout=15_000
    )
    assert time.monotonic() - started < 15
    assert "piper" not in page.text_content("#engine")
