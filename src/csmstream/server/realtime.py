"""`/v1/realtime`: a spoken conversation over a WebSocket, with the OpenAI Realtime API's events.

One connection = one `Conversation` (pipeline/) on the server's shared speech engine, with the app's shared
speech recognition, VAD model and LLM (`RealtimeServices`, built on the first connection and kept on
`app.state.realtime`, server/realtime_services.py). The connection itself (its tasks, the event ordering,
the events' meaning) is server/realtime_connection.py; the events' shapes are server/realtime_events.py.
Both shapes of OpenAI's API are spoken, chosen per connection: beta (`OpenAI-Beta: realtime=v1`) and GA
(`session.type`, `audio.input` / `audio.output`, `response.output_audio.delta`, ...); the rule and the
translation are server/realtime_shapes.py.

Differences from OpenAI's service, by design: audio is PCM16 24 kHz mono only; the LLM and its sampling are
the server's (`temperature` and `input_audio_transcription` are accepted and have no effect; per-response
overrides in `response.create` are ignored but for `modalities`); `max_response_output_tokens` counts the LLM's streamed pieces
(one token each from llama.cpp and most servers); no tools. After a barge-in the server cuts the assistant
item to what it estimates was played and says so with `conversation.item.truncated`; a client that knows
better sends `conversation.item.truncate`. `conversation.item.retrieve` returns an item as the conversation
keeps it, audio included. `modalities: ["text"]` (GA `output_modalities`), for the session or one response,
makes an answer text only: nothing is synthesized, no engine slot is used (each synthesis a conversation
does submit is counted in `/metrics`: server/realtime_engine.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, WebSocket

from csmstream.server.context import server_context
from csmstream.server.realtime_connection import RealtimeConnection
from csmstream.server.realtime_services import realtime_services


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    services = getattr(app.state, "realtime", None)
    if services is not None:
        await services.aclose()


router = APIRouter(lifespan=_lifespan)


@router.websocket("/v1/realtime")
async def realtime(websocket: WebSocket) -> None:
    ctx = server_context(websocket)
    await RealtimeConnection(websocket, ctx, realtime_services(websocket.app, ctx.settings)).serve()
