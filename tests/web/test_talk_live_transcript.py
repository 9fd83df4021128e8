"""The Talk page shows the user's words while they speak: `conversation.item.input_audio_transcription.delta`
events from the real server fill the user's bubble (marked partial) before the completed transcript
replaces it. Chromium's fake microphone plays a spoken question from a WAV file; a MutationObserver records
every state the user's bubbles pass through, so a page that showed only the final transcript fails."""

from __future__ import annotations

from web_helpers import screenshot, talk_page_with_fake_microphone

# Installed once the page is loaded: every change of a user bubble, in order, in `window.__userBubbles`.
RECORD_USER_BUBBLES = """
(() => {
  const ids = new WeakMap();
  const last = new Map();
  let next = 0;
  window.__userBubbles = [];
  const record = () => {
    for (const item of document.querySelectorAll("#transcript li.user")) {
      if (!ids.has(item)) ids.set(item, next++);
      const id = ids.get(item);
      const text = item.querySelector(".text").textContent;
      const partial = item.classList.contains("partial");
      const key = `${partial}|${text}`;
      if (last.get(id) === key) continue;
      last.set(id, key);
      window.__userBubbles.push({ id, text, partial });
    }
  };
  new MutationObserver(record).observe(document.getElementById("transcript"), {
    childList: true, subtree: true, characterData: true, attributes: true, attributeFilter: ["class"],
  });
})();
"""
WAITING = "…"  # what a user bubble shows before any words are recognised


def _words(text: str) -> set[str]:
    return {w.strip(".,?!").lower() for w in text.split()} - {""}


def test_words_appear_while_the_user_speaks(playwright_driver, conversation_server, question_wav):
    with talk_page_with_fake_microphone(playwright_driver, conversation_server.url, question_wav) as (
        page,
        errors,
    ):
        page.evaluate(RECORD_USER_BUBBLES)
        page.click("#mic")
        page.wait_for_function("window.csmstreamTalk.connected || window.csmstreamTalk.error")
        assert page.evaluate("window.csmstreamTalk.error") is None
        page.wait_for_function("window.csmstreamTalk.userTranscripts.length >= 1")
        screenshot(page, "talk_live_transcript")
        states = page.evaluate("window.__userBubbles")
        page.click("#mic")
        page.wait_for_function("window.csmstreamTalk.state === 'idle'")
        assert not errors, errors

    finals = {s["id"]: s["text"] for s in states if not s["partial"]}
    assert finals, f"no completed transcript was shown: {states}"
    live = [
        s for s in states if s["partial"] and s["text"].strip() not in ("", WAITING) and s["id"] in finals
    ]
    assert live, f"no words were shown before a completed transcript: {states}"
    # the live words are the ones the completed transcript then confirms (give or take corrections)
    first = live[0]
    assert _words(first["text"]) & _words(finals[first["id"]]), (first, finals)
    # and they were shown before that bubble's final text, not after
    final_at = next(i for i, s in enumerate(states) if s["id"] == first["id"] and not s["partial"])
    assert states.index(first) < final_at, states
