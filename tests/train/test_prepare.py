"""`csmstream finetune prepare` on real speech (piper) and the tiny checkpoint: the three folder layouts, the
filters and their reasons, the held-out split by source, the transcript cache, the Mimi codes."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from csmstream.cli import main
from csmstream.errors import CsmstreamError
from csmstream.pipeline.stt import load_stt
from csmstream.train.dataset import load_dataset
from csmstream.train.heldout import heldout_sources, heldout_tail
from csmstream.train.prepare import PrepareOptions, prepare_dataset
from csmstream.train.sources import find_sources
from speech_recordings import SAMPLE_RATE, SENTENCES, noise, recording, speak, word_overlap, write_wav

pytest.importorskip("piper", reason="piper-tts speaks the test recordings")
pytest.importorskip("faster_whisper", reason="transcribing needs faster-whisper")

FRAME_SAMPLES = 1920  # Mimi: 12.5 frames a second at 24 kHz


class CountingTranscriber:
    """The real Whisper, counting how often it is asked to transcribe."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls = 0

    def transcribe_detailed(self, pcm, sample_rate):
        self.calls += 1
        return self.inner.transcribe_detailed(pcm, sample_rate)


@pytest.fixture(scope="module")
def whisper():
    return load_stt()


@pytest.fixture(scope="session")
def speech_files(tmp_path_factory) -> dict[str, Path]:
    """Recordings made once per session and copied into each test's data folder."""
    root = tmp_path_factory.mktemp("speech")
    files = {
        "long_a.wav": recording(SENTENCES[:3], gap_seconds=1.0, seed=1),
        "long_b.wav": recording(SENTENCES[3:5], gap_seconds=1.0, seed=2),
        "noise.wav": noise(4.0, level=0.05),
        "silence.wav": np.zeros(3 * SAMPLE_RATE, np.float32),
        "tiny.wav": speak("Yes.")[: int(0.6 * SAMPLE_RATE)],
        "loud.wav": np.clip(speak(SENTENCES[5], level=1.0) * 4.0, -1.0, 1.0),
    }
    for index in range(4):
        files[f"s{index}.wav"] = np.concatenate(
            [np.zeros(4800, np.float32), speak(SENTENCES[index]), np.zeros(4800, np.float32)]
        )
    return {name: write_wav(root / name, audio) for name, audio in files.items()}


def data_dir(
    tmp_path: Path, speech_files, names: list[str], transcripts: dict[str, str] | None = None
) -> Path:
    folder = tmp_path / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(speech_files[name], folder / name)
    for name, text in (transcripts or {}).items():
        (folder / name).with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
    return folder


def check_codes(dataset) -> None:
    for clip in dataset.clips:
        audio, codes = dataset.audio(clip), dataset.codes(clip)
        assert (
            codes.shape == (math.ceil(len(audio) / FRAME_SAMPLES), dataset.num_codebooks) == (clip.frames, 32)
        )
        assert abs(len(audio) / SAMPLE_RATE - clip.seconds) < 1e-3


def check_split(dataset) -> None:
    train_sources = {c.source for c in dataset.train()}
    heldout_sources_ = {c.source for c in dataset.heldout()}
    assert dataset.heldout() and dataset.train()
    assert not train_sources & heldout_sources_, "a source file is never in both splits"


def test_audio_only_folder_is_cut_transcribed_encoded_and_cached(
    tiny_checkpoint_dir, tmp_path, speech_files, whisper, capsys
):
    folder = data_dir(tmp_path, speech_files, ["long_a.wav", "long_b.wav"])
    first = CountingTranscriber(whisper)
    summary = prepare_dataset(
        folder, tmp_path / "ds", str(tiny_checkpoint_dir), transcriber=first, progress=False
    )
    dataset = load_dataset(tmp_path / "ds")
    assert len(dataset.clips) == first.calls >= 4, "each sentence (or part) is a clip, each transcribed once"
    assert {c.source for c in dataset.clips} == {"long_a.wav", "long_b.wav"}
    for clip in dataset.clips:
        assert 1.0 <= clip.seconds <= 20.0 and clip.end_s > clip.start_s
        assert word_overlap(" ".join(SENTENCES[:5]), clip.text) >= 0.7, clip.text
    check_codes(dataset)
    check_split(dataset)
    assert dataset.meta["frame_rate"] == 12.5 and dataset.meta["num_codebooks"] == 32
    assert dataset.meta["speakers"] == {"data": 0} and len(dataset.meta["codec_fingerprint"]) == 16
    out = capsys.readouterr().out
    assert f"{summary.clips} clips" in out and "hours" in out and "1 speaker" in out

    assert (folder / ".csmstream-transcripts.json").is_file()
    second = CountingTranscriber(whisper)  # same audio, another run: the cache answers
    prepare_dataset(folder, tmp_path / "ds", str(tiny_checkpoint_dir), transcriber=second, progress=False)
    assert second.calls == 0
    assert f"0 transcribed, {first.calls} from the cache" in capsys.readouterr().out
    assert [c.text for c in load_dataset(tmp_path / "ds").clips] == [c.text for c in dataset.clips]


