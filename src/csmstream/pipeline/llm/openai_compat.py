"""Any OpenAI-compatible chat endpoint (Ollama, vLLM, llama.cpp server, OpenAI) streamed over HTTP with httpx."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from httpx_sse import EventSource, SSEError

from csmstream.pipeline.llm.base import ChatMessage, LLMBackend
from csmstream.pipeline.llm.errors import LLMAuthError, LLMError, LLMModelNotFound, LLMTimeout, LLMUnavailable

# Connecting to a local server takes milliseconds; a model that is loading may take a while to say its first word.
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_READ_TIMEOUT_S = 60.0
ERROR_BODY_CHARS = 300  # how much of an error response we quote to the user


class OpenAICompatibleLLM(LLMBackend):
    """POST `{base_url}/chat/completions` with `stream: true` and yield `choices[0].delta.content`.

    `base_url` is the API root, e.g. `http://127.0.0.1:11434/v1` (Ollama) or `https://api.openai.com/v1`.
    `model` may be None for servers that serve one model and ignore the field (llama.cpp server).
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        *,
        temperature: float | None = 0.7,
        max_tokens: int | None = 400,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise LLMError(f"LLM base URL must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.extra_body = dict(extra_body or {})
        self.timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        self.name = f"openai-compatible {self.base_url}" + (f" model={model}" if model else "")
        # One client per event loop: an httpx.AsyncClient must not be used from another loop.
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _request_body(self, messages: list[ChatMessage]) -> dict[str, Any]:
        body: dict[str, Any] = {"messages": messages, "stream": True}
        if self.model:
            body["model"] = self.model
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        body.update(self.extra_body)
        return body

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _client_for_this_loop(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop or self._client.is_closed:
            self._client = httpx.AsyncClient(timeout=self.timeout)
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._client_loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None
        self._client_loop = None

    async def stream_chat(
        self, messages: list[ChatMessage], *, cancel: asyncio.Event | None = None
    ) -> AsyncIterator[str]:
        if cancel is not None and cancel.is_set():
            return
        client = self._client_for_this_loop()
        request = client.build_request(
            "POST", self.url, json=self._request_body(messages), headers=self._headers()
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise LLMTimeout(
                f"the LLM at {self.base_url} did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise LLMUnavailable(
                f"cannot reach the LLM at {self.base_url} ({exc or type(exc).__name__}): is the server running, "
                "and is CSMSTREAM_LLM_BASE_URL right?"
            ) from exc
        # Cancelling closes the response, which ends the line iterator at once even while it waits for a token.
        watcher = asyncio.create_task(_close_when_set(cancel, response)) if cancel is not None else None
        try:
            if response.status_code != 200:
                await response.aread()
                raise self._status_error(response)
            async for event in EventSource(response).aiter_sse():
                if event.data.strip() == "[DONE]":
                    break
                delta = self._parse_delta(event.data)
                if delta:
                    yield delta
        except SSEError as exc:  # the answer was not an event stream (wrong Content-Type)
            raise LLMError(f"the LLM at {self.base_url} did not stream server-sent events: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise LLMTimeout(
                f"the LLM at {self.base_url} stopped sending for too long ({type(exc).__name__})"
            ) from exc
        except (httpx.TransportError, httpx.StreamError) as exc:
            if cancel is not None and cancel.is_set():
                return  # we closed it ourselves
            raise LLMUnavailable(f"the connection to the LLM at {self.base_url} broke: {exc}") from exc
        finally:
            if watcher is not None:
                watcher.cancel()
            await response.aclose()

    def _parse_delta(self, data: str) -> str:
        try:
            payload = json.loads(data)
        except json.JSONDecodeError as exc:
            raise LLMError(
                f"the LLM at {self.base_url} sent an event that is not JSON: {data[:80]!r}"
            ) from exc
        if not isinstance(payload, dict):
            raise LLMError(f"the LLM at {self.base_url} sent an unexpected event: {data[:80]!r}")
        if "error" in payload:
            raise LLMError(f"the LLM at {self.base_url} failed: {_error_message(payload)}")
        choices = payload.get("choices") or []
        if not choices:
            return ""  # usage-only chunks
        delta = choices[0].get("delta") or {}
        content = delta.get("content")
        return content if isinstance(content, str) else ""

    def _status_error(self, response: httpx.Response) -> LLMError:
        status = response.status_code
        try:
            detail = _error_message(response.json())
        except (json.JSONDecodeError, ValueError):
            detail = response.text.strip()
        detail = detail[:ERROR_BODY_CHARS] or response.reason_phrase
        if status in (401, 403):
            return LLMAuthError(
                f"the LLM at {self.base_url} refused the API key (HTTP {status}: {detail}); "
                "set CSMSTREAM_LLM_API_KEY"
            )
        if status == 404:
            if "model" in detail.lower():
                return LLMModelNotFound(
                    f"the LLM at {self.base_url} has no model {self.model!r} ({detail}); "
                    "set CSMSTREAM_LLM_MODEL to one it serves"
                )
            return LLMUnavailable(
                f"{self.url} does not exist (HTTP 404: {detail}); the base URL usually ends in /v1"
            )
        if status in (408, 504):
            return LLMTimeout(f"the LLM at {self.base_url} timed out (HTTP {status}: {detail})")
        return LLMError(f"the LLM at {self.base_url} answered HTTP {status}: {detail}")


def _error_message(payload: Any) -> str:
    """The human part of an OpenAI-style error body: {"error": {"message": ...}} or {"error": "..."}."""
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict):
            return str(error.get("message") or error)
        return str(error)
    return str(payload)


async def _close_when_set(cancel: asyncio.Event, response: httpx.Response) -> None:
    await cancel.wait()
    with contextlib.suppress(Exception):
        await response.aclose()
