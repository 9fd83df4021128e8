"""The on-disk form of a voice, and how it is written so that no reader ever sees half of one.

    <library>/<voice_id>/voice.json        {"format": 1, "voice_id", "name", "speaker", "created_at",
                                            "segments": [{"file": "segment_0.wav", "text": ...}, ...]}
    <library>/<voice_id>/segment_0.wav     24 kHz mono (float or PCM16 wav)
    <library>/<voice_id>/adapter/          optional: a LoRA adapter in PEFT's format ("adapter": "adapter" in
                                           voice.json), read by the engine when the voice is first spoken

A voice is written whole into a hidden temporary folder beside its final place, flushed to disk, read
back, then renamed into place: rename is atomic within one file system, so a reader sees the whole
voice or none of it, and a crash leaves only a hidden temporary folder (swept later). A delete renames
the folder away first, for the same reason.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.audio.resample import resample, to_mono
from csmstream.errors import BadRequest, CsmstreamError
from csmstream.model.adapter_files import ADAPTER_FILES, AdapterError, adapter_digest, read_adapter_layout
from csmstream.voices.validate import check_speaker, is_valid_voice_id
from csmstream.voices.voice import Voice, VoiceSegment, frozen_audio

VOICE_FILE = "voice.json"
ADAPTER_DIR = "adapter"
FORMAT_VERSION = 1
TEMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
# Leftovers younger than this may belong to a writer in another process that is still at work.
STALE_SECONDS = 3600.0


class DamagedVoice(CsmstreamError):
    """A voice folder exists but cannot be read (edited by hand, truncated, wrong format).
    `key` identifies the voice.json that was read (None if even that failed)."""

    def __init__(self, message: str, key: tuple[int, int, int] | None = None) -> None:
        super().__init__(message)
        self.key = key


def is_voice_dir(path: Path) -> bool:
    return not path.name.startswith(".") and is_valid_voice_id(path.name) and (path / VOICE_FILE).is_file()


def voice_file_key(voice_dir: Path) -> tuple[int, int, int] | None:
    """Identity of the voice.json on disk (inode, mtime, size): a new write is a new file, hence a new key."""
    try:
        stat = (voice_dir / VOICE_FILE).stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


VoiceFileKey = tuple[int, int, int]


def read_voice_dir(voice_dir: Path, builtin: bool, voice_id: str | None = None) -> Voice:
    return load_voice_dir(voice_dir, builtin, voice_id)[0]


def load_voice_dir(voice_dir: Path, builtin: bool, voice_id: str | None = None) -> tuple[Voice, VoiceFileKey]:
    """Load one voice folder and the identity of the voice.json it read (its id is the folder's name unless
    given: a temporary folder has another name).

    Every file is opened relative to one open handle on the folder, so a voice deleted and re-created
    under the same name while we read gives either the old voice or an error, never a mix of both.
    Raises FileNotFoundError when there is no voice there, DamagedVoice when it cannot be read."""
    voice_id = voice_dir.name if voice_id is None else voice_id
    dir_fd = os.open(voice_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))  # FileNotFoundError: no voice
    key: VoiceFileKey | None = None
    try:
        with _open_in(dir_fd, voice_dir, VOICE_FILE) as handle:  # FileNotFoundError: no voice
            stat = os.fstat(handle.fileno())
            key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            meta = json.loads(handle.read().decode("utf-8"))
        segments = tuple(_read_segment(dir_fd, voice_dir, entry) for entry in meta["segments"])
        if not segments:
            raise ValueError("no segments")
        if meta.get("voice_id", voice_id) != voice_id:
            raise ValueError(f"voice.json says id {meta.get('voice_id')!r} but the voice is {voice_id!r}")
        adapter_dir, digest = _adapter_of(voice_dir, meta.get("adapter"))
        voice = Voice.build(
            voice_id=voice_id,
            name=str(meta.get("name") or voice_id),
            speaker=check_speaker(meta.get("speaker", 0)),
            segments=segments,
            builtin=builtin,
            created_at=meta.get("created_at"),
            adapter_dir=adapter_dir,
            adapter_digest=digest,
        )
        return voice, key
    except FileNotFoundError as exc:
        if key is None:
            raise
        raise DamagedVoice(f"voice folder {voice_dir} is missing a file: {exc.filename}", key) from None
    except (OSError, ValueError, KeyError, TypeError, sf.LibsndfileError, BadRequest, AdapterError) as exc:
        raise DamagedVoice(f"voice folder {voice_dir} cannot be read: {exc}", key) from exc
    finally:
        os.close(dir_fd)


def _adapter_of(voice_dir: Path, entry: object) -> tuple[Path | None, str | None]:
    """(folder, digest) of the voice's adapter, (None, None) without one; AdapterError when it is damaged."""
    if entry is None:
        return None, None
    if entry != ADAPTER_DIR:
        raise ValueError(f"voice.json: adapter must be {ADAPTER_DIR!r}, got {entry!r}")
    adapter_dir = voice_dir / ADAPTER_DIR
    read_adapter_layout(adapter_dir)  # config and header: a damaged adapter is a damaged voice
    return adapter_dir, adapter_digest(adapter_dir)


