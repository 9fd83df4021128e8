"""Server-only knobs (not engine settings): limits that protect the process from one client."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerOptions:
    # Audio waiting in one WebSocket connection's outbox. A client that reads slower than we generate hits
    # this; its request is then cancelled (error `busy`) instead of the server buffering without end.
    ws_send_buffer_bytes: int = 8 * 1024 * 1024
    # Requests one WebSocket connection may have open at once (the engine's queue bounds the whole server).
    ws_max_requests_per_connection: int = 32
    # Speakable units cut from text: incremental (`start`/`text`/`end`), and whole texts on every protocol
    # (each unit is one engine request; see server/unit_chains.py).
    incremental_min_chars: int = 20
    incremental_max_chars: int = 300
    # Voice uploads: bytes of the whole multipart body (413 beyond); the duration is the voice library's rule.
    max_upload_bytes: int = 16 * 1024 * 1024
    # Every other request body (the JSON of /v1/audio/speech, /v1/text:synthesize, ...): 413 beyond, before
    # it is read (server/body_limit.py). A text of the default 2000 characters is at most 24 KiB of JSON
    # even written as \uXXXX escapes; raise this with `max_text_chars`.
    max_body_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        assert self.ws_send_buffer_bytes > 0, "ws_send_buffer_bytes must be positive"
        assert self.ws_max_requests_per_connection > 0, "ws_max_requests_per_connection must be positive"
        assert 0 < self.incremental_min_chars <= self.incremental_max_chars, "bad incremental unit bounds"
        assert self.max_upload_bytes > 0, "max_upload_bytes must be positive"
        assert self.max_body_bytes > 0, "max_body_bytes must be positive"
