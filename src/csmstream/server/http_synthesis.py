"""One synthesis over HTTP: submit up front (so refusals become proper status codes), then either stream
the encoded audio as it is generated, or collect it all (for APIs that answer with one JSON body).

The text is spoken whole: a long one runs as a chain of units (server/unit_chains.py), one handle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import numpy as np
from starlette.requests import Request

from csmstream.audio.encoders.base import AudioEncoder
from csmstream.engine.base import RequestHandle
from csmstream.engine.events import AudioChunk, Finished
from csmstream.engine.request import SynthesisRequest
from csmstream.errors import CsmstreamError
from csmstream.server.context import ServerContext
from csmstream.server.unit_chains import speak_whole

logger = logging.getLogger(__name__)


class SynthesisFailed(CsmstreamError):
    """The engine ended a request with an error after it was accepted."""


class ClientDisconnected(CsmstreamError):
    """The client left before the whole answer was ready; its request was cancelled. Nobody reads a reply."""

    code = "cancelled"


def submit(ctx: ServerContext, request: SynthesisRequest, protocol: str) -> RequestHandle:
    """The whole text as one chain of units, counted; refusals of its first unit (Busy, UnknownVoice, ...) and
    `TextTooLong` propagate to the protocol's error shape."""
    ctx.metrics.requests.labels(protocol).inc()
    return speak_whole(ctx, request)


async def stream_encoded(
    ctx: ServerContext, handle: RequestHandle, encoder: AudioEncoder
) -> AsyncIterator[bytes]:
    """The encoded stream, chunk by chunk. If the consumer stops (client gone), the request is cancelled.

    An engine failure after the first bytes cannot change the status code any more: it is raised, which
    aborts the response, so the client sees a broken transfer rather than a silently short file."""
    finished: Finished | None = None
    try:
        async for event in handle.events():
            if isinstance(event, AudioChunk):
                data = encoder.encode(event.pcm)
                if data:
                    yield data
            elif isinstance(event, Finished):
                finished = event
        assert finished is not None, "an engine event stream must end with Finished"
        ctx.metrics.observe_finished(finished)
        if finished.finish_reason == "error":
            ctx.metrics.observe_error(finished.error.code if finished.error else "internal")
            raise SynthesisFailed(f"synthesis failed: {finished.error}")
        tail = encoder.finish()
        if tail:
            yield tail
    finally:
        handle.cancel()  # idempotent; frees the slot when the client went away mid-stream
        if finished is None:  # the client left (the generator was closed or cancelled): counted as such
            ctx.metrics.finished.labels("cancelled").inc()


async def collect_pcm(ctx: ServerContext, handle: RequestHandle, request: Request) -> np.ndarray:
    """All audio of the request: (S,) float32 at the engine's sample rate; SynthesisFailed on engine error.

    Nothing is sent while collecting, so a client that leaves is only seen on `request`'s ASGI channel
    (`http.disconnect`): it is watched meanwhile, and a disconnect cancels the handle at once (the engine
    frees the slot within a step) and raises ClientDisconnected."""
    chunks: list[np.ndarray] = []
    watcher = asyncio.create_task(_cancel_on_disconnect(request, handle), name="http-disconnect-watch")
    try:
        finished: Finished | None = None
        async for event in handle.events():
            if isinstance(event, AudioChunk):
                chunks.append(event.pcm)
            elif isinstance(event, Finished):
                finished = event
    finally:
        handle.cancel()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
    assert finished is not None, "an engine event stream must end with Finished"
    ctx.metrics.observe_finished(finished)
    if not watcher.cancelled() and watcher.exception() is None and watcher.result():
        raise ClientDisconnected("the client disconnected; the request was cancelled")
    if finished.finish_reason == "error":
        error = finished.error
        if isinstance(error, CsmstreamError):
            raise error
        raise SynthesisFailed("synthesis failed")
    return np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)


async def _cancel_on_disconnect(request: Request, handle: RequestHandle) -> bool:
    """Wait for the client to go away (its body is already read), then cancel; True once it has."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            handle.cancel()
            return True
