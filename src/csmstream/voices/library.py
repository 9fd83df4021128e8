"""The voice library: built-in voices shipped with csmstream (read-only) plus the user's voices on disk.

Ids are unique across both: a user voice can never shadow a built-in one. The disk is the truth (the CLI
may add a voice while a server runs); loaded voices are cached and reloaded when their voice.json changes.
Safe to call from many threads.
"""

from __future__ import annotations

import logging
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np

from csmstream.errors import BadRequest, CsmstreamError, UnknownVoice
from csmstream.model.adapter_files import AdapterError, read_adapter
from csmstream.voices.storage import (
    DamagedVoice,
    is_voice_dir,
    load_voice_dir,
    remove_voice_dir,
    sweep_leftovers,
    voice_file_key,
    write_voice_dir,
)
from csmstream.voices.validate import (
    VoiceLimits,
    check_name,
    check_segments,
    check_speaker,
    check_voice_id,
    is_valid_voice_id,
    slug_from_name,
)
from csmstream.voices.voice import Voice, VoiceInfo

log = logging.getLogger(__name__)

DEFAULT_VOICE_ID = "default"
_KNOWN_IDS_SHOWN = 8  # how many ids an UnknownVoice message lists
_READ_ATTEMPTS = 5  # a voice replaced while being read is read again, this many times at most


def default_builtin_dir() -> Path | None:
    """Where the shipped voices are: the repository's `voices/` when running from a source checkout,
    else a copy installed inside the package or under `<prefix>/share/csmstream/voices`."""
    package_dir = Path(__file__).resolve().parent  # .../csmstream/voices
    candidates = []
    src_dir = package_dir.parents[1]
    if src_dir.name == "src" and (src_dir.parent / "pyproject.toml").is_file():
        candidates.append(src_dir.parent / "voices")
    candidates.append(package_dir / "builtin")
    candidates.append(Path(sys.prefix) / "share" / "csmstream" / "voices")
    for candidate in candidates:
        if candidate.is_dir() and any(is_voice_dir(child) for child in candidate.iterdir()):
            return candidate
    return None


