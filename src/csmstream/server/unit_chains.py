"""How the server speaks a request: as a `UnitChain` (engine/unit_chain.py), so that every protocol speaks
a long text whole, unit after unit, each with the earlier units as context.

Units are cut with the server's unit sizes (`ServerOptions.incremental_min_chars` / `incremental_max_chars`),
the same for a whole text (`synthesize`, OpenAI, Google) as for text streamed in (`start` / `text` / `end`).
"""

from __future__ import annotations

from collections.abc import Callable

from csmstream.engine.request import SynthesisRequest
from csmstream.engine.unit_chain import UnitChain, split_units
from csmstream.server.context import ServerContext


def unit_sizes(ctx: ServerContext) -> tuple[int, int]:
    """(min_chars, max_chars) of one speakable unit on this server."""
    max_chars = min(ctx.options.incremental_max_chars, ctx.settings.max_text_chars)
    return min(ctx.options.incremental_min_chars, max_chars), max_chars


def voice_speaker(ctx: ServerContext) -> Callable[[SynthesisRequest], int]:
    """The CSM speaker a request speaks as: its own, else its library voice's, else 0 (labels the spoken
    units in the context of the next ones)."""

    def speaker_of(request: SynthesisRequest) -> int:
        if request.speaker is not None:
            return request.speaker
        return ctx.voices.get(request.voice_id).speaker if request.voice_id else 0

    return speaker_of


def open_chain(ctx: ServerContext, request: SynthesisRequest) -> UnitChain:
    """A chain for `request` (its voice, sampling, max_seconds); the caller adds the units and closes it."""
    return UnitChain(ctx.engine, request, speaker_of=voice_speaker(ctx))


def whole_text_units(ctx: ServerContext, text: str) -> list[str]:
    """A whole text's units; `TextTooLong` beyond `max_text_chars`."""
    min_chars, max_chars = unit_sizes(ctx)
    return split_units(text, min_chars, max_chars, max_text_chars=ctx.settings.max_text_chars)


def speak_whole(ctx: ServerContext, request: SynthesisRequest) -> UnitChain:
    """`request.text` spoken whole. The first unit is submitted now: refusals (`Busy`, `UnknownVoice`,
    `TextTooLong` ...) raise here, before any event, as `engine.submit` does."""
    chain = open_chain(ctx, request)
    for unit in whole_text_units(ctx, request.text):
        chain.add(unit)
    chain.close()
    return chain.start()
