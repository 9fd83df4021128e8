"""Errors a client meets, each with a message that tells the person at the terminal what to do."""

from __future__ import annotations

from csmstream.errors import CsmstreamError


class ServerUnreachable(CsmstreamError):
    """Nothing answers at the address (refused, unknown host, timeout)."""

    code = "unreachable"


class AuthenticationFailed(CsmstreamError):
    """The server wants an API key, or refused the one given."""

    code = "unauthorized"


class EndpointMissing(CsmstreamError):
    """The server answers but has no such endpoint (an older server, or not a csmstream server)."""

    code = "not_found"


class ServerError(CsmstreamError):
    """An `error` message from the server; `code` is the protocol's code (`unknown_voice`, `busy`, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # per instance: the server decides it


class NoAudioDevice(CsmstreamError):
    """No usable sound card: sounddevice / PortAudio missing, no device, or the device refused the format."""

    code = "no_audio_device"
