"""The OpenAI Realtime API's JSON events as `/v1/realtime` speaks them: checking what clients send, and
building what the server sends. Pure functions, no I/O, so every rule here is testable on its own.
Everything here is in the beta shape, the server's internal form; server/realtime_shapes.py translates it
for connections in the GA shape.

Client events are checked strictly (a wrong type, a missing field or an unknown field is an
`EventError`), because a silently ignored field is a setting the client believes it made.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.pipeline.session import SessionConfig, TurnDetection

PCM16_FORMAT = "pcm16"  # the only audio format: 16-bit little-endian PCM, 24 kHz mono
CONTENT_INDEX = 0  # every item here has one content part
OUTPUT_INDEX = 0  # every response here has one output item
MAX_OUTPUT_TOKENS = 4096  # OpenAI's limit for max_response_output_tokens
SPOKEN = ["audio", "text"]  # `modalities` of a spoken answer (audio and its transcript)
WRITTEN = ["text"]  # ... and of a text-only one (nothing synthesized)
# The most audio one `input_audio_buffer.append` may carry: 60 s of PCM16 24 kHz mono (2,880,000 bytes, 3.84 MB
# of base64). OpenAI allows 15 MiB per event; a smaller bound keeps the work one event costs the server's
# event loop small (the server feeds the VAD in slices, but decoding and parsing are one piece). A bigger
# append gets an `audio_too_long` error and the session goes on; send audio in smaller appends (clients send
# 20-100 ms each).
MAX_APPEND_SECONDS = 60
MAX_APPEND_BYTES = MAX_APPEND_SECONDS * SAMPLE_RATE * 2

# session.update fields that are accepted but have no effect here, with why (the docs of the endpoint).
IGNORED_SESSION_FIELDS = {
    "model": "one model is served",
    "input_audio_transcription": "the server's own speech recognition always transcribes",
    "temperature": "the LLM's sampling is set on the server",
    "tool_choice": "tools are not supported",
    "object": "read-only",
    "id": "read-only",
}
TURN_DETECTION_FIELDS = {
    "type",
    "eagerness",
    "threshold",
    "prefix_padding_ms",
    "silence_duration_ms",
    "create_response",
    "interrupt_response",
}


class EventError(Exception):
    """A client event that cannot be acted on. Becomes an `error` event; the session goes on."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


# ---- server events ----------------------------------------------------------------------------------------


def new_event_id() -> str:
    return "event_" + uuid.uuid4().hex[:20]


def server_event(kind: str, **fields: Any) -> dict[str, Any]:
    """A server event: `type`, a fresh `event_id`, then the fields."""
    return {"type": kind, "event_id": new_event_id(), **fields}


def error_event(
    code: str,
    message: str,
    *,
    error_type: str = "invalid_request_error",
    param: str | None = None,
    client_event_id: str | None = None,
) -> dict[str, Any]:
    """`error`; `client_event_id` names the client event that caused it, when there was one."""
    return server_event(
        "error",
        error={
            "type": error_type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    )


def turn_detection_json(detection: TurnDetection | None) -> dict[str, Any] | None:
    if detection is None:
        return None
    if detection.type == "semantic_vad":
        return {
            "type": "semantic_vad",
            "eagerness": detection.eagerness,
            "create_response": detection.create_response,
            "interrupt_response": detection.interrupt_response,
        }
    return {
        "type": "server_vad",
        "threshold": detection.threshold,
        "prefix_padding_ms": detection.prefix_padding_ms,
        "silence_duration_ms": detection.silence_duration_ms,
        "create_response": detection.create_response,
        "interrupt_response": detection.interrupt_response,
    }


def session_json(
    session_id: str, model: str, config: SessionConfig, max_output_tokens: int | None
) -> dict[str, Any]:
    """The `session` object of `session.created` / `session.updated`."""
    return {
        "id": session_id,
        "object": "realtime.session",
        "model": model,
        "modalities": modalities_json(config.text_only),
        "instructions": config.instructions,
        "voice": config.voice_id,  # null: the engine's default voice
        "input_audio_format": PCM16_FORMAT,
        "output_audio_format": PCM16_FORMAT,
        "input_audio_transcription": {"model": "whisper"},
        "turn_detection": turn_detection_json(config.turn_detection),
        "tools": [],
        "tool_choice": "none",
        "max_response_output_tokens": "inf" if max_output_tokens is None else max_output_tokens,
    }


def modalities_json(text_only: bool) -> list[str]:
    return list(WRITTEN if text_only else SPOKEN)


def message_item(
    item_id: str, role: str, content: list[dict[str, Any]], status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": role,
        "status": status,
        "content": content,
    }


def response_json(
    response_id: str,
    status: str,
    output: list[dict[str, Any]] | None = None,
    status_details: dict[str, Any] | None = None,
    *,
    text_only: bool = False,
) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "realtime.response",
        "status": status,
        "status_details": status_details,
        "modalities": modalities_json(text_only),
        "output": output or [],
        "usage": None,
    }


