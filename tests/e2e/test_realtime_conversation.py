"""`/v1/realtime` end to end, every part real: a question spoken by piper streamed at real-time pace, the
server's VAD and Whisper, a llama.cpp LLM server process, the tiny CSM checkpoint speaking the answer; barge-in,
concurrent conversations on one engine, and a disconnect that must free the engine slot."""

from __future__ import annotations

import base64
import time

import numpy as np
from pipeline_helpers import silence, speak, voiced_span_ms, word_error_rate
from realtime_client import CHUNK_MS, SAMPLE_RATE, RealtimeClient

QUESTION = "What is the capital of France?"
INTERRUPTION = "Wait, stop, I have another question."
SHORT_ANSWER_TOKENS = 24  # max_response_output_tokens: a few units of (noise) speech
LONG_ANSWER_TOKENS = 300  # long enough to still be speaking when the user barges in
BARGE_IN_LIMIT_S = 0.3  # speech_started → response.done(cancelled), as the client sees it


def _pcm16_samples(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<i2")


def _words(text: str) -> list[str]:
    return text.split()


def test_spoken_question_is_detected_transcribed_answered_and_spoken(realtime_server):
    lead_s, tail_s = 0.5, 1.0
    speech = speak(QUESTION)
    audio = np.concatenate([silence(lead_s), speech, silence(tail_s)])
    first_ms, last_ms = voiced_span_ms(speech)
    onset_ms, offset_ms = lead_s * 1000 + first_ms, lead_s * 1000 + last_ms

    with RealtimeClient(realtime_server.realtime_url) as client:
        created = client.wait_for("session.created").event
        assert created["session"]["turn_detection"]["type"] == "server_vad", created
        client.send("session.update", session={"max_response_output_tokens": SHORT_ANSWER_TOKENS})
        client.wait_for("session.updated")
        client.stream(audio)  # 40 ms appends at real-time pace, ~1 s of silence at the end

        started = client.wait_for("input_audio_buffer.speech_started").event
        stopped = client.wait_for("input_audio_buffer.speech_stopped").event
        committed = client.wait_for("input_audio_buffer.committed").event
        user_item = client.wait_for(
            "conversation.item.created", where=lambda e: e["item"]["role"] == "user"
        ).event
        transcribed = client.wait_for("conversation.item.input_audio_transcription.completed").event
        response = client.wait_for("response.created").event["response"]
        done = client.wait_for("response.done", timeout_s=120).event["response"]
        audio_out = client.audio_of(response["id"])
        order = [r.type for r in client.received]

    # the server's VAD found the spoken question, at times of the input audio
    user_id = started["item_id"]
    assert stopped["item_id"] == committed["item_id"] == user_item["item"]["id"] == user_id
    assert transcribed["item_id"] == user_id
    assert onset_ms - 400 <= started["audio_start_ms"] <= onset_ms + 300, (started, onset_ms)
    assert offset_ms - 300 <= stopped["audio_end_ms"] <= offset_ms + 800, (stopped, offset_ms)
    # Whisper heard it
    assert word_error_rate(QUESTION, transcribed["transcript"]) <= 0.2, transcribed["transcript"]
    # the LLM answered and the answer was spoken: base64 PCM16, real samples
    assert response["status"] == "in_progress"
    assert done["id"] == response["id"] and done["status"] == "completed", done
    assert len(audio_out) > 0 and len(audio_out) % 2 == 0
    samples = _pcm16_samples(audio_out)
    assert np.abs(samples).max() > 0, "the answer's audio is all silence"
    answer_item = done["output"][0]
    assert answer_item["role"] == "assistant" and answer_item["status"] == "completed"
    assert answer_item["content"][0]["transcript"].strip(), done
    # the events came in the protocol's order
    firsts = {kind: order.index(kind) for kind in set(order)}
    sequence = [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.audio_transcript.delta",
        "response.audio.delta",
        "response.audio.done",
        "response.audio_transcript.done",
        "response.done",
    ]
    assert [firsts[k] for k in sequence] == sorted(firsts[k] for k in sequence), order
    assert realtime_server.wait_idle()["active_sessions"] == 0


def test_barge_in_cancels_the_answer_and_keeps_only_what_was_played(realtime_server):
    lead_s = 0.2
    speech = speak(INTERRUPTION)
    interruption = np.concatenate([silence(lead_s), speech, silence(0.8)])
    onset_chunk = int((lead_s * 1000 + voiced_span_ms(speech)[0]) // CHUNK_MS)
    with RealtimeClient(realtime_server.realtime_url) as client:
        client.wait_for("session.created")
        # the interruption is heard, but not answered: this test is about the answer it cuts off
        session = {
            "max_response_output_tokens": LONG_ANSWER_TOKENS,
            "turn_detection": {"type": "server_vad", "create_response": False},
        }
        client.send("session.update", session=session)
        client.wait_for("session.updated")
        text = "Tell me a very long story about the sea, the ships and the sailors."
        client.send(
            "conversation.item.create",
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
        )
        client.send("response.create")
        response_id = client.wait_for("response.created").event["response"]["id"]
        first_audio = client.wait_for("response.audio.delta", timeout_s=60)

        sent_at = client.stream(interruption)  # the user talks over the assistant

        started = client.wait_for("input_audio_buffer.speech_started")
        done = client.wait_for("response.done", timeout_s=10)
        truncated_received = client.wait_for("conversation.item.truncated")
        truncated = truncated_received.event
        truncated_after_done = client.index(truncated_received) > client.index(done)
        received = client.audio_of(response_id)  # every delta of this response arrived before response.done
        deltas_after_done = [
            r
            for r in client.received[client.index(done) :]
            if r.type == "response.audio.delta" and r.event["response_id"] == response_id
        ]
        transcript_deltas = "".join(
            e["delta"]
            for e in client.of_type("response.audio_transcript.delta")
            if e["response_id"] == response_id
        )
        item_id = done.event["response"]["output"][0]["id"]

        # what the conversation kept of the answer
        mark = client.mark()
        client.send("conversation.item.retrieve", item_id=item_id)
        kept_item = client.wait_for("conversation.item.retrieved", after=mark).event["item"]
        kept_audio = base64.b64decode(kept_item["content"][0]["audio"])

        # the client knows better what it played: it cuts the item further
        client_end_ms = truncated["audio_end_ms"] // 2
        mark = client.mark()
        client.send(
            "conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=client_end_ms
        )
        client_truncated = client.wait_for("conversation.item.truncated", after=mark).event
        mark = client.mark()
        client.send("conversation.item.retrieve", item_id=item_id)
        recut_item = client.wait_for("conversation.item.retrieved", after=mark).event["item"]
        recut_audio = base64.b64decode(recut_item["content"][0]["audio"])

    response = done.event["response"]
    delay_s = done.at - started.at
    played_by_then_s = started.at - first_audio.at  # the client started playing on the first delta
    print(
        f"\nbarge-in: speech_started → response.done {delay_s * 1000:.1f} ms; kept {truncated['audio_end_ms']} ms "
        f"of {len(received) / 2 / SAMPLE_RATE * 1000:.0f} ms received ({played_by_then_s * 1000:.0f} ms played); "
        f"speech onset sent → response.done {(done.at - sent_at[onset_chunk]) * 1000:.0f} ms (VAD confirms "
        "after 250 ms of speech)"
    )
    assert response["id"] == response_id and response["status"] == "cancelled", response
    assert response["status_details"] == {"type": "cancelled", "reason": "turn_detected"}, response
    assert delay_s <= BARGE_IN_LIMIT_S, f"the answer went on {delay_s:.3f} s after the user started speaking"
    assert not deltas_after_done, "audio of the cancelled response after its response.done"
    # the item is cut to what was played: at most what had played when the speech was detected, a prefix of
    # what was sent, to the sample
    assert truncated["item_id"] == item_id
    assert truncated_after_done, "conversation.item.truncated must follow the events of the barge-in"
    kept_samples = len(kept_audio) // 2
    assert 0 < kept_samples <= len(received) // 2
    assert kept_samples <= (played_by_then_s + 0.1) * SAMPLE_RATE, (kept_samples, played_by_then_s)
    assert kept_audio == received[: len(kept_audio)], "the kept audio is not the start of what was sent"
    assert truncated["audio_end_ms"] == kept_samples * 1000 // SAMPLE_RATE
    assert kept_item["status"] == "incomplete"
    kept_words = _words(kept_item["content"][0]["transcript"])
    assert kept_words == _words(transcript_deltas)[: len(kept_words)], (kept_words, transcript_deltas)
    assert _words(response["output"][0]["content"][0]["transcript"]) == kept_words
    # a client truncate cuts it further, exactly
    assert client_truncated["audio_end_ms"] == client_end_ms
    assert len(recut_audio) // 2 == client_end_ms * SAMPLE_RATE // 1000
    assert recut_audio == received[: len(recut_audio)]
    assert realtime_server.wait_idle()["active_sessions"] == 0


def test_concurrent_conversations_on_one_engine_all_get_audio(realtime_server):
    questions = ["What is the capital of France?", "Name a big river.", "What colour is the sky?"]
    clients = [RealtimeClient(realtime_server.realtime_url) for _ in questions]
    try:
        for client, question in zip(clients, questions, strict=True):
            client.wait_for("session.created")
            client.send("session.update", session={"max_response_output_tokens": 16})
            content = [{"type": "input_text", "text": question}]
            client.send(
                "conversation.item.create", item={"type": "message", "role": "user", "content": content}
            )
        for client in clients:  # all three answers are asked for before any is read
            client.wait_for("conversation.item.created")
            client.send("response.create")
        dones = [c.wait_for("response.done", timeout_s=120).event["response"] for c in clients]
        audio = [c.audio_of(d["id"]) for c, d in zip(clients, dones, strict=True)]
        foreign = [
            e["response_id"]
            for c, d in zip(clients, dones, strict=True)
            for e in c.of_type("response.audio.delta")
            if e["response_id"] != d["id"]
        ]
    finally:
        for client in clients:
            client.close()
    assert [d["status"] for d in dones] == ["completed"] * 3, dones
    assert len({d["id"] for d in dones}) == 3
    assert all(len(a) > 0 and np.abs(_pcm16_samples(a)).max() > 0 for a in audio), [len(a) for a in audio]
    assert not foreign, "a connection received another conversation's audio"
    assert realtime_server.wait_idle()["active_sessions"] == 0


def test_client_cancel_stops_the_answer(realtime_server):
    with RealtimeClient(realtime_server.realtime_url) as client:
        client.wait_for("session.created")
        client.send("session.update", session={"max_response_output_tokens": LONG_ANSWER_TOKENS})
        content = [{"type": "input_text", "text": "Describe every colour of the rainbow in detail."}]
        client.send("conversation.item.create", item={"type": "message", "role": "user", "content": content})
        client.send("response.create")
        response_id = client.wait_for("response.created").event["response"]["id"]
        client.wait_for("response.audio.delta", timeout_s=60)
        mark = client.mark()
        client.send("response.cancel", response_id=response_id)
        done = client.wait_for("response.done", after=mark, timeout_s=10).event["response"]
        mark = client.mark()
        client.send("response.cancel")  # nothing left to cancel
        error = client.wait_for("error", after=mark).event["error"]
    assert done["id"] == response_id and done["status"] == "cancelled", done
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}, done
    assert error["code"] == "response_cancel_not_active", error
    assert realtime_server.wait_idle()["active_sessions"] == 0


def test_disconnect_mid_answer_frees_the_engine_slot(realtime_server):
    with RealtimeClient(realtime_server.realtime_url) as client:
        client.wait_for("session.created")
        client.send("session.update", session={"max_response_output_tokens": LONG_ANSWER_TOKENS})
        content = [{"type": "input_text", "text": "Tell me everything you know about the ocean."}]
        client.send("conversation.item.create", item={"type": "message", "role": "user", "content": content})
        client.send("response.create")
        client.wait_for("response.audio.delta", timeout_s=60)
        busy = 0
        deadline = time.monotonic() + 30
        while busy == 0 and time.monotonic() < deadline:  # a unit is being synthesized right now
            busy = realtime_server.health()["active_sessions"]
        assert busy >= 1, "no synthesis was running during the answer"
    # the client has gone mid-answer
    health = realtime_server.wait_idle(timeout_s=10)
    assert health["active_sessions"] == 0 and health["queued"] == 0, health