def test_pairs_keep_given_transcripts_and_filters_say_why(
    tiny_checkpoint_dir, tmp_path, speech_files, whisper, capsys
):
    transcripts = {f"s{i}.wav": SENTENCES[i] for i in range(3)}
    transcripts["s3.wav"] = "Purple elephants were dancing on the roof of the cathedral at midnight."  # wrong
    transcripts["tiny.wav"] = "Yes."
    transcripts["loud.wav"] = SENTENCES[5]
    folder = data_dir(tmp_path, speech_files, list(transcripts), transcripts)
    summary = prepare_dataset(
        folder, tmp_path / "ds", str(tiny_checkpoint_dir), transcriber=whisper, progress=False
    )
    assert summary.filtered == {"transcript_mismatch": 1, "too_short": 1, "clipped": 1}
    dataset = load_dataset(tmp_path / "ds")
    assert sorted(c.text for c in dataset.clips) == sorted(SENTENCES[:3]), "given transcripts, files not cut"
    assert all(c.start_s == 0 for c in dataset.clips)
    check_split(dataset)
    check_codes(dataset)
    out = capsys.readouterr().out
    assert "filtered 3" in out and "1 transcript_mismatch" in out


def test_ljspeech_layout_through_the_cli(tiny_checkpoint_dir, tmp_path, speech_files, capsys):
    folder = tmp_path / "LJ"
    (folder / "wavs").mkdir(parents=True)
    lines = []
    for i in range(3):
        shutil.copy(speech_files[f"s{i}.wav"], folder / "wavs" / f"LJ001-000{i}.wav")
        lines.append(f"LJ001-000{i}|raw text {i}|{SENTENCES[i]}")
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = [
        "finetune",
        "prepare",
        str(folder),
        "-o",
        str(tmp_path / "ds"),
        "--model",
        str(tiny_checkpoint_dir),
    ]
    assert main([*args, "--no-check-transcripts", "--speaker-id", "4", "--seed", "7"]) == 0, (
        capsys.readouterr().err
    )
    dataset = load_dataset(tmp_path / "ds")
    assert sorted(c.text for c in dataset.clips) == sorted(SENTENCES[:3]), "the normalized column"
    assert {c.speaker for c in dataset.clips} == {4} and dataset.meta["speakers"] == {"LJ": 4}
    check_split(dataset)
    assert "3 clips (2 train, 1 held out)" in capsys.readouterr().out


def test_no_usable_speech_is_an_error_and_writes_nothing(tiny_checkpoint_dir, tmp_path, speech_files, capsys):
    folder = data_dir(tmp_path, speech_files, ["noise.wav", "silence.wav"])
    args = [
        "finetune",
        "prepare",
        str(folder),
        "-o",
        str(tmp_path / "out" / "ds"),
        "--model",
        str(tiny_checkpoint_dir),
    ]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "no clips left after filtering: 2 no speech" in err, err
    assert not (tmp_path / "out" / "ds").exists()
    assert not list(tmp_path.rglob(".tmp-*")), "no half-written dataset is left behind"


def test_speaker_folders_are_speakers(tiny_checkpoint_dir, tmp_path, speech_files):
    for speaker, indices in (("alice", (0, 1)), ("bob", (2, 3))):
        folder = tmp_path / "data" / speaker
        folder.mkdir(parents=True)
        for i in indices:
            shutil.copy(speech_files[f"s{i}.wav"], folder / f"s{i}.wav")
            (folder / f"s{i}.txt").write_text(SENTENCES[i], encoding="utf-8")
    options = PrepareOptions(speaker_id=5, check_transcripts=False, heldout_fraction=0.25)
    prepare_dataset(
        tmp_path / "data",
        tmp_path / "ds",
        str(tiny_checkpoint_dir),
        options,
        progress=False,
        log=lambda _: None,
    )
    dataset = load_dataset(tmp_path / "ds")
    assert dataset.meta["speakers"] == {"alice": 5, "bob": 6}
    assert {(c.speaker_name, c.speaker) for c in dataset.clips} == {("alice", 5), ("bob", 6)}
    assert len({c.id for c in dataset.clips}) == 4


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: None, "does not exist"),
        (lambda d: d.mkdir(), "is empty"),
        (lambda d: (d.mkdir(), (d / "notes.docx").write_text("x")), "no audio files"),
        (
            lambda d: (
                d.mkdir(),
                (d / "a.wav").write_bytes(b"x"),
                (d / "a.txt").write_text("hi"),
                (d / "b.txt").write_text("hm"),
            ),
            "no audio file of the same name",
        ),
        (lambda d: (d.mkdir(), (d / "metadata.csv").write_text("LJ1|Hello|Hello\n")), "no audio file"),
    ],
    ids=["missing", "empty", "no-audio", "orphan-transcript", "metadata-without-audio"],
)
def test_folder_problems_are_clear_errors(tmp_path, make, message):
    make(tmp_path / "data")
    with pytest.raises(CsmstreamError, match=message):
        find_sources(tmp_path / "data")


def test_unreadable_audio_is_an_error(tiny_checkpoint_dir, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "broken.wav").write_bytes(b"RIFF not really a wav file")
    with pytest.raises(CsmstreamError, match="cannot read .*broken.wav"):
        prepare_dataset(tmp_path / "data", tmp_path / "ds", str(tiny_checkpoint_dir), progress=False)
    assert not (tmp_path / "ds").exists()


def test_heldout_split_is_deterministic_and_never_everything():
    seconds = {f"f{i}.wav": 10.0 for i in range(20)}
    picked = heldout_sources(seconds, 0.1, seed=3)
    assert picked == heldout_sources(seconds, 0.1, seed=3) and len(picked) == 2
    assert picked != heldout_sources(seconds, 0.1, seed=4)
    assert len(heldout_sources({"a": 1.0, "b": 1.0}, 0.9, seed=0)) == 1, "training keeps a source"
    assert (
        heldout_sources({"a": 1.0}, 0.5, seed=0) == set() and heldout_sources(seconds, 0.0, seed=0) == set()
    )
    assert (heldout_tail(1, 0.1), heldout_tail(2, 0.1), heldout_tail(30, 0.1), heldout_tail(3, 0.9)) == (
        0,
        1,
        3,
        2,
    )