def answer_part(text_only: bool, text: str) -> dict[str, Any]:
    """The content part of an answer: its audio (with the transcript), or only its text."""
    return {"type": "text", "text": text} if text_only else {"type": "audio", "transcript": text}


def _part(response_id: str, item_id: str) -> dict[str, Any]:
    """The fields that place an event in a response's (only) output item and content part."""
    return {
        "response_id": response_id,
        "item_id": item_id,
        "output_index": OUTPUT_INDEX,
        "content_index": CONTENT_INDEX,
    }


def audio_committed_events(item_id: str, previous_item_id: str | None) -> list[dict[str, Any]]:
    """The input buffer became a user item (its transcript follows)."""
    item = message_item(item_id, "user", [{"type": "input_audio", "transcript": None}])
    return [
        server_event("input_audio_buffer.committed", previous_item_id=previous_item_id, item_id=item_id),
        server_event("conversation.item.created", previous_item_id=previous_item_id, item=item),
    ]


def response_created_events(
    response_id: str, item_id: str, previous_item_id: str | None, text_only: bool = False
) -> list[dict[str, Any]]:
    """A response starts, writing one assistant item with one audio part (a text part when `text_only`)."""
    item = message_item(item_id, "assistant", [], status="in_progress")
    response = response_json(response_id, "in_progress", text_only=text_only)
    return [
        server_event("response.created", response=response),
        server_event(
            "response.output_item.added", response_id=response_id, output_index=OUTPUT_INDEX, item=item
        ),
        server_event("conversation.item.created", previous_item_id=previous_item_id, item=item),
        server_event(
            "response.content_part.added",
            **_part(response_id, item_id),
            part=answer_part(text_only, ""),
        ),
    ]


def transcript_delta_event(
    response_id: str, item_id: str, delta: str, text_only: bool = False
) -> dict[str, Any]:
    """Words of the answer: its audio's transcript, or (`text_only`) its text."""
    kind = "response.text.delta" if text_only else "response.audio_transcript.delta"
    return server_event(kind, **_part(response_id, item_id), delta=delta)


def audio_delta_event(response_id: str, item_id: str, pcm16: bytes) -> dict[str, Any]:
    delta = base64.b64encode(pcm16).decode("ascii")
    return server_event("response.audio.delta", **_part(response_id, item_id), delta=delta)


def audio_done_event(response_id: str, item_id: str) -> dict[str, Any]:
    return server_event("response.audio.done", **_part(response_id, item_id))


def transcript_done_events(
    response_id: str, item_id: str, transcript: str, text_only: bool = False
) -> list[dict[str, Any]]:
    place = _part(response_id, item_id)
    done = (
        server_event("response.text.done", **place, text=transcript)
        if text_only
        else server_event("response.audio_transcript.done", **place, transcript=transcript)
    )
    return [
        done,
        server_event("response.content_part.done", **place, part=answer_part(text_only, transcript)),
    ]