class VoiceLibrary:
    def __init__(
        self,
        user_dir: Path,
        builtin_dir: Path | None | Literal["auto"] = "auto",
        limits: VoiceLimits | None = None,
        wav_subtype: str = "FLOAT",
    ) -> None:
        """`builtin_dir="auto"` finds the shipped voices; None means no built-in voices.
        `wav_subtype` is how new voices are stored: FLOAT keeps the audio exactly, PCM_16 halves the size."""
        self.user_dir = Path(user_dir).expanduser()
        self.builtin_dir = default_builtin_dir() if builtin_dir == "auto" else builtin_dir
        self.limits = limits or VoiceLimits()
        self.wav_subtype = wav_subtype
        self._lock = threading.RLock()  # guards the cache and serialises writers of this process
        self._cache: dict[Path, tuple[tuple[int, int, int], Voice]] = {}
        try:
            sweep_leftovers(self.user_dir)
        except OSError as exc:  # a read-only library still serves reads
            log.warning("could not sweep %s: %s", self.user_dir, exc)

    # ---- reading

    def list(self) -> list[VoiceInfo]:
        """Every readable voice, built-in ones first, each group sorted by id. Damaged folders are skipped."""
        infos = []
        for voice_id in self.ids():
            try:
                infos.append(self.get(voice_id).info())
            except UnknownVoice:
                continue  # deleted between listing and reading
            except DamagedVoice as exc:
                log.warning("skipping voice %r: %s", voice_id, exc)
        return infos

    def ids(self) -> list[str]:
        builtin_ids = self._ids_in(self.builtin_dir)
        taken = set(builtin_ids)
        user_ids = [voice_id for voice_id in self._ids_in(self.user_dir) if voice_id not in taken]
        return builtin_ids + user_ids

    def has(self, voice_id: str) -> bool:
        return is_valid_voice_id(voice_id) and self._locate(voice_id) is not None

    @property
    def default_voice_id(self) -> str | None:
        """`default` when present, else the first voice, else None (an empty library)."""
        ids = self.ids()
        if DEFAULT_VOICE_ID in ids:
            return DEFAULT_VOICE_ID
        return ids[0] if ids else None

    def get(self, voice_id: str) -> Voice:
        """The voice, or UnknownVoice. DamagedVoice if its folder exists but cannot be read."""
        if not is_valid_voice_id(voice_id):
            raise self._unknown(voice_id)
        for _ in range(_READ_ATTEMPTS):
            located = self._locate(voice_id)
            if located is None:
                raise self._unknown(voice_id)
            voice_dir, builtin = located
            with self._lock:
                cached = self._cache.get(voice_dir)
            if cached is not None and cached[0] == voice_file_key(voice_dir):
                return cached[1]
            try:
                voice, key = load_voice_dir(voice_dir, builtin=builtin)
            except FileNotFoundError:
                continue  # deleted (or replaced) between locating and reading: look again
            except DamagedVoice as exc:
                if exc.key is None or exc.key != voice_file_key(voice_dir):
                    continue  # replaced or deleted while we read it: not damage, a race; read again
                raise
            with self._lock:
                self._cache[voice_dir] = (key, voice)
            return voice
        raise CsmstreamError(f"voice {voice_id!r} kept changing while being read; try again")

    # ---- writing

    def create(
        self,
        voice_id: str | None,
        name: str | None,
        speaker: int,
        segments: list[tuple[np.ndarray, int, str]],
        adapter_dir: Path | None = None,
    ) -> Voice:
        """Add a user voice from (audio, sample_rate, transcript) segments; audio is converted to 24 kHz mono.
        `voice_id=None` derives one from the name. BadRequest for invalid input or an id already taken.
        `adapter_dir`: a LoRA adapter folder in PEFT's format, checked here and copied into the voice (whether it
        fits the served model is checked by the engine when the voice is first spoken)."""
        # 1. validate everything before touching the disk (resampling happens here, outside the lock)
        if voice_id is not None:
            check_voice_id(voice_id)
        name = check_name(name if name is not None else (voice_id or ""), self.limits)
        speaker = check_speaker(speaker)
        checked = check_segments(segments, self.limits)
        if adapter_dir is not None:
            try:
                read_adapter(Path(adapter_dir))
            except AdapterError as exc:
                raise BadRequest(str(exc)) from None
        created_at = datetime.now(UTC).isoformat(timespec="seconds")
        # 2. pick the id and write, one writer at a time (other processes are caught by the atomic rename)
        with self._lock:
            if voice_id is None:
                voice_id = self._free_id(slug_from_name(name))
            elif self._locate(voice_id) is not None:
                kind = "a built-in" if self._is_builtin(voice_id) else "a"
                raise BadRequest(f"voice {voice_id!r} already exists ({kind} voice); choose another id")
            voice = write_voice_dir(
                self.user_dir,
                voice_id,
                name,
                speaker,
                checked,
                created_at,
                wav_subtype=self.wav_subtype,
                adapter_dir=None if adapter_dir is None else Path(adapter_dir),
            )
            self._cache[self.user_dir / voice_id] = (voice_file_key(self.user_dir / voice_id), voice)
        log.info("created voice %r (%d segments, %.1f s)", voice_id, len(checked), voice.reference_seconds)
        return voice

    def delete(self, voice_id: str) -> None:
        """Remove a user voice. BadRequest for a built-in voice, UnknownVoice when there is no such voice."""
        if not is_valid_voice_id(voice_id):
            raise self._unknown(voice_id)
        if self._is_builtin(voice_id):
            raise BadRequest(f"voice {voice_id!r} is built in and cannot be deleted")
        with self._lock:
            removed = remove_voice_dir(self.user_dir, voice_id)
            self._cache.pop(self.user_dir / voice_id, None)
        if not removed:
            raise self._unknown(voice_id)
        log.info("deleted voice %r", voice_id)

    # ---- helpers

    def _ids_in(self, directory: Path | None) -> list[str]:
        if directory is None:
            return []
        try:
            return sorted(child.name for child in directory.iterdir() if is_voice_dir(child))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _is_builtin(self, voice_id: str) -> bool:
        return self.builtin_dir is not None and is_voice_dir(self.builtin_dir / voice_id)

    def _locate(self, voice_id: str) -> tuple[Path, bool] | None:
        """(folder, builtin) of a valid id; built-in voices win."""
        if self._is_builtin(voice_id):
            return self.builtin_dir / voice_id, True  # type: ignore[operator]
        if is_voice_dir(self.user_dir / voice_id):
            return self.user_dir / voice_id, False
        return None

    def _free_id(self, base: str) -> str:
        base = base[:56]  # room for a "-NNN" suffix within 64 characters
        if self._locate(base) is None:
            return base
        for number in range(2, 10_000):
            candidate = f"{base}-{number}"
            if self._locate(candidate) is None:
                return candidate
        raise BadRequest(f"no free voice id left for {base!r}; give an id")

    def _unknown(self, voice_id: object) -> UnknownVoice:
        ids = self.ids()
        shown = ", ".join(ids[:_KNOWN_IDS_SHOWN]) + (
            f", … ({len(ids)} in all)" if len(ids) > _KNOWN_IDS_SHOWN else ""
        )
        known = f"known voices: {shown}" if ids else "the voice library is empty"
        return UnknownVoice(f"unknown voice {voice_id!r}; {known}")
