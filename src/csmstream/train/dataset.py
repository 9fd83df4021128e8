"""A prepared fine-tuning dataset on disk: clips of one or more speakers, their transcripts and Mimi codes.

    DATASET_DIR/dataset.json       {"format": 1, "num_codebooks", "codebook_size", "sample_rate", "frame_rate",
                                    "codec_fingerprint", "model", "source", "speakers": {name: speaker_id},
                                    "clips", "train_clips", "heldout_clips", "hours", "filtered": {reason: n},
                                    "created_at"}
    DATASET_DIR/clips.jsonl        one clip a line: {"id", "text", "speaker", "speaker_name", "split",
                                    "seconds", "frames", "audio", "codes", "source", "start_s", "end_s"}
    DATASET_DIR/audio/<id>.wav     the clip, 24 kHz mono float, loudness-normalised
    DATASET_DIR/codes/<id>.npy     (frames, num_codebooks) int16 Mimi codes of that audio

`split` is "train" or "heldout"; every clip of one source file lands in the same split, so held-out speech is
never a neighbour of a training clip. A dataset is written whole into a hidden folder and renamed into place
(`DatasetWriter`), so a reader never sees half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.errors import CsmstreamError
from csmstream.voices.storage import fsync_dir

FORMAT_VERSION = 1
META_FILE = "dataset.json"
CLIPS_FILE = "clips.jsonl"
TRAIN = "train"
HELDOUT = "heldout"
SPLITS = (TRAIN, HELDOUT)


class DatasetError(CsmstreamError):
    """A dataset folder is missing, damaged, or made for another model."""


@dataclass(frozen=True)
class Clip:
    id: str
    text: str
    speaker: int  # the CSM speaker id the clip is trained under
    speaker_name: str
    split: str  # "train" | "heldout"
    seconds: float
    frames: int
    audio: str  # path relative to the dataset folder
    codes: str
    source: str  # the original file, relative to the data folder
    start_s: float  # where in the source file the clip starts and ends
    end_s: float


def codec_fingerprint(codec: torch.nn.Module) -> str:
    """16 hex chars that change with the codec's weights: codes from one Mimi mean nothing to another."""
    digest = hashlib.sha256(b"csmstream-codec-v1\0")
    for name, tensor in sorted(codec.state_dict().items()):
        flat = tensor.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // 64)][:64].to("cpu", torch.float32).numpy()
        digest.update(name.encode() + b"\0" + str(tuple(tensor.shape)).encode() + sample.tobytes())
    return digest.hexdigest()[:16]


class Dataset:
    """A prepared dataset, read-only. `load_dataset` makes one."""

    def __init__(self, path: Path, meta: dict[str, Any], clips: list[Clip]) -> None:
        self.path = path
        self.meta = meta
        self.clips = clips

    @property
    def num_codebooks(self) -> int:
        return int(self.meta["num_codebooks"])

    def split(self, name: str) -> list[Clip]:
        return [clip for clip in self.clips if clip.split == name]

    def train(self) -> list[Clip]:
        return self.split(TRAIN)

    def heldout(self) -> list[Clip]:
        return self.split(HELDOUT)

    def codes(self, clip: Clip) -> torch.Tensor:
        """(frames, K) int64 codes of a clip."""
        array = np.load(self.path / clip.codes, allow_pickle=False)
        if array.ndim != 2 or array.shape[1] != self.num_codebooks:
            raise DatasetError(
                f"{clip.codes}: codes of shape {array.shape}, expected (frames, {self.num_codebooks})"
            )
        return torch.from_numpy(array.astype(np.int64))

    def audio(self, clip: Clip) -> np.ndarray:
        """(S,) float32 24 kHz audio of a clip."""
        samples, rate = sf.read(self.path / clip.audio, dtype="float32", always_2d=False)
        if rate != SAMPLE_RATE or samples.ndim != 1:
            raise DatasetError(
                f"{clip.audio}: expected mono {SAMPLE_RATE} Hz audio, got {rate} Hz {samples.shape}"
            )
        return samples

    def check_model(self, num_codebooks: int, fingerprint: str | None = None) -> None:
        """DatasetError unless the dataset's codes were made by this model's codec."""
        if self.num_codebooks != num_codebooks:
            raise DatasetError(
                f"{self.path} holds {self.num_codebooks}-codebook codes; the model uses {num_codebooks}. "
                "Prepare the dataset again with --model pointing at this checkpoint."
            )
        made_with = self.meta.get("codec_fingerprint")
        if fingerprint is not None and made_with and made_with != fingerprint:
            raise DatasetError(
                f"{self.path} was prepared with another codec (fingerprint {made_with}, this model's is "
                f"{fingerprint}). Prepare it again with --model pointing at this checkpoint."
            )


