"""The voice library over HTTP: `GET /v1/voices`, `GET /v1/voices/{id}`, `POST /v1/voices` (multipart:
`audio` file, optional `transcript`, `voice_id`, `name`, `speaker`), `DELETE /v1/voices/{id}`.

Without a `transcript`, the server finds the speech in the recording (any length up to the upload limit),
transcribes it with Whisper and keeps the cleanest 5-20 s as the voice's references (`voices/clone.py`).
With one, the whole recording is the reference and the transcript must be its exact words.

Uploads are limited in bytes here (413, checked while reading, before anything is decoded) and in
duration (at least 5 s, `voices.validate.decode_reference_upload`) and by the voice library (400). Any format `csmstream.audio.io.read_audio` reads is accepted; the
library converts it to 24 kHz mono. Library calls touch the disk and resample, so they run in a thread.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from csmstream.errors import BadRequest, CsmstreamError
from csmstream.server.context import server_context
from csmstream.voices.validate import decode_reference_upload

router = APIRouter()

MAX_CLONE_SECONDS = 600.0  # a recording without transcript is searched for speech: bound that work


class UploadTooLarge(BadRequest):
    code = "too_large"


def voices_error(status_code: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status_code)


def _error_response(exc: CsmstreamError) -> JSONResponse:
    status_code = {"unknown_voice": 404, "too_large": 413, "busy": 429, "internal": 500}.get(exc.code, 400)
    return voices_error(status_code, exc.code, str(exc))


@router.get("/v1/voices")
async def list_voices(request: Request) -> dict[str, Any]:
    voices = server_context(request).voices
    infos = await run_in_threadpool(voices.list)
    return {"voices": [info.to_dict() for info in infos]}


@router.get("/v1/voices/{voice_id}")
async def get_voice(voice_id: str, request: Request) -> JSONResponse:
    voices = server_context(request).voices
    try:
        voice = await run_in_threadpool(voices.get, voice_id)
    except CsmstreamError as exc:
        return _error_response(exc)
    return JSONResponse(voice.info().to_dict())


@router.delete("/v1/voices/{voice_id}")
async def delete_voice(voice_id: str, request: Request) -> JSONResponse:
    voices = server_context(request).voices
    try:
        await run_in_threadpool(voices.delete, voice_id)
        server_context(request).engine.forget_voice(
            voice_id
        )  # a fine-tuned voice's adapter leaves the device
    except CsmstreamError as exc:
        return _error_response(exc)
    return JSONResponse({"id": voice_id, "deleted": True})


@router.post("/v1/voices")
async def create_voice(request: Request) -> JSONResponse:
    ctx = server_context(request)
    try:
        form = await _read_form(request, ctx.options.max_upload_bytes)
        upload = form.get("audio")
        if not isinstance(upload, UploadFile):
            raise BadRequest("`audio` is required: a multipart file field with the reference recording")
        transcript = _optional_field(form, "transcript")  # None: transcribed here
        if transcript is not None and not transcript.strip():
            transcript = None
        voice_id = _optional_field(form, "voice_id")
        name = _optional_field(form, "name")
        if voice_id is None and name is None:
            raise BadRequest("give the voice a `name` (its id is made from it) or a `voice_id`")
        speaker = _speaker(form.get("speaker"))
        data = await upload.read()
        voice = await run_in_threadpool(
            _create, ctx.voices, voice_id, name, speaker, data, transcript, upload.filename
        )
    except CsmstreamError as exc:
        return _error_response(exc)
    return JSONResponse(voice.info().to_dict(), status_code=201)


def _create(
    voices,
    voice_id: str | None,
    name: str | None,
    speaker: int,
    data: bytes,
    transcript: str | None,
    filename: str | None = None,
):
    # (S, C) float32; a BadRequest a person can act on when it is not audio or too short to clone
    samples, sample_rate = decode_reference_upload(data, filename)
    if transcript is not None:
        return voices.create(voice_id, name, speaker, [(samples, sample_rate, transcript)])
    from csmstream.voices.clone import Recording, clone_segments

    seconds = samples.shape[0] / sample_rate
    if seconds > MAX_CLONE_SECONDS:
        raise BadRequest(
            f"the recording is {seconds / 60:.1f} min long; without a transcript the server analyses at most "
            f"{MAX_CLONE_SECONDS / 60:g} min. Upload a shorter part (5 to 60 s of clear speech is plenty)"
        )
    if voice_id is not None and voices.has(voice_id):  # refuse before transcribing, not after
        raise BadRequest(f"voice {voice_id!r} already exists; choose another id")
    segments = clone_segments([Recording(samples, sample_rate, filename or "the recording")])
    return voices.create(voice_id, name, speaker, segments)


async def _read_form(request: Request, max_bytes: int):
    """The multipart form, refusing bodies over `max_bytes` while reading them (not after)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise BadRequest(
            "send the voice as multipart/form-data with an `audio` file (and, if you have it, a `transcript`)"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise UploadTooLarge(f"the upload is {int(declared)} bytes; at most {max_bytes} bytes are accepted")
    parts: list[bytes] = []
    num_bytes = 0
    try:
        async for chunk in request.stream():
            num_bytes += len(chunk)
            if num_bytes > max_bytes:
                raise UploadTooLarge(f"the upload is over {max_bytes} bytes, the most accepted")
            parts.append(chunk)
    except ClientDisconnect:
        raise BadRequest("the client disconnected during the upload") from None
    body = b"".join(parts)

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        return await Request(request.scope, replay).form(max_files=1, max_fields=16)
    except Exception as exc:  # malformed multipart: python-multipart / starlette raise several kinds
        raise BadRequest(f"could not parse the multipart form: {exc}") from exc


def _optional_field(form, key: str) -> str | None:
    value = form.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"`{key}` must be a text field")
    return value


def _speaker(value: object) -> int:
    if value is None or value == "":
        return 0
    if not isinstance(value, str) or not value.strip().lstrip("-").isdigit():
        raise BadRequest(f"`speaker` must be an integer, got {value!r}")
    return int(value)
