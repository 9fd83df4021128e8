"""A wav file that grows chunk by chunk and is a complete, valid file after every append.

`csmstream say --stream` writes audio as it is generated; a listener (or a test) may open the file at
any moment. After each append the two size fields of the header are rewritten, so readers that trust
the header (Python's `wave`) see exactly the samples written so far.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import numpy as np

from csmstream.audio.pcm import as_mono_float32, float_to_f32le_bytes, float_to_pcm16_bytes
from csmstream.audio.wav_header import (
    DATA_SIZE_OFFSET,
    RIFF_SIZE_OFFSET,
    SampleFormat,
    size_fields,
    wav_header,
)


class WavWriter:
    """`with WavWriter(path, 24000) as w: w.append(chunk)`; mono, PCM16 (default) or float32."""

    def __init__(self, path: str | Path, sample_rate: int, sample_format: SampleFormat = "pcm16") -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.sample_format = sample_format
        self.num_samples = 0
        self._data_bytes = 0
        self._file = open(self.path, "wb")  # owned by this object, closed in close()
        self._file.write(wav_header(sample_rate, 1, sample_format, data_bytes=0))
        self._file.flush()

    def append(self, samples: np.ndarray) -> None:
        """Append (S,) samples (float in [-1, 1] or int16), then make the header describe the whole file."""
        assert not self._file.closed, f"WavWriter for {self.path} is closed"
        mono = as_mono_float32(samples)
        if mono.size == 0:
            return
        payload = float_to_pcm16_bytes(mono) if self.sample_format == "pcm16" else float_to_f32le_bytes(mono)
        self._file.seek(0, 2)
        self._file.write(payload)
        self._data_bytes += len(payload)
        self.num_samples += mono.size
        self._rewrite_sizes()

    def _rewrite_sizes(self) -> None:
        riff_field, data_field = size_fields(self._data_bytes)
        self._file.seek(RIFF_SIZE_OFFSET)
        self._file.write(riff_field)
        self._file.seek(DATA_SIZE_OFFSET)
        self._file.write(data_field)
        self._file.flush()

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