def load_dataset(path: str | Path) -> Dataset:
    path = Path(path).expanduser()
    meta_file = path / META_FILE
    if not meta_file.is_file():
        raise DatasetError(
            f"{path} is not a prepared dataset (no {META_FILE}). "
            "Make one with: csmstream finetune prepare DATA_DIR -o DATASET_DIR --model CKPT"
        )
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT_VERSION:
            raise DatasetError(
                f"{meta_file}: format {meta.get('format')!r}, this csmstream reads {FORMAT_VERSION}"
            )
        clips = []
        with open(path / CLIPS_FILE, encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    clip = Clip(**json.loads(line))
                except (TypeError, ValueError) as exc:
                    raise DatasetError(f"{path / CLIPS_FILE} line {line_number}: {exc}") from None
                if clip.split not in SPLITS:
                    raise DatasetError(f"{path / CLIPS_FILE} line {line_number}: split {clip.split!r}")
                clips.append(clip)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path} cannot be read: {exc}") from exc
    if not clips:
        raise DatasetError(f"{path} has no clips")
    return Dataset(path, meta, clips)


class DatasetWriter:
    """Writes a dataset into a hidden folder beside `path`; `commit` renames it into place (replacing an old
    dataset there only then). Used as a context manager, an exception leaves nothing behind."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.temp = self.path.parent / f".tmp-{self.path.name}-{uuid.uuid4().hex[:12]}"
        (self.temp / "audio").mkdir(parents=True)
        (self.temp / "codes").mkdir()
        self.clips: list[Clip] = []

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        shutil.rmtree(self.temp, ignore_errors=True)  # after a commit the folder is gone already

    def add_clip(
        self,
        clip_id: str,
        text: str,
        speaker: int,
        speaker_name: str,
        split: str,
        audio: np.ndarray,  # (S,) float32 24 kHz
        codes: torch.Tensor | np.ndarray,  # (frames, K)
        source: str,
        start_s: float,
        end_s: float,
    ) -> Clip:
        assert split in SPLITS, f"split must be one of {SPLITS}, got {split!r}"
        codes_array = np.asarray(codes.cpu() if isinstance(codes, torch.Tensor) else codes)
        assert codes_array.ndim == 2 and codes_array.max(initial=0) < 2**15, (
            "codes must be (frames, K) < 32768"
        )
        audio_rel, codes_rel = f"audio/{clip_id}.wav", f"codes/{clip_id}.npy"
        sf.write(self.temp / audio_rel, np.asarray(audio, dtype=np.float32), SAMPLE_RATE, subtype="FLOAT")
        np.save(self.temp / codes_rel, codes_array.astype(np.int16), allow_pickle=False)
        clip = Clip(
            id=clip_id,
            text=text,
            speaker=int(speaker),
            speaker_name=speaker_name,
            split=split,
            seconds=round(len(audio) / SAMPLE_RATE, 3),
            frames=int(codes_array.shape[0]),
            audio=audio_rel,
            codes=codes_rel,
            source=source,
            start_s=round(float(start_s), 3),
            end_s=round(float(end_s), 3),
        )
        self.clips.append(clip)
        return clip

    def commit(self, meta: dict[str, Any]) -> Dataset:
        """Write clips.jsonl and dataset.json (the counts filled in here), then publish the folder."""
        if not self.clips:
            raise DatasetError("no clips to write")
        train = [c for c in self.clips if c.split == TRAIN]
        meta = {
            **meta,
            "format": FORMAT_VERSION,
            "clips": len(self.clips),
            "train_clips": len(train),
            "heldout_clips": len(self.clips) - len(train),
            "hours": round(sum(c.seconds for c in self.clips) / 3600, 4),
            "created_at": meta.get("created_at") or datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with open(self.temp / CLIPS_FILE, "w", encoding="utf-8") as handle:
            for clip in self.clips:
                handle.write(json.dumps(asdict(clip), ensure_ascii=False) + "\n")
        with open(self.temp / META_FILE, "w", encoding="utf-8") as handle:
            json.dump(meta, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        fsync_dir(self.temp)
        if self.path.exists():  # replace an older dataset: move it aside first, then rename into place
            old = self.path.parent / f".trash-{self.path.name}-{uuid.uuid4().hex[:12]}"
            os.rename(self.path, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(self.temp, self.path)
        fsync_dir(self.path.parent)
        return load_dataset(self.path)
