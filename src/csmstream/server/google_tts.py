"""The Google Cloud Text-to-Speech REST shape: `POST /v1/text:synthesize` → `{"audioContent": base64}`.

Supported: `input.text`; `voice.name` (a voice id of `GET /v1/voices`; absent → the default voice),
`voice.languageCode` (accepted, not checked: the model speaks what it was trained on);
`audioConfig.audioEncoding` LINEAR16 (a wav file with its header, as Google does), PCM (raw 16-bit),
MP3, OGG_OPUS; `sampleRateHertz` (the audio is resampled); `volumeGainDb`. Refused with 400:
`input.ssml` / `input.markup`, a `speakingRate` or `pitch` other than the default, other encodings.
Errors use Google's shape: `{"error": {"code", "message", "status"}}`.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from csmstream.audio.encoders import make_encoder
from csmstream.audio.pcm import float_to_pcm16_bytes
from csmstream.audio.resample import resample
from csmstream.audio.wav_header import wav_header
from csmstream.engine.request import SynthesisRequest, new_request_id
from csmstream.errors import BadRequest, CsmstreamError
from csmstream.server.context import server_context
from csmstream.server.http_synthesis import ClientDisconnected, collect_pcm, submit
from csmstream.server.params import build_request, parse_params, parse_text, parse_voice_id

AUDIO_ENCODINGS = {"LINEAR16": "wav", "PCM": "pcm_s16le", "MP3": "mp3", "OGG_OPUS": "opus"}
MAX_GAIN_DB = 16.0  # Google's range for volumeGainDb is [-96, 16]
MIN_GAIN_DB = -96.0

GOOGLE_PATH = "/v1/text:synthesize"
_STATUS = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}

router = APIRouter()


def google_error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": status_code, "message": message, "status": _STATUS.get(status_code, "UNKNOWN")}},
        status_code=status_code,
    )


@dataclass(frozen=True)
class AudioConfig:
    encoder_format: str
    sample_rate: int | None  # None: the engine's rate
    gain_db: float


@router.post(GOOGLE_PATH)
async def synthesize(request: Request) -> Response:
    ctx = server_context(request)
    try:
        body = await request.json()
    except ValueError:
        return google_error(400, "Invalid JSON payload received.")
    try:
        synthesis, audio_config = _parse(body)
        handle = submit(ctx, synthesis, protocol="google")
        pcm = await collect_pcm(ctx, handle, request)  # (S,) float32 at the engine's rate
        audio = await run_in_threadpool(_encode, pcm, ctx.engine.sample_rate, audio_config)
    except ClientDisconnected:
        return Response(status_code=499)  # nobody is there to read it (nginx's "client closed request")
    except CsmstreamError as exc:
        ctx.metrics.observe_error(exc.code)
        return google_error({"busy": 429, "internal": 500}.get(exc.code, 400), str(exc))
    return JSONResponse({"audioContent": base64.b64encode(audio).decode("ascii")})


def _encode(pcm: np.ndarray, sample_rate: int, config: AudioConfig) -> bytes:
    if config.gain_db != 0.0:
        pcm = np.clip(pcm * np.float32(10.0 ** (config.gain_db / 20.0)), -1.0, 1.0)
    out_rate = config.sample_rate or sample_rate
    if out_rate != sample_rate:
        pcm = resample(pcm, sample_rate, out_rate)
    if config.encoder_format == "wav":  # the whole file is known: a header with real sizes, as Google sends
        data = float_to_pcm16_bytes(pcm)
        return wav_header(out_rate, data_bytes=len(data)) + data
    encoder = make_encoder(config.encoder_format, sample_rate=out_rate)
    return encoder.encode(pcm) + encoder.finish()


def _parse(body: Any) -> tuple[SynthesisRequest, AudioConfig]:
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    text_input = body.get("input")
    if not isinstance(text_input, dict):
        raise BadRequest('input is required: {"text": "..."}')
    for unsupported in ("ssml", "markup", "multiSpeakerMarkup"):
        if unsupported in text_input:
            raise BadRequest(f"input.{unsupported} is not supported by this server; send input.text")
    text = parse_text(text_input.get("text"), key="input.text")

    voice = body.get("voice") or {}
    if not isinstance(voice, dict):
        raise BadRequest("voice must be an object")
    language = voice.get("languageCode")
    if language is not None and not isinstance(language, str):
        raise BadRequest("voice.languageCode must be a string")
    voice_id = parse_voice_id(voice.get("name"), key="voice.name")

    config = body.get("audioConfig")
    if not isinstance(config, dict):
        raise BadRequest("audioConfig is required, with audioEncoding (LINEAR16, PCM, MP3 or OGG_OPUS)")
    encoding = config.get("audioEncoding")
    if encoding not in AUDIO_ENCODINGS:
        raise BadRequest(
            f"audioConfig.audioEncoding {encoding!r} is not supported; use one of {', '.join(AUDIO_ENCODINGS)}"
        )
    sample_rate = config.get("sampleRateHertz") or None
    if sample_rate is not None and (isinstance(sample_rate, bool) or not isinstance(sample_rate, int)):
        raise BadRequest(f"audioConfig.sampleRateHertz must be an integer, got {sample_rate!r}")
    if sample_rate is not None and not 8000 <= sample_rate <= 48000:
        raise BadRequest(f"audioConfig.sampleRateHertz must be between 8000 and 48000, got {sample_rate}")
    gain_db = _config_number(config, "volumeGainDb", 0.0)
    if not MIN_GAIN_DB <= gain_db <= MAX_GAIN_DB:
        raise BadRequest(
            f"audioConfig.volumeGainDb must be in [{MIN_GAIN_DB:g}, {MAX_GAIN_DB:g}], got {gain_db:g}"
        )
    speaking_rate = _config_number(config, "speakingRate", 1.0)
    if speaking_rate not in (0.0, 1.0):  # Google reads 0 as the default, 1.0
        raise BadRequest("audioConfig.speakingRate other than 1.0 is not supported by this model")
    if _config_number(config, "pitch", 0.0) != 0.0:
        raise BadRequest("audioConfig.pitch other than 0 is not supported by this model")

    synthesis = build_request(text, voice_id, parse_params(body), new_request_id())
    return synthesis, AudioConfig(AUDIO_ENCODINGS[encoding], sample_rate, gain_db)


def _config_number(config: dict[str, Any], key: str, default: float) -> float:
    value = config.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"audioConfig.{key} must be a number, got {value!r}")
    return float(value)
