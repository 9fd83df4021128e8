"""The two shapes of the OpenAI Realtime API that `/v1/realtime` speaks, and the translation between them.

The connection (server/realtime_connection.py) and the event builders (server/realtime_events.py) work in the
BETA shape, the internal form: `response.audio.delta`, `conversation.item.created`, a flat session object
(`modalities`, `voice`, `turn_detection`, `input_audio_format`, ...). A connection in the GA shape (the
generally available interface, the official SDK's `client.realtime.connect()`) gets every server event and
session object translated here on the way out, and its `session.update` translated to the internal form on
the way in. Nothing else in the server knows the GA names.

Which shape a connection speaks (decided per connection):

1. an `OpenAI-Beta: realtime=v1` header, or the subprotocol `openai-beta.realtime-v1` (a browser offers it
   beside `csmstream`, the one the server selects) → BETA, for the whole connection (the official SDK's
   `client.beta.realtime.connect()` sends that header);
2. otherwise the connection starts in GA when the client is the official OpenAI SDK (its `X-Stainless-Lang`
   header; without the beta header the SDK speaks GA), and in BETA for any other client (csmstream's own
   clients, its web page and clients written before GA send no header and expect the beta events);
3. without the beta header, the first `session.update` that tells settles it: a `session.type` (which GA
   requires) → GA, the beta-only fields (`modalities`, `voice`, `turn_detection`, `input_audio_format`, ...)
   without a `type` → BETA. Events answered before that (`session.created` included) were in the start shape.

GA parameters with no effect here are accepted and ignored, as OpenAI's server would accept them:
`tracing`, `prompt`, `include`, `truncation`, `reasoning`, `parallel_tool_calls`, `tool_choice`, `model`,
`audio.input.transcription`, `audio.input.noise_reduction`, `turn_detection.idle_timeout_ms` when null.
Values this server cannot honour are errors: another audio format than 24 kHz PCM, `output_modalities`
other than `["audio"]` or `["text"]`, `audio.output.speed` other than 1, a transcription session.

`output_modalities: ["text"]` (session-wide, or for one `response.create`) is the beta `modalities: ["text"]`:
a text-only answer, nothing synthesized (pipeline/conversation.py), its beta `response.text.*` events named
`response.output_text.*` here. The translation keeps no state of its own: which answers are text only is in
the events (their content parts, the response's `modalities`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.server.realtime_events import SPOKEN, WRITTEN, EventError, check_fields, expect, new_event_id

BETA = "beta"
GA = "ga"
BETA_HEADER_VALUE = "realtime=v1"
BETA_SUBPROTOCOL = "openai-beta.realtime-v1"
SDK_HEADER = "x-stainless-lang"  # sent by the official OpenAI SDK (Python: on the WebSocket too)

GA_AUDIO_FORMAT = {"type": "audio/pcm", "rate": SAMPLE_RATE}
# session fields only the beta shape has (at the top level of `session`)
BETA_ONLY_SESSION_FIELDS = {
    "modalities",
    "voice",
    "turn_detection",
    "input_audio_format",
    "output_audio_format",
    "input_audio_transcription",
    "max_response_output_tokens",
}
# GA session fields accepted with no effect (see the module docs); `id` and `object` are read-only.
IGNORED_GA_SESSION_FIELDS = {
    "tracing",
    "prompt",
    "include",
    "truncation",
    "reasoning",
    "parallel_tool_calls",
    "tool_choice",
    "model",
    "expires_at",
    "object",
    "id",
}
GA_SESSION_FIELDS = {"type", "instructions", "audio", "output_modalities", "max_output_tokens", "tools"}
GA_SESSION_FIELDS |= IGNORED_GA_SESSION_FIELDS

# server event names that differ (beta → GA); the rest are the same in both shapes
GA_EVENT_NAMES = {
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
}
# an assistant item's content part types (beta → GA)
GA_PART_TYPES = {"audio": "output_audio", "text": "output_text"}
# error params (internal, beta names) → where the same setting lives in a GA session
GA_PARAMS = (
    ("session.turn_detection", "session.audio.input.turn_detection"),
    ("turn_detection.", "session.audio.input.turn_detection."),
    ("session.voice", "session.audio.output.voice"),
    ("session.max_response_output_tokens", "session.max_output_tokens"),
)


def initial_shape(headers: Mapping[str, str], subprotocols: list[str]) -> RealtimeShape:
    """The shape a new connection starts in, from its handshake (rules 1 and 2 of the module docs)."""
    beta_header = headers.get("openai-beta", "")
    if BETA_HEADER_VALUE in beta_header.replace(" ", "").split(",") or BETA_SUBPROTOCOL in subprotocols:
        return RealtimeShape(BETA, settled=True)
    return RealtimeShape(GA if SDK_HEADER in headers else BETA, settled=False)


class RealtimeShape:
    """One connection's shape: translates client events in and server events out (identity in BETA)."""

    def __init__(self, name: str, *, settled: bool) -> None:
        self.name = name
        self.settled = settled  # a beta header, or a session.update that told

    @property
    def ga(self) -> bool:
        return self.name == GA

    # ---- client events → the internal form

    def client_event(self, kind: str, event: dict[str, Any]) -> dict[str, Any]:
        """A client event as the connection handles it (rule 3 of the module docs is applied here)."""
        if kind == "session.update" and not self.settled and isinstance(event.get("session"), dict):
            told = _shape_of_session(event["session"])
            if told is not None:
                self.name, self.settled = told, True
        if not self.ga:
            return event
        if kind == "session.update" and "session" in event:
            return {**event, "session": self._session_update(event["session"])}
        response = event.get("response")
        if kind == "response.create" and isinstance(response, dict) and "output_modalities" in response:
            internal = {k: v for k, v in response.items() if k != "output_modalities"}
            if response["output_modalities"] is not None:
                internal["modalities"] = _modalities(
                    response["output_modalities"], "response.output_modalities"
                )
            return {**event, "response": internal}
        return event

    def _session_update(self, session: Any) -> dict[str, Any]:
        """A GA `session` → the internal (beta) one; checks what the beta parser cannot see."""
        expect(session, dict, "session")
        check_fields(session, GA_SESSION_FIELDS, "session")
        if "type" in session and session["type"] != "realtime":
            raise EventError(
                "invalid_value",
                f"session.type {session['type']!r} is not supported: only 'realtime' (conversations)",
                "session.type",
            )
        internal: dict[str, Any] = {}
        for key in ("instructions", "tools"):
            if key in session:
                internal[key] = session[key]
        if "max_output_tokens" in session:
            internal["max_response_output_tokens"] = session["max_output_tokens"]
        audio = session.get("audio")
        if audio is not None:
            expect(audio, dict, "session.audio")
            check_fields(audio, {"input", "output"}, "session.audio")
            internal.update(_audio_input(audio.get("input")))
            internal.update(_audio_output(audio.get("output")))
        if "output_modalities" in session:
            internal["modalities"] = _modalities(session["output_modalities"], "session.output_modalities")
        return internal

    # ---- server events → the connection's shape

    def session(self, session: dict[str, Any]) -> dict[str, Any]:
        """The session object of `session.created` / `session.updated` (built in the beta shape)."""
        if not self.ga:
            return session
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": session["id"],
            "model": session["model"],
            "output_modalities": _output_modalities(session["modalities"]),
            "instructions": session["instructions"],
            "audio": {
                "input": {
                    "format": dict(GA_AUDIO_FORMAT),
                    "transcription": session["input_audio_transcription"],
                    "noise_reduction": None,
                    "turn_detection": session["turn_detection"],
                },
                "output": {"format": dict(GA_AUDIO_FORMAT), "voice": session["voice"], "speed": 1.0},
            },
            "tools": session["tools"],
            "tool_choice": session["tool_choice"],
            "max_output_tokens": session["max_response_output_tokens"],
            "tracing": None,
            "prompt": None,
            "truncation": "auto",
        }

    def server_events(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """One internal server event → what this connection's client gets (none, one or more)."""
        if not self.ga:
            return [event]
        kind = event["type"]
        out = {**event, "type": GA_EVENT_NAMES.get(kind, kind)}
        if "item" in out:
            out["item"] = _item(out["item"])
        if "response" in out:
            out["response"] = _response(out["response"])
        if kind == "error":
            out["error"] = _error(out["error"])
        if kind == "conversation.item.created":
            # GA: `added` when an item joins the conversation, `done` once it is complete (an answer's at
            # `response.output_item.done`, the user's at once: its transcription comes on its own).
            out["type"] = "conversation.item.added"
            if event["item"]["role"] != "assistant":
                return [out, {**out, "type": "conversation.item.done", "event_id": new_event_id()}]
        if kind == "response.output_item.done":
            done = {"type": "conversation.item.done", "event_id": new_event_id(), "item": out["item"]}
            return [out, done]
        return [out]


# ---- helpers --------------------------------------------------------------------------------------------


def _shape_of_session(session: Mapping[str, Any]) -> str | None:
    if "type" in session:
        return GA
    if BETA_ONLY_SESSION_FIELDS & set(session):
        return BETA
    return None


def _audio_format(value: Any, where: str) -> None:
    expect(value, dict, where)
    check_fields(value, {"type", "rate"}, where)
    kind, rate = value.get("type", "audio/pcm"), value.get("rate", SAMPLE_RATE)
    if kind != "audio/pcm" or rate != SAMPLE_RATE:
        raise EventError(
            "invalid_value",
            f"{where} {value!r} is not supported: only {{'type': 'audio/pcm', 'rate': {SAMPLE_RATE}}}",
            where,
        )


def _audio_input(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    where = "session.audio.input"
    expect(value, dict, where)
    check_fields(value, {"format", "transcription", "noise_reduction", "turn_detection"}, where)
    if value.get("format") is not None:
        _audio_format(value["format"], f"{where}.format")
    internal: dict[str, Any] = {}
    if "turn_detection" in value:
        detection = value["turn_detection"]
        if isinstance(detection, dict) and detection.get("idle_timeout_ms", 0) is None:
            detection = {k: v for k, v in detection.items() if k != "idle_timeout_ms"}
        internal["turn_detection"] = detection
    return internal  # transcription and noise_reduction: accepted, no effect (module docs)


def _audio_output(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    where = "session.audio.output"
    expect(value, dict, where)
    check_fields(value, {"format", "voice", "speed"}, where)
    if value.get("format") is not None:
        _audio_format(value["format"], f"{where}.format")
    if value.get("speed") is not None:
        speed = expect(value["speed"], (int, float), f"{where}.speed")
        if speed != 1:
            raise EventError("invalid_value", f"{where}.speed is not supported: only 1.0", f"{where}.speed")
    internal: dict[str, Any] = {}
    if "voice" in value:
        voice = value["voice"]
        if isinstance(voice, dict):  # `{"id": "voice_1234"}`: a custom voice
            check_fields(voice, {"id"}, f"{where}.voice")
            voice = voice.get("id")
        internal["voice"] = voice
    return internal


def _modalities(value: Any, where: str) -> list[str]:
    """GA `output_modalities` → the internal (beta) `modalities`."""
    modalities = expect(value, list, where)
    if modalities not in (["audio"], ["text"]):
        raise EventError("invalid_value", f"{where} must be ['audio'] or ['text'], got {modalities!r}", where)
    return list(WRITTEN if modalities == WRITTEN else SPOKEN)


def _output_modalities(modalities: list[str]) -> list[str]:
    """The internal (beta) `modalities` → GA `output_modalities`."""
    return list(WRITTEN) if modalities == WRITTEN else ["audio"]


def _response(response: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in response.items() if k != "modalities"}
    out["output_modalities"] = _output_modalities(response.get("modalities") or [])
    out["output"] = [_item(item) for item in response.get("output") or []]
    return out


def _item(item: dict[str, Any]) -> dict[str, Any]:
    if item.get("role") != "assistant":
        return item
    content = [
        {**part, "type": GA_PART_TYPES.get(part.get("type"), part.get("type"))}
        for part in item.get("content") or []
    ]
    return {**item, "content": content}


def _error(error: dict[str, Any]) -> dict[str, Any]:
    param = error.get("param")
    if not param:
        return error
    for beta, ga in GA_PARAMS:
        if param.startswith(beta):
            renamed = ga + param[len(beta) :]
            return {**error, "param": renamed, "message": error["message"].replace(param, renamed)}
    return error
