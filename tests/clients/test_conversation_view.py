"""The terminal view of a realtime conversation, driven by scripted server events."""

from __future__ import annotations

import base64
import io

import numpy as np
from client_audio import BufferPlayer

from csmstream.clients.conversation_view import ConversationView
from csmstream.clients.realtime import canonical_type, decode_audio, encode_audio


def audio_delta(num_samples: int, response_id: str = "r1", value: int = 1000) -> dict:
    pcm = np.full(num_samples, value, dtype="<i2")
    return {
        "type": "response.audio.delta",
        "response_id": response_id,
        "delta": base64.b64encode(pcm.tobytes()).decode(),
    }


def text_delta(text: str, response_id: str = "r1") -> dict:
    return {"type": "response.audio_transcript.delta", "response_id": response_id, "delta": text}


def created(response_id: str = "r1") -> dict:
    return {"type": "response.created", "response": {"id": response_id}}


def done(status: str = "completed", response_id: str = "r1") -> dict:
    return {"type": "response.done", "response": {"id": response_id, "status": status}}


def make_view(show_states: bool = False):
    out = io.StringIO()
    player = BufferPlayer()
    return ConversationView(out, player, show_states=show_states), out, player


def test_an_answer_is_printed_as_one_line_and_its_audio_played():
    view, out, player = make_view()
    view.requested_response()
    assert view.busy, "busy from the moment we ask"
    for event in [
        created(),
        text_delta("Hello"),
        audio_delta(2400),
        text_delta(" there."),
        audio_delta(1200),
        done(),
    ]:
        view.handle(event)
    assert out.getvalue() == "assistant: Hello there.\n"
    assert player.received_samples == 3600 and view.audio_samples == 3600
    assert not view.response_active and view.responses_requested == 0
    assert view.busy, "still busy while the audio plays here"
    player.play_out()
    assert not view.busy


def test_talk_states_and_transcripts_in_order():
    view, out, player = make_view(show_states=True)
    events = [
        {"type": "session.created", "session": {"voice": "default"}},
        {"type": "input_audio_buffer.speech_started"},
        {"type": "input_audio_buffer.speech_stopped"},
        {"type": "conversation.item.input_audio_transcription.completed", "transcript": " What time is it? "},
        created(),
        audio_delta(4800),
        text_delta("It is late."),
        done(),
    ]
    for event in events:
        view.handle(event)
    assert view.state == "speaking", "the answer is still playing here"
    view.tick()
    assert view.state == "speaking"
    player.play_out()
    view.tick()
    assert view.state == "listening"
    assert out.getvalue().splitlines() == [
        "[listening]",
        "[thinking]",
        "you: What time is it?",
        "[speaking]",
        "assistant: It is late.",
        "[listening]",
    ]


def test_state_line_waits_for_the_assistant_line_to_end():
    view, out, _ = make_view(show_states=True)
    view.handle(created())
    view.handle(text_delta("Words first"))  # text before audio: the [speaking] line must not cut it
    view.handle(audio_delta(100))
    view.handle(done())
    lines = out.getvalue().splitlines()
    assert lines[:3] == ["[thinking]", "assistant: Words first", "[speaking]"], lines


def test_barge_in_flushes_playback_at_once_and_drops_the_rest_of_that_answer():
    view, out, player = make_view(show_states=True)
    view.handle(created("r1"))
    view.handle(audio_delta(24_000, "r1"))
    view.handle(text_delta("A long answer", "r1"))
    assert player.pending_seconds == 1.0
    view.handle({"type": "input_audio_buffer.speech_started"})
    assert player.pending_seconds == 0.0, "the buffered answer must stop the moment the user speaks"
    assert view.interruptions == 1 and view.state == "listening"
    view.handle(audio_delta(2400, "r1"))  # already in flight when the server cancelled
    view.handle(done("cancelled", "r1"))
    assert player.pending_seconds == 0.0, "late audio of the interrupted answer is not played"
    view.handle(created("r2"))
    view.handle(audio_delta(2400, "r2"))
    assert player.pending_seconds == 0.1, "the next answer plays"
    assert "assistant: A long answer …" in out.getvalue().splitlines()


def test_speech_while_nothing_plays_is_not_an_interruption():
    view, _, player = make_view()
    view.handle({"type": "input_audio_buffer.speech_started"})
    assert view.interruptions == 0 and player.clears == 0


def test_stale_deltas_of_an_older_response_are_ignored():
    view, out, player = make_view()
    view.handle(created("r2"))
    view.handle(audio_delta(480, "r1"))
    view.handle(text_delta("old", "r1"))
    assert player.received_samples == 0 and out.getvalue() == ""


def test_errors_and_failed_answers_are_shown():
    view, out, _ = make_view()
    view.requested_response()
    view.handle(
        {
            "type": "error",
            "error": {"type": "invalid_request_error", "code": "x", "message": "no LLM configured"},
        }
    )
    assert "(server error: no LLM configured)" in out.getvalue()
    assert view.responses_requested == 0 and not view.busy, "a refused response.create is not waited for"
    view.handle(created())
    view.handle(text_delta("Par"))
    view.handle(
        {
            "type": "response.done",
            "response": {"status": "failed", "status_details": {"error": {"message": "LLM down"}}},
        }
    )
    assert out.getvalue().splitlines()[-2:] == ["assistant: Par", "(the answer failed: LLM down)"]


def test_audio_base64_round_trip_and_ga_event_names():
    pcm = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    np.testing.assert_array_equal(decode_audio(encode_audio(pcm)), pcm)
    assert canonical_type("response.output_audio.delta") == "response.audio.delta"
    assert canonical_type("response.output_audio_transcript.delta") == "response.audio_transcript.delta"
    assert canonical_type("response.audio.delta") == "response.audio.delta"
