"""The one thing the conversation needs from a language model: stream the reply to a chat, as text deltas."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator

# A chat message as OpenAI's chat API spells it: {"role": "system" | "user" | "assistant", "content": str}.
ChatMessage = dict[str, str]


class LLMBackend(abc.ABC):
    """A chat model that streams its answer. One instance may serve many conversations at once."""

    name: str  # what it is, for logs: "openai-compatible http://...", "llama.cpp model.gguf"

    @abc.abstractmethod
    def stream_chat(
        self, messages: list[ChatMessage], *, cancel: asyncio.Event | None = None
    ) -> AsyncIterator[str]:
        """Yield the reply as text deltas (non-empty strings) as the model writes them.

        Setting `cancel` stops the generation promptly and ends the iterator without an error.
        Failures raise `LLMError` subclasses with a message meant for a person.
        """

    async def aclose(self) -> None:  # noqa: B027 (optional hook, most backends hold nothing)
        """Release connections / threads; the backend is unusable afterwards."""
