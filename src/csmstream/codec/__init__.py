"""Mimi codec: encoder for reference audio, exact streaming decoder with per-slot state."""

from csmstream.codec.mimi import Mimi
from csmstream.codec.mimi_config import MimiConfig
from csmstream.codec.stream_state import MimiDecoderState

__all__ = ["Mimi", "MimiConfig", "MimiDecoderState"]
