"""Sample-format conversions shared by the encoders and the wav writers.

Float audio is nominally in [-1, 1); int16 full scale is 32768 both ways (int16 → float → int16 is
exact). Converting to int16 clips, because a model can overshoot slightly and integer wrap-around
would turn that into a loud click.
"""

from __future__ import annotations

import numpy as np

from csmstream.errors import BadRequest

INT16_SCALE = 32768.0


def as_mono_float32(samples: np.ndarray) -> np.ndarray:
    """(S,) or (S, 1) float or int16 samples → contiguous (S,) float32 in [-1, 1]-scale."""
    samples = np.asarray(samples)
    if samples.ndim == 2 and samples.shape[1] == 1:
        samples = samples[:, 0]
    if samples.ndim != 1:
        raise BadRequest(f"expected mono samples of shape (S,), got {samples.shape}")
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / INT16_SCALE
    if not np.issubdtype(samples.dtype, np.floating):
        raise BadRequest(f"expected float32 or int16 samples, got {samples.dtype}")
    return np.ascontiguousarray(samples, dtype=np.float32)


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    """(S, ...) float → int16 of the same shape, clipped to full scale and rounded to nearest."""
    scaled = np.rint(np.asarray(samples, dtype=np.float32) * INT16_SCALE)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def float_to_pcm16_bytes(samples: np.ndarray) -> bytes:
    """(S,) float → raw little-endian int16 bytes."""
    return float_to_int16(samples).astype("<i2", copy=False).tobytes()


def float_to_f32le_bytes(samples: np.ndarray) -> bytes:
    """(S,) float → raw little-endian float32 bytes (no clipping: float carries its own headroom)."""
    return np.asarray(samples, dtype="<f4").tobytes()
