"""The OpenAI speech API: `POST /v1/audio/speech` (audio streamed as it is generated) and `GET /v1/models`.

Differences from OpenAI, all answered with a clear 400 rather than ignored: `speed` must be 1.0 (CSM has
no speed control), `instructions` are not supported, `stream_format` must be `audio`, and `aac` is not
offered. `model` may be any name (one model is served). `voice` is a voice id of `GET /v1/voices` (a
string, or `{"id": ...}` as in OpenAI's custom voices). Extensions: `temperature`, `topk`, `seed`,
`max_seconds` (as on the WebSocket).
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from csmstream.audio.encoders import make_encoder
from csmstream.engine.base import RequestHandle
from csmstream.engine.request import SynthesisRequest, new_request_id
from csmstream.errors import BadRequest, CsmstreamError
from csmstream.server.context import server_context
from csmstream.server.http_synthesis import stream_encoded, submit
from csmstream.server.params import build_request, parse_params, parse_text, parse_voice_id

# OpenAI's response_format → our encoder's format name
RESPONSE_FORMATS = {"pcm": "pcm_s16le", "wav": "wav", "mp3": "mp3", "opus": "opus", "flac": "flac"}
DEFAULT_RESPONSE_FORMAT = "mp3"  # OpenAI's default

router = APIRouter()


def openai_error(status_code: int, message: str, code: str, param: str | None = None) -> JSONResponse:
    # as OpenAI: every refusal of the request itself (bad input, no such path, too large) is an invalid request
    if status_code == 429:
        error_type = "rate_limit_exceeded"
    elif 400 <= status_code < 500:
        error_type = "invalid_request_error"
    else:
        error_type = "server_error"
    return JSONResponse(
        {"error": {"message": message, "type": error_type, "param": param, "code": code}},
        status_code=status_code,
    )


def error_from_exception(exc: CsmstreamError) -> JSONResponse:
    # OpenAI answers an unknown voice with 400 as well: every bad input is an invalid request
    status_code = {"busy": 429, "internal": 500}.get(exc.code, 400)
    return openai_error(status_code, str(exc), exc.code)


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    engine = server_context(request).engine
    return {
        "object": "list",
        "data": [{"id": engine.model_name, "object": "model", "created": 0, "owned_by": "csmstream"}],
    }


@router.post("/v1/audio/speech")
async def create_speech(request: Request):
    ctx = server_context(request)
    try:
        body = await request.json()
    except ValueError:
        return openai_error(400, "the request body is not valid JSON", "bad_request")
    try:
        response_format, synthesis = _parse_speech_request(body)
        encoder = make_encoder(RESPONSE_FORMATS[response_format], sample_rate=ctx.engine.sample_rate)
        handle = submit(ctx, synthesis, protocol="openai")
    except CsmstreamError as exc:
        ctx.metrics.observe_error(exc.code)
        return error_from_exception(exc)
    # a client that leaves mid-stream ends the stream (the generator cancels in its `finally` when it is
    # cancelled or closed); the background task makes sure of it even when the generator is left suspended
    return StreamingResponse(
        stream_encoded(ctx, handle, encoder),
        media_type=encoder.content_type,
        background=BackgroundTask(_cancel, handle),
    )


async def _cancel(handle: RequestHandle) -> None:
    handle.cancel()  # idempotent: a no-op once the request has finished


def _parse_speech_request(body: Any) -> tuple[str, SynthesisRequest]:
    """(response_format, the engine request) from OpenAI's JSON body."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("`model` is required (any name: this server has one model)")
    text = parse_text(body.get("input"), key="input")
    voice = body.get("voice")
    if isinstance(voice, dict):  # OpenAI's custom voice form {"id": "..."}
        voice = voice.get("id")
    response_format = body.get("response_format") or DEFAULT_RESPONSE_FORMAT
    if response_format not in RESPONSE_FORMATS:
        raise BadRequest(
            f"response_format {response_format!r} is not supported; use one of {', '.join(RESPONSE_FORMATS)}"
        )
    speed = body.get("speed", 1.0)
    if speed is not None:
        if isinstance(speed, bool) or not isinstance(speed, int | float) or not math.isfinite(speed):
            raise BadRequest(f"`speed` must be a number, got {speed!r}")
        if speed != 1.0:
            raise BadRequest(
                f"`speed` {speed:g} is not supported: this model speaks at its own pace (use 1.0)"
            )
    if body.get("instructions"):
        raise BadRequest(
            "`instructions` are not supported by this model; describe the voice with a voice clone"
        )
    stream_format = body.get("stream_format", "audio")
    if stream_format not in (None, "audio"):
        raise BadRequest(f"stream_format {stream_format!r} is not supported; use `audio`")
    synthesis = build_request(text, parse_voice_id(voice, key="voice"), parse_params(body), new_request_id())
    return response_format, synthesis
