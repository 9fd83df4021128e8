"""A voice: who speaks (CSM speaker id) and how they sound (reference segments of audio + transcript).

Voices are immutable values. `revision` is a hash of everything that shapes the model's prompt, so an
engine may key a cached prefix (the prefilled reference segments) on `(voice_id, revision)`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csmstream.audio.constants import SAMPLE_RATE


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value; compare voices by revision
class VoiceSegment:
    """One reference utterance: `audio` is (S,) float32 mono at 24 kHz, `text` is what it says."""

    text: str
    audio: np.ndarray  # (S,) float32, 24 kHz

    @property
    def seconds(self) -> float:
        return self.audio.shape[0] / SAMPLE_RATE


def frozen_audio(samples: np.ndarray) -> np.ndarray:
    """A contiguous float32 copy that nobody can write to: voices are shared between threads and caches."""
    out = np.ascontiguousarray(samples, dtype=np.float32).copy()
    out.setflags(write=False)
    return out


def compute_revision(
    name: str, speaker: int, segments: tuple[VoiceSegment, ...], adapter_digest: str | None = None
) -> str:
    """Content hash (16 hex chars): the same content gives the same revision; any change gives another."""
    digest = hashlib.sha256()
    digest.update(f"csmstream-voice-v1\0{name}\0{speaker}\0{len(segments)}\0".encode())
    if adapter_digest is not None:  # a voice without adapter keeps the revision it always had
        digest.update(f"adapter\0{adapter_digest}\0".encode())
    for segment in segments:
        text = segment.text.encode()
        audio = np.ascontiguousarray(segment.audio, dtype="<f4")  # fixed byte order: same hash on any host
        digest.update(len(text).to_bytes(8, "little") + text)
        digest.update(audio.shape[0].to_bytes(8, "little") + audio.tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class VoiceInfo:
    """What a listing shows about a voice (JSON-able, no audio)."""

    id: str
    name: str
    speaker: int
    builtin: bool
    num_segments: int
    reference_seconds: float
    created_at: str | None  # ISO 8601 UTC; None when unknown
    revision: str
    adapter: bool = False  # the voice speaks through a fine-tuned LoRA adapter

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "speaker": self.speaker,
            "builtin": self.builtin,
            "num_segments": self.num_segments,
            "reference_seconds": round(self.reference_seconds, 3),
            "created_at": self.created_at,
            "revision": self.revision,
            "adapter": self.adapter,
        }


@dataclass(frozen=True, eq=False)
class Voice:
    voice_id: str
    name: str
    speaker: int
    segments: tuple[VoiceSegment, ...]
    builtin: bool
    revision: str
    created_at: str | None = None
    adapter_dir: Path | None = None  # a LoRA adapter in PEFT's format (see model/adapter_files.py)
    adapter_digest: str | None = None  # hash of its files: part of `revision`

    @staticmethod
    def build(
        voice_id: str,
        name: str,
        speaker: int,
        segments: tuple[VoiceSegment, ...],
        builtin: bool,
        created_at: str | None = None,
        adapter_dir: Path | None = None,
        adapter_digest: str | None = None,
    ) -> Voice:
        """A voice with its revision computed from its content (the only way the library makes one)."""
        return Voice(
            voice_id=voice_id,
            name=name,
            speaker=speaker,
            segments=segments,
            builtin=builtin,
            revision=compute_revision(name, speaker, segments, adapter_digest),
            created_at=created_at,
            adapter_dir=adapter_dir,
            adapter_digest=adapter_digest,
        )

    @property
    def reference_seconds(self) -> float:
        return sum(segment.seconds for segment in self.segments)

    def info(self) -> VoiceInfo:
        return VoiceInfo(
            id=self.voice_id,
            name=self.name,
            speaker=self.speaker,
            builtin=self.builtin,
            num_segments=len(self.segments),
            reference_seconds=self.reference_seconds,
            created_at=self.created_at,
            revision=self.revision,
            adapter=self.adapter_dir is not None,
        )
