"""What is in a data folder for `finetune prepare`: the audio files, their transcripts, their speakers.

Three layouts, recognised in this order:

    DATA_DIR/metadata.csv + wavs/<id>.wav     LJSpeech: `id|text|normalized text` a line (normalized used if given)
    DATA_DIR/a.wav + a.txt, b.flac + b.txt    each audio file with its transcript beside it
    DATA_DIR/talk1.wav, talk2.mp3, ...        audio only: cut at pauses and transcribed with Whisper

(the last two may be mixed: a file with a .txt uses it). When DATA_DIR holds no audio of its own but
folders that do, each folder is one speaker (sorted by name, ids from --speaker-id up); otherwise the whole
folder is one speaker. Hidden files and folders are ignored.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from csmstream.errors import CsmstreamError

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".webm")
METADATA_FILE = "metadata.csv"


@dataclass(frozen=True)
class SourceFile:
    path: Path
    relative: str  # path inside DATA_DIR, posix style: the dataset's `source`
    speaker: int
    speaker_name: str
    transcript: str | None  # given: the whole file is one clip, never cut


def find_sources(data_dir: Path, speaker_id: int = 0) -> list[SourceFile]:
    """Every audio file of DATA_DIR with its speaker and transcript (if any), or a CsmstreamError that says
    what is wrong with the folder."""
    data_dir = Path(data_dir).expanduser()
    if not data_dir.exists():
        raise CsmstreamError(f"the data folder {data_dir} does not exist")
    if not data_dir.is_dir():
        raise CsmstreamError(f"{data_dir} is not a folder: give the folder that holds the recordings")
    if not any(_visible(data_dir.iterdir())):
        raise CsmstreamError(
            f"the data folder {data_dir} is empty: put recordings in it (wav, flac, mp3 ...), with a .txt "
            f"transcript of the same name each or a {METADATA_FILE} (LJSpeech layout) if you have them"
        )
    own_audio = (data_dir / METADATA_FILE).is_file() or any(_audio_files(data_dir, recursive=False))
    speaker_dirs = [] if own_audio else [d for d in sorted(_visible(data_dir.iterdir())) if d.is_dir()]
    speaker_dirs = [d for d in speaker_dirs if (d / METADATA_FILE).is_file() or any(_audio_files(d, True))]
    if len(speaker_dirs) >= 2:
        sources = []
        for offset, folder in enumerate(speaker_dirs):
            sources += _speaker_sources(data_dir, folder, speaker_id + offset, folder.name)
        return sources
    return _speaker_sources(data_dir, data_dir, speaker_id, data_dir.resolve().name or "speaker")


def _speaker_sources(data_dir: Path, folder: Path, speaker: int, name: str) -> list[SourceFile]:
    if (folder / METADATA_FILE).is_file():
        return _ljspeech(data_dir, folder, speaker, name)
    audio = list(_audio_files(folder, recursive=True))
    if not audio:
        others = sorted({p.suffix or p.name for p in folder.rglob("*") if p.is_file()})[:8]
        raise CsmstreamError(
            f"no audio files in {folder} (looked for {', '.join(AUDIO_SUFFIXES)}; found {', '.join(others) or 'nothing'})"
        )
    stems = {p.with_suffix("") for p in audio}
    orphans = [
        t for t in folder.rglob("*.txt") if _is_visible_path(t, folder) and t.with_suffix("") not in stems
    ]
    if orphans and any(p.with_suffix(".txt").is_file() for p in audio):
        shown = ", ".join(str(t.relative_to(data_dir)) for t in sorted(orphans)[:5])
        raise CsmstreamError(
            f"{len(orphans)} transcript(s) have no audio file of the same name: {shown}. Each transcript must "
            "be named like its recording (talk1.wav + talk1.txt); rename or remove them"
        )
    sources = []
    for path in sorted(audio):
        transcript_file = path.with_suffix(".txt")
        transcript = None
        if transcript_file.is_file():
            transcript = " ".join(transcript_file.read_text(encoding="utf-8", errors="replace").split())
            if not transcript:
                raise CsmstreamError(
                    f"{transcript_file} is empty: write the words spoken in {path.name}, or delete it"
                )
        sources.append(SourceFile(path, path.relative_to(data_dir).as_posix(), speaker, name, transcript))
    return sources


def _ljspeech(data_dir: Path, folder: Path, speaker: int, name: str) -> list[SourceFile]:
    metadata = folder / METADATA_FILE
    sources = []
    missing = []
    with open(metadata, encoding="utf-8", newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle, delimiter="|", quoting=csv.QUOTE_NONE), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2 or not row[0].strip():
                raise CsmstreamError(
                    f"{metadata} line {line_number}: expected `id|text|normalized text`, got {'|'.join(row)!r}"
                )
            clip_id = row[0].strip()
            text = (row[2] if len(row) > 2 and row[2].strip() else row[1]).strip()
            if not text:
                raise CsmstreamError(f"{metadata} line {line_number}: the transcript of {clip_id!r} is empty")
            path = next((p for p in _candidates(folder, clip_id) if p.is_file()), None)
            if path is None:
                missing.append(clip_id)
                continue
            sources.append(
                SourceFile(path, path.relative_to(data_dir).as_posix(), speaker, name, " ".join(text.split()))
            )
    if missing:
        raise CsmstreamError(
            f"{metadata} names {len(missing)} clip(s) with no audio file: {', '.join(missing[:5])} "
            f"(looked for wavs/<id>.wav); add the audio or remove those lines"
        )
    if not sources:
        raise CsmstreamError(f"{metadata} lists no clips")
    return sources


def _candidates(folder: Path, clip_id: str) -> list[Path]:
    return [folder / "wavs" / f"{clip_id}{suffix}" for suffix in AUDIO_SUFFIXES] + [
        folder / f"{clip_id}{suffix}" for suffix in AUDIO_SUFFIXES
    ]


def _audio_files(folder: Path, recursive: bool):
    paths = folder.rglob("*") if recursive else folder.iterdir()
    return (
        p for p in paths if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file() and _is_visible_path(p, folder)
    )


def _visible(paths):
    return [p for p in paths if not p.name.startswith(".")]


def _is_visible_path(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)