def _open_in(dir_fd: int, voice_dir: Path, file_name: str) -> Any:
    if os.open in os.supports_dir_fd:
        return os.fdopen(os.open(file_name, os.O_RDONLY, dir_fd=dir_fd), "rb")
    return open(voice_dir / file_name, "rb")  # no dir_fd on this system (Windows): by path


def _read_segment(dir_fd: int, voice_dir: Path, entry: dict[str, Any]) -> VoiceSegment:
    file_name = entry["file"]
    text = entry["text"]
    if not isinstance(file_name, str) or "/" in file_name or "\\" in file_name or file_name.startswith("."):
        raise ValueError(f"bad segment file name {file_name!r}")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"segment {file_name} has an empty transcript")
    try:
        with _open_in(dir_fd, voice_dir, file_name) as handle:
            samples, sample_rate = sf.read(handle, dtype="float32", always_2d=False)
    except FileNotFoundError as exc:
        exc.filename = file_name
        raise
    mono = resample(to_mono(samples), int(sample_rate), SAMPLE_RATE)  # (S,) float32 24 kHz
    if mono.size == 0 or not np.all(np.isfinite(mono)):
        raise ValueError(f"segment {file_name} has empty or non-finite audio")
    return VoiceSegment(text=text, audio=frozen_audio(mono))


def write_voice_dir(
    library_dir: Path,
    voice_id: str,
    name: str,
    speaker: int,
    segments: tuple[VoiceSegment, ...],
    created_at: str,
    wav_subtype: str = "FLOAT",
    adapter_dir: Path | None = None,
) -> Voice:
    """Write a new voice atomically and return it as read back from disk. BadRequest if the id exists.
    `adapter_dir` (a checked LoRA adapter folder) is copied into the voice."""
    assert is_valid_voice_id(voice_id), f"voice id {voice_id!r} must be validated before writing"
    final_dir = library_dir / voice_id
    temp_dir = library_dir / f"{TEMP_PREFIX}{voice_id}-{uuid.uuid4().hex[:12]}"
    library_dir.mkdir(parents=True, exist_ok=True)
    temp_dir.mkdir()
    try:
        # 1. the audio, then the metadata that names it, each flushed to the disk
        entries = []
        for index, segment in enumerate(segments):
            file_name = f"segment_{index}.wav"
            with open(temp_dir / file_name, "wb") as handle:
                sf.write(handle, segment.audio, SAMPLE_RATE, subtype=wav_subtype, format="WAV")
                _flush(handle)
            entries.append({"file": file_name, "text": segment.text})
        if adapter_dir is not None:
            (temp_dir / ADAPTER_DIR).mkdir()
            for file_name in ADAPTER_FILES:
                with (
                    open(adapter_dir / file_name, "rb") as source,
                    open(temp_dir / ADAPTER_DIR / file_name, "wb") as copy,
                ):
                    shutil.copyfileobj(source, copy)
                    _flush(copy)
            fsync_dir(temp_dir / ADAPTER_DIR)
        meta = {
            "format": FORMAT_VERSION,
            "voice_id": voice_id,
            "name": name,
            "speaker": speaker,
            "created_at": created_at,
            "segments": entries,
            **({"adapter": ADAPTER_DIR} if adapter_dir is not None else {}),
        }
        _write_json(temp_dir / VOICE_FILE, meta)
        fsync_dir(temp_dir)
        # 2. read it back: what we return is exactly what every later reader will load
        voice = read_voice_dir(temp_dir, builtin=False, voice_id=voice_id)
        # 3. publish: rename fails (ENOTEMPTY/EEXIST) if another writer published this id first
        try:
            os.rename(temp_dir, final_dir)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise BadRequest(f"voice {voice_id!r} already exists") from None
            raise
        fsync_dir(library_dir)
        if voice.adapter_dir is not None:  # read back from the temporary folder: point at the published one
            voice = dataclasses.replace(voice, adapter_dir=final_dir / ADAPTER_DIR)
        return voice
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise


def remove_voice_dir(library_dir: Path, voice_id: str) -> bool:
    """Delete a voice: rename it out of sight (atomic), then remove the files. False if it was not there."""
    trash_dir = library_dir / f"{TRASH_PREFIX}{voice_id}-{uuid.uuid4().hex[:12]}"
    try:
        os.rename(library_dir / voice_id, trash_dir)
    except FileNotFoundError:
        return False
    fsync_dir(library_dir)
    shutil.rmtree(trash_dir, ignore_errors=True)
    return True


def sweep_leftovers(library_dir: Path, now: float | None = None) -> int:
    """Remove temporary and trash folders left by crashed writers; returns how many were removed."""
    now = time.time() if now is None else now
    removed = 0
    try:
        children = list(library_dir.iterdir())
    except FileNotFoundError:
        return 0
    for child in children:
        if not child.name.startswith((TEMP_PREFIX, TRASH_PREFIX)):
            continue
        try:
            age_seconds = now - child.stat().st_mtime
        except FileNotFoundError:
            continue
        if age_seconds > STALE_SECONDS:
            shutil.rmtree(child, ignore_errors=True)
            removed += 1
    return removed


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
        _flush(handle)


def _flush(handle: Any) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in `path` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
