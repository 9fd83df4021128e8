"""Mimi codes of a clip for training: computed once by `finetune prepare`, stored as (frames, K)."""

from __future__ import annotations

import numpy as np
import torch


def encode_clip(codec, audio: np.ndarray, num_codebooks: int) -> np.ndarray:
    """(S,) float32 24 kHz → (ceil(S / frame_samples), num_codebooks) int64 codes (12.5 frames a second)."""
    wav = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None, None, :]  # (1, 1, S)
    with torch.inference_mode():
        codes = codec.encode(wav, num_codebooks)  # (1, K, T)
    return codes[0].transpose(0, 1).cpu().numpy().astype(np.int64)  # (T, K)
