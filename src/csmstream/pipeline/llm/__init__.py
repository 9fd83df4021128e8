"""Language models for the conversation: one interface, an HTTP client for OpenAI-compatible servers, and
an embedded llama.cpp backend."""

from __future__ import annotations

from pathlib import Path

from csmstream.pipeline.llm.base import ChatMessage, LLMBackend
from csmstream.pipeline.llm.default_model import (
    DEFAULT_LLM_MAX_TOKENS,
    DEFAULT_LLM_NAME,
    DEFAULT_LLM_TEMPERATURE,
    bundled_gguf,
    is_bundled,
    with_default_llm,
)
from csmstream.pipeline.llm.errors import LLMAuthError, LLMError, LLMModelNotFound, LLMTimeout, LLMUnavailable
from csmstream.pipeline.llm.llamacpp import LlamaCppLLM
from csmstream.pipeline.llm.openai_compat import OpenAICompatibleLLM
from csmstream.pipeline.llm.persona import DEFAULT_PERSONA

__all__ = [
    "DEFAULT_PERSONA",
    "ChatMessage",
    "LLMAuthError",
    "LLMBackend",
    "LLMError",
    "LLMModelNotFound",
    "LLMTimeout",
    "LLMUnavailable",
    "LlamaCppLLM",
    "OpenAICompatibleLLM",
    "build_llm",
    "bundled_gguf",
    "with_default_llm",
    "DEFAULT_LLM_NAME",
]


def build_llm(
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    gguf: str | Path | None = None,
) -> LLMBackend:
    """The configured LLM: an embedded GGUF model when `gguf` is given, else the OpenAI-compatible server at
    `base_url` (settings `llm_gguf`, `llm_base_url`, `llm_model`, `llm_api_key`)."""
    if gguf:
        if is_bundled(gguf):  # the small default model: cooler and shorter (see default_model.py)
            return LlamaCppLLM(gguf, temperature=DEFAULT_LLM_TEMPERATURE, max_tokens=DEFAULT_LLM_MAX_TOKENS)
        return LlamaCppLLM(gguf)
    if base_url:
        return OpenAICompatibleLLM(base_url, model, api_key)
    raise LLMUnavailable(
        "no language model configured: set CSMSTREAM_LLM_BASE_URL (e.g. http://127.0.0.1:11434/v1 for Ollama) "
        "and CSMSTREAM_LLM_MODEL, or CSMSTREAM_LLM_GGUF to a local .gguf file, or install the llm-model extra "
        "(a small bundled model)"
    )
