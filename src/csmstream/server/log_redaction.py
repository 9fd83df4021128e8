"""Secrets out of the logs: API keys in URLs (`?api_key=`, `?key=`, `?token=` ...), WebSocket bearer
subprotocols and `Bearer` credentials are replaced by `***` before any handler writes a record.

uvicorn logs every request line with its query string (`"WebSocket /v1/tts/stream?api_key=k1" [accepted]`
on `uvicorn.error`, `"GET /v1/voices?key=k1 HTTP/1.1" 200` on `uvicorn.access`); `install_log_redaction`
puts `RedactSecrets` on those loggers and on the root logger's handlers, which every propagated record
passes through.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

REDACTED = "***"
SECRET_PARAMS = r"api[_-]?key|apikey|key|access[_-]?token|token|auth|password|secret|signature|sig"
# `name=value` in a query string (after `?`, `&` or `;`), up to the next separator, quote or space
_QUERY_SECRET = re.compile(rf"(?i)([?&;](?:{SECRET_PARAMS})=)[^&;#\s\"']+")
_BEARER_SUBPROTOCOL = re.compile(r"(?i)(csmstream\.bearer\.)[^\s,;\"']+")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")
DEFAULT_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "csmstream")


def redact(text: str) -> str:
    """`text` with the secrets it carries replaced by `***`."""
    text = _QUERY_SECRET.sub(rf"\g<1>{REDACTED}", text)
    text = _BEARER_SUBPROTOCOL.sub(rf"\g<1>{REDACTED}", text)
    return _BEARER.sub(rf"\g<1>{REDACTED}", text)


class RedactSecrets(logging.Filter):
    """Rewrites a record whose message holds a secret; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler's own error reporting
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg = redacted
            record.args = ()
        return True


def install_log_redaction(loggers: Iterable[str] = DEFAULT_LOGGERS) -> RedactSecrets:
    """Add one `RedactSecrets` to `loggers` and to the root logger's handlers (call it after the handlers are
    set up); calling it again adds nothing twice."""
    redactor = RedactSecrets()
    targets: list[logging.Filterer] = [logging.getLogger(name) for name in loggers]
    targets += logging.getLogger().handlers
    for target in targets:
        if not any(isinstance(existing, RedactSecrets) for existing in target.filters):
            target.addFilter(redactor)
    return redactor
