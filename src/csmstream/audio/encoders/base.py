"""The interface every streaming encoder follows.

An encoder turns a stream of mono float PCM chunks into the bytes of one audio stream:
`encode(chunk)` returns whatever bytes are complete now (possibly b"", while a codec buffers a frame),
`finish()` returns the rest. The concatenation of all returned bytes is one valid file, and every prefix
ending at a returned chunk is playable by a streaming decoder.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from csmstream.audio.pcm import as_mono_float32
from csmstream.errors import BadRequest


class AudioEncoder(ABC):
    """Subclasses implement `_encode` (float32 mono, non-empty) and `_finish`."""

    #: the response's MIME type
    content_type: str = "application/octet-stream"
    #: the format name it was made for (one of SUPPORTED_FORMATS)
    format_name: str = ""

    def __init__(self, sample_rate: int) -> None:
        if sample_rate <= 0:
            raise BadRequest(f"sample rate must be positive, got {sample_rate}")
        self.sample_rate = sample_rate
        self.num_samples_in = 0
        self._finished = False

    def encode(self, pcm: np.ndarray) -> bytes:
        """(S,) float32 in [-1, 1] (int16 is accepted too) → the bytes that are ready now."""
        assert not self._finished, f"{type(self).__name__}.encode() called after finish()"
        samples = as_mono_float32(pcm)
        self.num_samples_in += samples.size
        return self._encode(samples)

    def finish(self) -> bytes:
        """Flush the codec and close the stream; call exactly once."""
        assert not self._finished, f"{type(self).__name__}.finish() called twice"
        self._finished = True
        return self._finish()

    @abstractmethod
    def _encode(self, samples: np.ndarray) -> bytes: ...

    @abstractmethod
    def _finish(self) -> bytes: ...
