"""Where a fine-tuning run's result goes: a voice in the library = speaker id + reference clips + adapter.

The references are picked from the speaker's training clips (5–20 s, clips near 8 s first: long enough to
carry the voice, short enough to leave room). Everything that could refuse the voice (id taken or invalid,
too little reference audio, several speakers and none chosen) is checked before training starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.errors import BadRequest, CsmstreamError
from csmstream.train.dataset import Dataset
from csmstream.voices.library import VoiceLibrary
from csmstream.voices.references import ReferenceCandidate, pick_references
from csmstream.voices.validate import check_voice_id

PREFERRED_REFERENCE_SECONDS = 8.0


class VoiceOutputError(CsmstreamError):
    """The fine-tuned voice cannot go into the library as asked."""


@dataclass
class VoicePlan:
    library: VoiceLibrary
    voice_id: str
    name: str
    speaker: int
    references: list[tuple[np.ndarray, int, str]]  # (audio (S,) float32, 24000, transcript)


def open_library(voices_dir: Path | None) -> VoiceLibrary:
    """The voice library `csmstream voices` uses: --voices-dir, else the settings' folder."""
    if voices_dir is None:
        from csmstream.config import Settings

        voices_dir = Settings().resolved_voices_dir()
    return VoiceLibrary(voices_dir)


def choose_speaker(dataset: Dataset, speaker: str | None) -> tuple[int, str]:
    """(speaker id, speaker name) of the voice: the dataset's only speaker, or the one named or numbered."""
    speakers = {str(name): int(sid) for name, sid in (dataset.meta.get("speakers") or {}).items()}
    if not speakers:
        speakers = {clip.speaker_name or str(clip.speaker): clip.speaker for clip in dataset.clips}
    if speaker is None:
        if len(speakers) > 1:
            listed = ", ".join(f"{name} ({sid})" for name, sid in speakers.items())
            raise VoiceOutputError(
                f"{dataset.path} has several speakers ({listed}); choose one with --speaker"
            )
        ((name, sid),) = speakers.items()
        return sid, name
    for name, sid in speakers.items():
        if speaker == name or speaker == str(sid):
            return sid, name
    raise VoiceOutputError(f"--speaker {speaker!r} is not in {dataset.path} (it has {', '.join(speakers)})")


def plan_voice(
    library: VoiceLibrary, dataset: Dataset, voice_id: str, name: str | None, speaker: str | None
) -> VoicePlan:
    """Check that the voice can be written (before any training) and pick its references."""
    try:
        check_voice_id(voice_id)
    except BadRequest as exc:
        raise VoiceOutputError(f"--voice: {exc}") from None
    if library.has(voice_id):
        raise VoiceOutputError(
            f"voice {voice_id!r} already exists in {library.user_dir}; choose another --voice, or delete it first "
            f"(csmstream voices delete {voice_id})"
        )
    speaker_id, speaker_name = choose_speaker(dataset, speaker)
    clips = [clip for clip in dataset.train() if clip.speaker == speaker_id]
    candidates = [
        ReferenceCandidate(
            audio=dataset.audio(clip), text=clip.text, score=-abs(clip.seconds - PREFERRED_REFERENCE_SECONDS)
        )
        for clip in clips
    ]
    try:
        picked = pick_references(candidates)
    except BadRequest as exc:
        raise VoiceOutputError(
            f"not enough training speech of speaker {speaker_name!r} for references: {exc}"
        ) from None
    picked = picked[: library.limits.max_segments]  # many short clips: the best ones the library takes
    return VoicePlan(
        library=library,
        voice_id=voice_id,
        name=name or speaker_name or voice_id,
        speaker=speaker_id,
        references=[(c.audio, SAMPLE_RATE, c.text) for c in picked],
    )


def write_voice(plan: VoicePlan, adapter_dir: Path):
    """Create the voice with its references and a copy of the adapter (the library writes it atomically)."""
    return plan.library.create(
        plan.voice_id, plan.name, plan.speaker, plan.references, adapter_dir=adapter_dir
    )
