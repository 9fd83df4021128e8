"""The LLM as one realtime connection sees it: a stand-in that explains why there is none, and a per-connection
limit on the length of an answer (`max_response_output_tokens`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from csmstream.pipeline.llm import LLMBackend, LLMUnavailable


class MissingLLM(LLMBackend):
    """Stands in when no LLM is configured (or it could not be built): every answer fails with why."""

    def __init__(self, message: str) -> None:
        self.name = "none"
        self.message = message

    async def stream_chat(self, messages, *, cancel=None) -> AsyncIterator[str]:  # noqa: ANN001
        raise LLMUnavailable(self.message)
        yield ""  # unreachable: makes this an async generator like the real backends


class LimitedLLM(LLMBackend):
    """One connection's view of the shared LLM: answers stop after `max_deltas` streamed pieces (the session's
    `max_response_output_tokens`; llama.cpp and most servers stream one token per piece). None: no limit
    beyond the backend's own."""

    def __init__(self, inner: LLMBackend) -> None:
        self.inner = inner
        self.name = inner.name
        self.max_deltas: int | None = None

    async def stream_chat(self, messages, *, cancel=None) -> AsyncIterator[str]:  # noqa: ANN001
        limit = self.max_deltas
        count = 0
        # aclosing: leaving early must close the backend's stream now (that stops the generation)
        async with contextlib.aclosing(self.inner.stream_chat(messages, cancel=cancel)) as deltas:
            async for delta in deltas:
                yield delta
                count += 1
                if limit is not None and count >= limit:
                    return
