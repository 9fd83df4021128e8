"""The user's words while they speak, over `/v1/realtime`: `conversation.item.input_audio_transcription.delta`
events come before the `...completed` one and, joined, start its transcript; `semantic_vad` is accepted and
keeps a question with a thinking pause in it as one turn; `/metrics` has the per-stage turn histograms.
A real server process (tiny CSM checkpoint, Silero VAD, Whisper tiny.en); no LLM is needed: the session
does not ask for answers."""

from __future__ import annotations

import httpx
import numpy as np
from pipeline_helpers import silence, speak, word_error_rate
from realtime_client import RealtimeClient

HEAD = "What is the capital of"
TAIL = "Germany, do you know?"


def _words(text: str) -> list[str]:
    return [w.strip(".,?!").lower() for w in text.split()]


def test_transcription_deltas_arrive_before_completed_and_semantic_vad_keeps_one_turn(server_without_llm):
    head = speak(HEAD)
    head = head[: int(np.flatnonzero(np.abs(head) > 0.02)[-1]) + 1]  # the pause starts where the voice stops
    audio = np.concatenate([silence(0.4), head, silence(0.6), speak(TAIL), silence(1.8)])

    with RealtimeClient(server_without_llm.realtime_url) as client:
        client.wait_for("session.created")
        detection = {"type": "semantic_vad", "eagerness": "auto", "create_response": False}
        client.send("session.update", session={"turn_detection": detection})
        updated = client.wait_for("session.updated").event
        assert updated["session"]["turn_detection"]["type"] == "semantic_vad", updated
        assert updated["session"]["turn_detection"]["eagerness"] == "auto", updated
        client.stream(audio)  # real-time pace
        completed = client.wait_for("conversation.item.input_audio_transcription.completed", timeout_s=30)
        order = [r.type for r in client.received]
        deltas = client.of_type("conversation.item.input_audio_transcription.delta")
        stops = client.of_type("input_audio_buffer.speech_stopped")

    transcript = completed.event["transcript"]
    assert word_error_rate(f"{HEAD} {TAIL}", transcript) <= 0.2, transcript
    assert len(stops) == 1, stops  # the 600 ms pause after "of" did not end the turn
    assert deltas, order
    item_id = completed.event["item_id"]
    assert all(d["item_id"] == item_id and d["content_index"] == 0 for d in deltas)
    assert order.index("conversation.item.input_audio_transcription.delta") < order.index(
        "conversation.item.input_audio_transcription.completed"
    )
    announced = _words("".join(d["delta"] for d in deltas))
    assert announced == _words(transcript)[: len(announced)], (announced, transcript)

    metrics = httpx.get(f"{server_without_llm.url}/metrics", timeout=10).text
    assert "csmstream_turn_stage_seconds" in metrics
