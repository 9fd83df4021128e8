"""Text-only answers in the realtime protocol, on their own: `modalities` (beta) and `output_modalities` (GA)
in `session.update` and `response.create`, and the events of a text-only answer in both shapes (a live
server, and that such an answer uses no engine slot: tests/e2e/test_realtime_text_only.py)."""

from __future__ import annotations

import pytest

from csmstream.pipeline.session import SessionConfig
from csmstream.server.realtime_events import (
    EventError,
    parse_modalities,
    parse_response_create,
    parse_session_update,
    response_created_events,
    response_done_events,
    session_json,
    transcript_delta_event,
    transcript_done_events,
)
from csmstream.server.realtime_shapes import BETA, GA, RealtimeShape


def _no_voices(voice_id: str) -> bool:
    return False


@pytest.mark.parametrize(
    ("modalities", "text_only"),
    [(["text"], True), (["audio", "text"], False), (["text", "audio"], False)],
)
def test_modalities_say_whether_answers_are_text_only(modalities, text_only):
    assert parse_modalities(modalities, "session.modalities") is text_only


@pytest.mark.parametrize("bad", [["audio"], [], ["text", "text"], ["video"], "text", [1, 2]])
def test_other_modalities_are_refused(bad):
    with pytest.raises(EventError) as info:
        parse_modalities(bad, "session.modalities")
    assert info.value.param == "session.modalities"


def test_session_update_turns_text_only_on_and_off():
    text = parse_session_update({"modalities": ["text"]}, SessionConfig(), _no_voices)
    assert text.text_only and session_json("s", "m", text, None)["modalities"] == ["text"]
    spoken = parse_session_update({"modalities": ["audio", "text"]}, text, _no_voices)
    assert not spoken.text_only and session_json("s", "m", spoken, None)["modalities"] == ["audio", "text"]


def test_response_create_may_override_the_session():
    assert parse_response_create({"type": "response.create"}) is None
    assert parse_response_create({"type": "response.create", "response": {"instructions": "x"}}) is None
    assert parse_response_create({"type": "response.create", "response": {"modalities": ["text"]}}) is True
    spoken = {"type": "response.create", "response": {"modalities": ["audio", "text"]}}
    assert parse_response_create(spoken) is False
    with pytest.raises(EventError):
        parse_response_create({"type": "response.create", "response": {"modalities": ["audio"]}})


def _text_answer_events() -> list[dict]:
    """A whole text-only answer, in the internal (beta) shape, as the connection builds it."""
    return [
        *response_created_events("resp_1", "item_1", None, text_only=True),
        transcript_delta_event("resp_1", "item_1", "Paris", text_only=True),
        *transcript_done_events("resp_1", "item_1", "Paris", text_only=True),
        *response_done_events("resp_1", "item_1", "completed", "Paris", text_only=True),
    ]


def test_a_beta_text_answer_has_text_events_and_no_audio():
    events = _text_answer_events()
    kinds = [e["type"] for e in events]
    assert "response.text.delta" in kinds and "response.text.done" in kinds
    assert not [k for k in kinds if "audio" in k], kinds
    parts = [e["part"] for e in events if "part" in e]
    assert parts == [{"type": "text", "text": ""}, {"type": "text", "text": "Paris"}]
    done = events[-1]["response"]
    assert done["modalities"] == ["text"] and done["output"][0]["content"] == [
        {"type": "text", "text": "Paris"}
    ]
    assert [e["text"] for e in events if e["type"] == "response.text.done"] == ["Paris"]


def test_a_ga_text_answer_is_renamed_and_carries_output_modalities():
    shape = RealtimeShape(GA, settled=True)
    events = [out for event in _text_answer_events() for out in shape.server_events(event)]
    kinds = [e["type"] for e in events]
    assert "response.output_text.delta" in kinds and "response.output_text.done" in kinds
    assert not [k for k in kinds if "audio" in k or k.startswith("response.text")], kinds
    done = next(e for e in events if e["type"] == "response.done")["response"]
    assert done["output_modalities"] == ["text"] and "modalities" not in done
    assert done["output"][0]["content"] == [{"type": "output_text", "text": "Paris"}]


def test_ga_output_modalities_become_the_internal_modalities():
    shape = RealtimeShape(GA, settled=True)
    update = shape.client_event(
        "session.update",
        {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}},
    )
    assert update["session"] == {"modalities": ["text"]}
    config = parse_session_update(update["session"], SessionConfig(), _no_voices)
    assert shape.session(session_json("s", "m", config, None))["output_modalities"] == ["text"]
    create = shape.client_event(
        "response.create", {"type": "response.create", "response": {"output_modalities": ["audio"]}}
    )
    assert create["response"] == {"modalities": ["audio", "text"]}
    assert parse_response_create(create) is False
    with pytest.raises(EventError):
        shape.client_event(
            "response.create", {"type": "response.create", "response": {"output_modalities": []}}
        )
    # a beta connection's events pass unchanged
    beta = RealtimeShape(BETA, settled=True)
    delta = transcript_delta_event("resp_1", "item_1", "Paris", text_only=True)
    assert beta.server_events(delta) == [delta]
