"""Reading audio files / uploads into arrays and writing wav files.

soundfile (libsndfile) reads wav, flac, ogg and mp3 quickly and exactly; everything else a user may
upload (m4a, webm, opus in other containers, streamed flac of unknown length ...) goes through PyAV.
Every failure a user can cause becomes a `BadRequest` that says what was wrong.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from csmstream.audio.pcm import as_mono_float32, float_to_int16
from csmstream.audio.resample import to_mono_24k
from csmstream.audio.wav_writer import WavWriter
from csmstream.errors import BadRequest

__all__ = ["read_audio", "load_mono_24k", "write_wav", "WavWriter"]

AudioSource = str | Path | bytes | bytearray | memoryview

# a header that claims more frames than this is a stream of unknown length: decode it with PyAV instead
_MAX_PLAUSIBLE_FRAMES = 1 << 40


def read_audio(source: AudioSource) -> tuple[np.ndarray, int]:
    """A file path or encoded bytes → ((S, C) float32 samples, sample_rate)."""
    name, data = _open_source(source)
    try:
        samples, sample_rate = _read_with_soundfile(data)
    except Exception as sf_error:  # libsndfile does not know the format, or cannot read this file
        try:
            samples, sample_rate = _read_with_av(data)
        except BadRequest:
            raise
        except Exception as av_error:
            raise BadRequest(
                f"could not decode audio from {name}: not a readable audio file "
                f"(wav, flac, ogg/opus, mp3, m4a, webm ...). soundfile said: {_short(sf_error)}; "
                f"ffmpeg said: {_short(av_error)}"
            ) from av_error
    if samples.shape[0] == 0:
        raise BadRequest(f"audio from {name} contains no samples")
    if sample_rate <= 0:
        raise BadRequest(f"audio from {name} has an invalid sample rate {sample_rate}")
    return samples, sample_rate


def load_mono_24k(source: AudioSource) -> np.ndarray:
    """A file path or encoded bytes → (S,) float32 mono at 24 kHz, what Mimi expects."""
    samples, sample_rate = read_audio(source)
    return to_mono_24k(samples, sample_rate)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int, *, float32: bool = False) -> None:
    """Write (S,) samples (float in [-1, 1] or int16) as a mono wav: PCM16 by default, float32 on request."""
    mono = as_mono_float32(samples)
    if float32:
        sf.write(str(path), mono, sample_rate, subtype="FLOAT", format="WAV")
    else:
        sf.write(str(path), float_to_int16(mono), sample_rate, subtype="PCM_16", format="WAV")


def _open_source(source: AudioSource) -> tuple[str, bytes | Path]:
    """(a name for messages, the bytes or an existing path)."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if not data:
            raise BadRequest("audio is empty (0 bytes)")
        return f"uploaded data ({len(data)} bytes)", data
    if isinstance(source, str | Path):
        path = Path(source).expanduser()
        if not path.exists():
            raise BadRequest(f"audio file not found: {path}")
        if not path.is_file():
            raise BadRequest(f"not an audio file (it is a directory or special file): {path}")
        if path.stat().st_size == 0:
            raise BadRequest(f"audio file is empty (0 bytes): {path}")
        return str(path), path
    raise BadRequest(f"audio source must be a path or bytes, got {type(source).__name__}")


def _as_file(data: bytes | Path) -> io.BytesIO | str:
    return io.BytesIO(data) if isinstance(data, bytes) else str(data)


def _read_with_soundfile(data: bytes | Path) -> tuple[np.ndarray, int]:
    with sf.SoundFile(_as_file(data)) as f:
        if not 0 <= f.frames < _MAX_PLAUSIBLE_FRAMES:
            raise ValueError(f"header claims {f.frames} frames")
        samples = f.read(dtype="float32", always_2d=True)  # (S, C)
        return samples, int(f.samplerate)


def _read_with_av(data: bytes | Path) -> tuple[np.ndarray, int]:
    import av  # imported here: most uploads are wav/flac, and soundfile reads those

    with av.open(_as_file(data), mode="r") as container:
        if not container.streams.audio:
            raise BadRequest("the file has no audio stream")
        stream = container.streams.audio[0]
        # decode to packed float32 whatever the codec's native sample format is
        resampler = av.AudioResampler(format="flt", layout=stream.layout.name, rate=stream.rate)
        blocks: list[np.ndarray] = []
        num_channels = stream.layout.nb_channels
        for frame in container.decode(stream):
            for converted in resampler.resample(frame):
                blocks.append(converted.to_ndarray().reshape(-1, num_channels))  # (S, C)
        for converted in resampler.resample(None):
            blocks.append(converted.to_ndarray().reshape(-1, num_channels))
        sample_rate = int(stream.rate or 0)
    samples = np.concatenate(blocks) if blocks else np.zeros((0, num_channels), np.float32)
    return samples.astype(np.float32, copy=False), sample_rate


def _short(error: BaseException, limit: int = 160) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
