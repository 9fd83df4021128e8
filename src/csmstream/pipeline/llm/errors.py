"""What can go wrong talking to a language model, each with a message that says what to do."""

from __future__ import annotations

from csmstream.errors import CsmstreamError


class LLMError(CsmstreamError):
    """The language model failed; the message is meant for a person."""

    code = "llm_error"


class LLMUnavailable(LLMError):
    """The LLM server could not be reached (not running, wrong address) or is not installed."""

    code = "llm_unavailable"


class LLMAuthError(LLMError):
    """The server refused the API key (HTTP 401 / 403)."""

    code = "llm_auth"


class LLMModelNotFound(LLMError):
    """The server does not know the model name."""

    code = "llm_model_not_found"


class LLMTimeout(LLMError):
    """The server accepted the connection but did not answer in time."""

    code = "llm_timeout"
