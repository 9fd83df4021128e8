"""Before any load: is there a csmstream server at the address, does it take the API key, does it have the
voice? Each failure is one sentence (a `CsmstreamError`), so that a typo costs a clear message, not a run of
failed streams."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass

from csmstream.clients.connection import closed_error, server_voice_ids
from csmstream.clients.errors import EndpointMissing
from csmstream.clients.loadtest.stream import connect
from csmstream.errors import CsmstreamError, UnknownVoice

PROBE_REQUEST_ID = "loadtest-preflight"
PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ServerInfo:
    """What `/health` says about the deployment, where it answers (None fields otherwise)."""

    status: str | None = None
    engine: str | None = None
    model: str | None = None

    def describe(self) -> str:
        if self.engine is None:
            return "no /health answer"
        return f"engine {self.engine}, model {self.model}, status {self.status}"


async def check_stream_endpoint(server_url: str, api_key: str | None) -> None:
    """Open `/v1/tts/stream` and make one round trip: a `cancel` of a request that does not exist, which a
    csmstream server answers with an `error`. A refused key shows up here either way the server refuses it
    (HTTP 401 on the handshake, or close code 4401 right after it)."""
    from websockets.exceptions import ConnectionClosed

    websocket = await connect(server_url, api_key)
    try:
        await websocket.send(json.dumps({"type": "cancel", "request_id": PROBE_REQUEST_ID}))
        reply = await asyncio.wait_for(websocket.recv(), PROBE_TIMEOUT_S)
    except ConnectionClosed as exc:
        raise closed_error(server_url, exc, api_key) from None
    except TimeoutError:
        raise CsmstreamError(
            f"{server_url} accepted a WebSocket on /v1/tts/stream but did not answer within "
            f"{PROBE_TIMEOUT_S:g} s; is it a csmstream server?"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.close(), 5.0)
    try:
        message = json.loads(reply) if isinstance(reply, str) else None
    except ValueError:
        message = None
    if not isinstance(message, dict) or message.get("type") != "error":
        raise CsmstreamError(f"{server_url} does not speak the /v1/tts/stream protocol (unexpected reply)")


def read_server_info(server_url: str, api_key: str | None) -> ServerInfo:
    """`/health`, which may answer 503 (starting, draining): still a server, just say so."""
    import httpx

    from csmstream.clients.server_url import auth_headers, http_url, is_loopback_url

    try:
        response = httpx.get(
            http_url(server_url, "/health"),
            headers=auth_headers(api_key),
            timeout=PROBE_TIMEOUT_S,
            trust_env=not is_loopback_url(server_url),
        )
        health = response.json()
    except (httpx.HTTPError, ValueError):
        return ServerInfo()
    if not isinstance(health, dict):
        return ServerInfo()
    return ServerInfo(health.get("status"), health.get("engine"), health.get("model"))


def check_voice(server_url: str, api_key: str | None, voice_id: str | None) -> None:
    """An unknown voice would fail every stream: say so once, with the voices there are."""
    if voice_id is None:
        return
    try:
        voices = server_voice_ids(server_url, api_key)
    except EndpointMissing:
        return  # a deployment without the listing: the streams will tell
    if voices and voice_id not in voices and voice_id != "default":
        raise UnknownVoice(f"unknown voice {voice_id!r}; the server's voices: {', '.join(voices)}")


async def preflight(server_url: str, api_key: str | None, voice_id: str | None) -> ServerInfo:
    await check_stream_endpoint(server_url, api_key)
    await asyncio.to_thread(check_voice, server_url, api_key, voice_id)
    info = await asyncio.to_thread(read_server_info, server_url, api_key)
    if info.status not in (None, "ok"):
        raise CsmstreamError(
            f"the server at {server_url} is {info.status} (/health); try again when it is ok"
        )
    return info