def response_done_events(
    response_id: str,
    item_id: str,
    status: str,
    transcript: str,
    cancel_reason: str | None = None,
    error: str | None = None,
    text_only: bool = False,
) -> list[dict[str, Any]]:
    """The response ended: its item (with the transcript the conversation kept) and its status."""
    item_status = "completed" if status == "completed" else "incomplete"
    item = message_item(item_id, "assistant", [answer_part(text_only, transcript)], item_status)
    details: dict[str, Any] | None = None
    if status == "cancelled":
        details = {"type": "cancelled", "reason": cancel_reason or "turn_detected"}
    elif status == "failed":
        details = {"type": "failed", "error": {"type": "server_error", "message": error or "failed"}}
    return [
        server_event(
            "response.output_item.done", response_id=response_id, output_index=OUTPUT_INDEX, item=item
        ),
        server_event(
            "response.done", response=response_json(response_id, status, [item], details, text_only=text_only)
        ),
    ]


def truncated_event(item_id: str, audio_end_ms: int) -> dict[str, Any]:
    return server_event(
        "conversation.item.truncated", item_id=item_id, content_index=CONTENT_INDEX, audio_end_ms=audio_end_ms
    )


# ---- client events ----------------------------------------------------------------------------------------


def parse_event(raw: str) -> tuple[str, str | None, dict[str, Any]]:
    """Text frame → (type, the client's event_id or None, the event)."""
    try:
        event = json.loads(raw)
    except ValueError:
        raise EventError("invalid_json", "the event is not valid JSON") from None
    if not isinstance(event, dict):
        raise EventError("invalid_event", "an event must be a JSON object")
    event_id = event.get("event_id")
    if event_id is not None and not isinstance(event_id, str):
        raise EventError("invalid_type", "`event_id` must be a string", "event_id")
    if "type" not in event:
        raise EventError("missing_required_parameter", "an event needs a `type`", "type")
    kind = expect(event["type"], str, "type")
    return kind, event_id, event


