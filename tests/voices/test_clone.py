"""`csmstream voices add talk.wav` without a transcript: real piper speech with pauses and room noise → the VAD
finds the sentences, Whisper transcribes them, the cleanest 5-20 s become the voice's references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from csmstream.audio.loudness import PEAK_CEILING, TARGET_DBFS, active_level_dbfs
from csmstream.cli import main
from csmstream.errors import BadRequest
from csmstream.voices.library import VoiceLibrary
from csmstream.voices.references import ReferenceCandidate, pick_references
from speech_recordings import SAMPLE_RATE, SENTENCES, noise, recording, speak, word_overlap, write_wav

pytest.importorskip("piper", reason="piper-tts speaks the test recordings")
pytest.importorskip("faster_whisper", reason="cloning without a transcript needs faster-whisper")


@pytest.fixture(scope="session")
def talk_wav(tmp_path_factory) -> Path:
    """About 25 s: five sentences, 1 s pauses, quiet room noise, at 44.1 kHz stereo like a phone recording."""
    audio = recording(SENTENCES[:5], gap_seconds=1.0, noise_level=0.003)
    import soxr

    audio_44k = soxr.resample(audio, SAMPLE_RATE, 44_100).astype(np.float32)
    stereo = np.stack([audio_44k, 0.8 * audio_44k], axis=1)  # (S, 2)
    return write_wav(tmp_path_factory.mktemp("clone") / "talk.wav", stereo, 44_100)


def add(voices_dir: Path, *args: str) -> int:
    return main(["voices", "--voices-dir", str(voices_dir), "add", *args])


def test_a_voice_from_a_recording_without_a_transcript(talk_wav, tmp_path, capsys):
    assert 22.0 < sf.info(talk_wav).duration < 30.0
    assert add(tmp_path, str(talk_wav), "--id", "me") == 0, capsys.readouterr().err
    assert "added voice 'me'" in capsys.readouterr().out

    voice = VoiceLibrary(tmp_path, builtin_dir=None).get("me")
    total_seconds = sum(segment.seconds for segment in voice.segments)
    assert 5.0 <= total_seconds <= 20.0, [segment.seconds for segment in voice.segments]
    assert len(voice.segments) >= 2
    spoken = " ".join(SENTENCES[:5])
    for segment in voice.segments:
        assert segment.audio.dtype == np.float32 and segment.audio.ndim == 1
        assert 1.0 <= segment.seconds <= 10.0
        assert abs(active_level_dbfs(segment.audio) - TARGET_DBFS) < 1.5, "loudness-normalised"
        assert float(np.abs(segment.audio).max()) <= PEAK_CEILING + 1e-4, "peak-limited"
        assert word_overlap(spoken, segment.text) >= 0.7, segment.text
    for wav in (tmp_path / "me").rglob("*.wav"):
        assert sf.info(wav).samplerate == SAMPLE_RATE and sf.info(wav).channels == 1


@pytest.mark.parametrize(
    "audio",
    [np.zeros(8 * SAMPLE_RATE, dtype=np.float32), noise(8.0, level=0.05)],
    ids=["silence", "noise"],
)
def test_no_speech_is_refused_and_nothing_is_written(audio, tmp_path, capsys):
    wav = write_wav(tmp_path / "empty.wav", audio)
    library_dir = tmp_path / "lib"
    assert add(library_dir, str(wav), "--id", "nobody") == 1
    err = capsys.readouterr().err
    assert "no speech found in empty.wav" in err, err
    assert VoiceLibrary(library_dir, builtin_dir=None).list() == []


def test_three_seconds_of_speech_is_not_enough(tmp_path, capsys):
    sentence = "The library opens at nine."
    short = np.concatenate(
        [np.zeros(SAMPLE_RATE, np.float32), speak(sentence), np.zeros(4 * SAMPLE_RATE, np.float32)]
    )
    wav = write_wav(tmp_path / "short.wav", short + noise(len(short) / SAMPLE_RATE, level=0.002))
    assert add(tmp_path / "lib", str(wav), "--id", "short") == 1
    err = capsys.readouterr().err
    assert "of clear speech; at least 5 s needed" in err, err
    assert not (tmp_path / "lib" / "short").exists()


def test_pick_references_takes_the_best_within_the_budget():
    def candidate(seconds: float, score: float, text: str = "words") -> ReferenceCandidate:
        return ReferenceCandidate(np.zeros(int(seconds * SAMPLE_RATE), np.float32), text, score)

    best, big, small, worst = candidate(6, 3.0), candidate(12, 2.0), candidate(4, 1.0), candidate(3, 0.5)
    picked = pick_references([worst, small, big, best, candidate(5, 9.0, text=" ")], max_seconds=20.0)
    assert picked == [best, big], "best first; the 4 s one would overflow 20 s; no text never counts"
    assert pick_references([small, worst], min_seconds=5.0) == [small, worst]
    with pytest.raises(BadRequest, match=r"only 4\.0 s of clear speech; at least 5 s needed"):
        pick_references([small])
