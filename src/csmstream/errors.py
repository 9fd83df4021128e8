"""Errors whose message is meant for a person: the CLI prints them without a traceback,
the server maps them to protocol error codes (`code`)."""

from __future__ import annotations


class CsmstreamError(Exception):
    """Base of every user-facing error."""

    code = "internal"


class BadRequest(CsmstreamError, ValueError):
    code = "bad_request"


class TextTooLong(BadRequest):
    code = "text_too_long"


class UnknownVoice(CsmstreamError, KeyError):
    code = "unknown_voice"

    def __str__(self) -> str:  # KeyError quotes its message; we do not want that
        return str(self.args[0]) if self.args else "unknown voice"


class Busy(CsmstreamError):
    code = "busy"


class CheckpointError(CsmstreamError):
    """The model could not be found or loaded; the message says what to do."""