def check_fields(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise EventError(
            "unknown_parameter", f"unknown parameter {where}.{unknown[0]}", f"{where}.{unknown[0]}"
        )


def require(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """`obj[key]`, which must be present and of `kind` (a bool is never taken for a number)."""
    if key not in obj or obj[key] is None:
        raise EventError("missing_required_parameter", f"missing required parameter {where}.{key}", key)
    return expect(obj[key], kind, f"{where}.{key}")


def expect(value: Any, kind: type | tuple[type, ...], param: str) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        names = " or ".join(k.__name__ for k in kinds).replace("str", "string").replace("dict", "object")
        names = names.replace("list", "array").replace("float", "number").replace("int", "integer")
        raise EventError("invalid_type", f"`{param}` must be {names}, got {type(value).__name__}", param)
    if isinstance(value, float) and not math.isfinite(value):
        raise EventError("invalid_value", f"`{param}` must be a finite number", param)
    return value


def whole_number(value: Any, param: str) -> int:
    """An integer, also when JSON spells it `300.0`."""
    expect(value, (int, float), param)
    if isinstance(value, float):
        if not value.is_integer():
            raise EventError("invalid_type", f"`{param}` must be an integer, got {value}", param)
        value = int(value)
    return value


def decode_audio(event: Mapping[str, Any]) -> bytes:
    """`input_audio_buffer.append`'s `audio`: base64 of PCM16 LE → the bytes (whole samples)."""
    check_fields(event, {"type", "event_id", "audio"}, "event")
    audio = require(event, "audio", str, "event")
    if len(audio) // 4 * 3 > MAX_APPEND_BYTES:  # checked before decoding: refusing costs nothing
        raise EventError(
            "audio_too_long",
            f"one input_audio_buffer.append carries at most {MAX_APPEND_SECONDS} s of audio "
            f"({MAX_APPEND_BYTES} bytes of PCM16 24 kHz, before base64); this one has about "
            f"{len(audio) // 4 * 3 / 48_000:.0f} s: send it in smaller appends",
            "audio",
        )
    try:
        pcm = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        raise EventError("invalid_value", "`audio` is not valid base64", "audio") from None
    if len(pcm) % 2:
        raise EventError("invalid_value", "`audio` must be 16-bit PCM: an even number of bytes", "audio")
    return pcm


def parse_session_update(
    session: Any, current: SessionConfig, voice_exists: Callable[[str], bool]
) -> SessionConfig:
    """`session.update`'s `session` applied to `current` (fields left out keep their value). All or nothing:
    the first bad field raises and nothing changes."""
    expect(session, dict, "session")
    check_fields(
        session,
        {
            "instructions",
            "voice",
            "turn_detection",
            "input_audio_format",
            "output_audio_format",
            "modalities",
            "tools",
            "max_response_output_tokens",  # read by `parse_max_output_tokens`
            *IGNORED_SESSION_FIELDS,
        },
        "session",
    )
    changes: dict[str, Any] = {}
    if "instructions" in session:
        changes["instructions"] = expect(session["instructions"], str, "session.instructions")
    if "voice" in session:
        changes["voice_id"] = _voice(session["voice"], voice_exists)
    if "turn_detection" in session:
        changes["turn_detection"] = _turn_detection(session["turn_detection"], current.turn_detection)
    for key in ("input_audio_format", "output_audio_format"):
        if key in session and expect(session[key], str, f"session.{key}") != PCM16_FORMAT:
            raise EventError(
                "invalid_value",
                f"session.{key} {session[key]!r} is not supported: only 'pcm16' (24 kHz mono)",
                f"session.{key}",
            )
    if "modalities" in session:
        changes["text_only"] = parse_modalities(session["modalities"], "session.modalities")
    if "tools" in session and expect(session["tools"], list, "session.tools"):
        raise EventError("invalid_value", "tools are not supported", "session.tools")
    return dataclasses.replace(current, **changes)


def parse_modalities(value: Any, where: str) -> bool:
    """`modalities`: ["audio", "text"] (spoken answers, in either order) or ["text"] (text only) → whether
    answers are text only."""
    modalities = expect(value, list, where)
    if modalities == WRITTEN:
        return True
    if sorted(m for m in modalities if isinstance(m, str)) == SPOKEN and len(modalities) == 2:
        return False
    raise EventError(
        "invalid_value", f"{where} must be ['audio', 'text'] or ['text'], got {modalities!r}", where
    )


def parse_response_create(event: Mapping[str, Any]) -> bool | None:
    """`response.create` → whether this response is text only (its `response.modalities`); None: as the
    session says. Its other overrides are accepted and have no effect."""
    check_fields(event, {"type", "event_id", "response"}, "event")
    response = event.get("response")
    if response is None:
        return None
    expect(response, dict, "response")
    if response.get("modalities") is None:
        return None
    return parse_modalities(response["modalities"], "response.modalities")


def parse_max_output_tokens(value: Any) -> int | None:
    """`max_response_output_tokens`: 1..MAX_OUTPUT_TOKENS, or "inf" (None: the server's own limit)."""
    if value == "inf":
        return None
    number = whole_number(value, "session.max_response_output_tokens")
    if not 1 <= number <= MAX_OUTPUT_TOKENS:
        raise EventError(
            "invalid_value",
            f"max_response_output_tokens must be between 1 and {MAX_OUTPUT_TOKENS}, or 'inf'",
            "session.max_response_output_tokens",
        )
    return number


def _voice(value: Any, voice_exists: Callable[[str], bool]) -> str | None:
    if value is None or value == "":
        return None
    voice = expect(value, str, "session.voice")
    if not voice_exists(voice):
        raise EventError(
            "unknown_voice", f"no voice {voice!r}: see GET /v1/voices for the voices", "session.voice"
        )
    return voice


def _turn_detection(value: Any, current: TurnDetection | None) -> TurnDetection | None:
    """null turns server VAD off; an object sets it (fields left out keep their value or the default)."""
    if value is None:
        return None
    expect(value, dict, "session.turn_detection")
    check_fields(value, TURN_DETECTION_FIELDS, "session.turn_detection")
    kind = value.get("type", "server_vad")
    if kind not in ("server_vad", "semantic_vad"):
        raise EventError(
            "invalid_value",
            f"turn_detection.type {kind!r} is not supported: 'server_vad' or 'semantic_vad'",
            "session.turn_detection.type",
        )
    base = current or TurnDetection()
    changes: dict[str, Any] = {"type": kind}
    if value.get("eagerness") is not None:
        eagerness = expect(value["eagerness"], str, "session.turn_detection.eagerness")
        if eagerness not in ("low", "medium", "high", "auto"):
            raise EventError(
                "invalid_value",
                "turn_detection.eagerness must be low, medium, high or auto",
                "turn_detection.eagerness",
            )
        changes["eagerness"] = eagerness
    if value.get("threshold") is not None:
        threshold = expect(value["threshold"], (int, float), "session.turn_detection.threshold")
        if not 0.0 < threshold < 1.0:
            raise EventError(
                "invalid_value",
                "turn_detection.threshold must be between 0 and 1",
                "turn_detection.threshold",
            )
        changes["threshold"] = float(threshold)
    for key in ("prefix_padding_ms", "silence_duration_ms"):
        if value.get(key) is not None:
            number = whole_number(value[key], f"session.turn_detection.{key}")
            if number < 0 or (key == "silence_duration_ms" and number == 0):
                raise EventError(
                    "invalid_value", f"turn_detection.{key} must be positive", f"turn_detection.{key}"
                )
            changes[key] = number
    for key in ("create_response", "interrupt_response"):
        if value.get(key) is not None:
            changes[key] = expect(value[key], bool, f"session.turn_detection.{key}")
    return dataclasses.replace(base, **changes)


def parse_user_text_item(event: Mapping[str, Any]) -> str:
    """`conversation.item.create` → the user's text (its `input_text` parts joined)."""
    check_fields(event, {"type", "event_id", "item", "previous_item_id"}, "event")
    item = require(event, "item", dict, "event")
    check_fields(item, {"id", "object", "type", "role", "status", "content"}, "item")
    if require(item, "type", str, "item") != "message":
        raise EventError("invalid_value", "only items of type 'message' can be created", "item.type")
    if require(item, "role", str, "item") != "user":
        raise EventError("invalid_value", "only 'user' messages can be created", "item.role")
    content = require(item, "content", list, "item")
    if not content:
        raise EventError("invalid_value", "item.content is empty", "item.content")
    texts = []
    for index, part in enumerate(content):
        where = f"item.content[{index}]"
        expect(part, dict, where)
        if require(part, "type", str, where) != "input_text":
            raise EventError(
                "invalid_value", f"{where}.type must be 'input_text' (typed text)", f"{where}.type"
            )
        check_fields(part, {"type", "text"}, where)
        texts.append(require(part, "text", str, where))
    text = " ".join(t.strip() for t in texts if t.strip())
    if not text:
        raise EventError("invalid_value", "the message has no text", "item.content")
    return text


def parse_truncate(event: Mapping[str, Any]) -> tuple[str, int]:
    """`conversation.item.truncate` → (item_id, audio_end_ms)."""
    check_fields(event, {"type", "event_id", "item_id", "content_index", "audio_end_ms"}, "event")
    item_id = require(event, "item_id", str, "event")
    content_index = whole_number(require(event, "content_index", (int, float), "event"), "content_index")
    if content_index != CONTENT_INDEX:
        raise EventError("invalid_value", "content_index must be 0 (items have one part)", "content_index")
    audio_end_ms = whole_number(require(event, "audio_end_ms", (int, float), "event"), "audio_end_ms")
    if audio_end_ms < 0:
        raise EventError("invalid_value", "audio_end_ms must be ≥ 0", "audio_end_ms")
    return item_id, audio_end_ms
