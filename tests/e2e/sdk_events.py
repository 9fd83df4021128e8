"""Helpers of the tests that drive `/v1/realtime` with the official `openai` client (a plain module: test
files import it): the client for a test server, and the events it received as plain dicts."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx


def sdk_client(server) -> Any:  # noqa: ANN001
    """An `openai.AsyncOpenAI` for `server` (imported here: the tests that use it skip without `openai`)."""
    import openai

    # `websocket_base_url`: the beta interface would otherwise connect with wss://
    ws_url = "ws" + server.url[len("http") :] + "/v1"
    return openai.AsyncOpenAI(api_key="unused", base_url=server.url + "/v1", websocket_base_url=ws_url)


async def until(connection, kind: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:  # noqa: ANN001
    """Every event received up to and including the first of `kind` (as plain dicts)."""
    events: list[dict[str, Any]] = []

    async def read() -> None:
        while True:
            event = (await connection.recv()).model_dump(exclude_unset=True)
            events.append(event)
            if event["type"] == kind:
                return

    try:
        await asyncio.wait_for(read(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"no {kind} within {timeout_s} s; got {[e['type'] for e in events]}") from None
    return events


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def pcm_of(events: list[dict[str, Any]], kind: str) -> bytes:
    return b"".join(base64.b64decode(e["delta"]) for e in of_type(events, kind))


def text_item(text: str) -> dict[str, Any]:
    """A typed user message for `conversation.item.create`."""
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def realtime_syntheses(server) -> float:  # noqa: ANN001
    """Engine requests the server's conversations have submitted so far (`/metrics`, server/realtime_engine.py)."""
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    for line in metrics.splitlines():
        if line.startswith('csmstream_requests_total{protocol="realtime"}'):
            return float(line.split()[-1])
    return 0.0
