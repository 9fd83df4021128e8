"""Whisper's transcripts of a data folder, kept between runs of `finetune prepare`.

One JSON file, `DATA_DIR/.csmstream-transcripts.json` (or beside the dataset when DATA_DIR is read-only),
maps `<content hash>:<start_s>-<end_s>` to what Whisper heard there. The key is the file's content, not
its name, so renaming or moving a recording keeps its transcripts, and editing it invalidates them.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

from csmstream.pipeline.stt import Transcript

CACHE_FILE = ".csmstream-transcripts.json"
CACHE_VERSION = 1


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:24]


def span_key(file_hash: str, start_s: float, end_s: float) -> str:
    return f"{file_hash}:{start_s:.3f}-{end_s:.3f}"


def cache_path_for(data_dir: Path, dataset_dir: Path) -> Path:
    """DATA_DIR's cache if that folder is writable, else one beside the dataset."""
    if os.access(data_dir, os.W_OK):
        return data_dir / CACHE_FILE
    return dataset_dir.parent / f".{dataset_dir.name}-transcripts.json"


class TranscriptCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict] = {}
        self._dirty = False
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") == CACHE_VERSION and isinstance(data.get("entries"), dict):
                self.entries = data["entries"]
        except (OSError, ValueError, AttributeError):
            pass  # no cache yet, or a damaged one: transcribe again

    def get(self, key: str) -> Transcript | None:
        entry = self.entries.get(key)
        if not isinstance(entry, dict):
            return None
        try:
            return Transcript(str(entry["text"]), float(entry["avg_logprob"]), float(entry["no_speech_prob"]))
        except (KeyError, TypeError, ValueError):
            return None

    def put(self, key: str, transcript: Transcript) -> None:
        self.entries[key] = {
            "text": transcript.text,
            "avg_logprob": round(transcript.avg_logprob, 4),
            "no_speech_prob": round(transcript.no_speech_prob, 4),
        }
        self._dirty = True

    def save(self) -> None:
        """Write the cache atomically (a temp file renamed over it); a failure only costs a later re-run."""
        if not self._dirty:
            return
        temp = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temp.write_text(json.dumps({"version": CACHE_VERSION, "entries": self.entries}), encoding="utf-8")
            os.replace(temp, self.path)
            self._dirty = False
        except OSError:
            temp.unlink(missing_ok=True)
