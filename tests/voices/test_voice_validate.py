from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from voice_helpers import segment, tone

from csmstream.errors import BadRequest
from csmstream.voices.library import VoiceLibrary
from csmstream.voices.validate import VoiceLimits, check_segment, check_speaker, slug_from_name


@pytest.fixture
def library(tmp_path: Path) -> VoiceLibrary:
    return VoiceLibrary(tmp_path / "user", builtin_dir=None)


def nan_audio() -> np.ndarray:
    audio = tone(1.0)
    audio[100] = np.nan
    return audio


def inf_audio() -> np.ndarray:
    audio = tone(1.0)
    audio[5] = np.inf
    return audio


@pytest.mark.parametrize(
    ("audio", "sample_rate", "text", "message"),
    [
        (tone(0.4), 24_000, "hi", "at least 0.5 s"),
        (tone(31.0, 8_000), 8_000, "hi", "at most 30 s"),
        (np.zeros(24_000, np.float32), 24_000, "hi", "silent"),
        ((tone(1.0) * 1e-4).astype(np.float32), 24_000, "hi", "silent"),
        (nan_audio(), 24_000, "hi", "NaN"),
        (inf_audio(), 24_000, "hi", "NaN or infinite"),
        (np.zeros(0, np.float32), 24_000, "hi", "at least 0.5 s"),
        ([0.1] * 24_000, 24_000, "hi", "numpy array"),
        ("audio.wav", 24_000, "hi", "numpy array"),
        (np.ones(24_000, dtype=bool), 24_000, "hi", "sample type"),
        (np.array(["a"] * 24_000), 24_000, "hi", "sample type"),
        (tone(1.0), 0, "hi", "sample rate"),
        (tone(1.0), 24_000.0, "hi", "sample rate"),
        (tone(1.0), 24_000, "", "transcript is empty"),
        (tone(1.0), 24_000, "  \n ", "transcript is empty"),
        (tone(1.0), 24_000, None, "transcript is empty"),
    ],
)
def test_bad_audio_is_refused(library: VoiceLibrary, audio, sample_rate, text, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        library.create("v", "V", 0, [(audio, sample_rate, text)])
    assert library.list() == [], "nothing was stored"


def test_total_length_is_limited(library: VoiceLibrary) -> None:
    three_25s = [segment(25.0, "x", sample_rate=8_000) for _ in range(3)]
    with pytest.raises(BadRequest, match="totals 75.0 s; at most 60 s"):
        library.create("v", "V", 0, three_25s)
    assert library.create("v", "V", 0, three_25s[:2]).reference_seconds == pytest.approx(50.0, abs=1e-3)


def test_limits_are_configurable(tmp_path: Path) -> None:
    strict = VoiceLibrary(
        tmp_path, builtin_dir=None, limits=VoiceLimits(max_segment_seconds=2.0, max_segments=1)
    )
    with pytest.raises(BadRequest, match="at most 2 s"):
        strict.create("v", "V", 0, [segment(3.0)])
    with pytest.raises(BadRequest, match="at most 1 reference segments"):
        strict.create("v", "V", 0, [segment(1.0), segment(1.0)])
    assert strict.create("v", "V", 0, [segment(1.5)]).voice_id == "v"


def test_a_segment_error_names_the_segment(library: VoiceLibrary) -> None:
    with pytest.raises(BadRequest, match="segment 2"):
        library.create("v", "V", 0, [segment(1.0), segment(0.1)])
    with pytest.raises(BadRequest, match="at least one reference segment"):
        library.create("v", "V", 0, [])
    with pytest.raises(BadRequest, match="expected"):
        library.create("v", "V", 0, [(tone(1.0), 24_000)])


def test_integer_and_stereo_audio_is_converted() -> None:
    limits = VoiceLimits()
    pcm16 = (tone(1.0, 48_000) * 32767).astype(np.int16)
    converted = check_segment(pcm16, 48_000, "hi", limits, 0)
    assert converted.audio.shape == (24_000,) and converted.audio.dtype == np.float32
    assert 0.25 < float(np.max(np.abs(converted.audio))) < 0.35, "int16 is scaled to [-1, 1]"
    # opposite channels cancel in a downmix: the channels are averaged, not picked
    stereo = np.stack([tone(1.0), -tone(1.0) + tone(1.0, frequency_hz=440.0)], axis=1)
    downmixed = check_segment(stereo, 24_000, "hi", limits, 0).audio
    np.testing.assert_allclose(downmixed, tone(1.0, frequency_hz=440.0) / 2, atol=1e-6)
    loud = check_segment(tone(1.0, amplitude=4.0), 24_000, "hi", limits, 0).audio
    assert float(np.max(np.abs(loud))) <= 1.0, "audio over full scale is brought back into range"


@pytest.mark.parametrize("speaker", [-1, 1000, True, "1", 1.0, None])
def test_bad_speakers_are_refused(library: VoiceLibrary, speaker) -> None:
    with pytest.raises(BadRequest, match="speaker"):
        library.create("v", "V", speaker, [segment()])
    assert check_speaker(np.int64(7)) == 7


def test_names_are_checked(library: VoiceLibrary) -> None:
    with pytest.raises(BadRequest, match="name is empty"):
        library.create(None, "  ", 0, [segment()])
    with pytest.raises(BadRequest, match="longer than"):
        library.create("v", "x" * 101, 0, [segment()])
    assert library.create("v", None, 0, [segment()]).name == "v", "the id names a voice given no name"


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Ana María (calm)", "ana-maria-calm"),
        ("!!!", "voice"),
        ("  My  Voice 2 ", "my-voice-2"),
        ("日本", "voice"),
    ],
)
def test_slug_from_name(name: str, slug: str) -> None:
    assert slug_from_name(name) == slug


def test_an_upload_that_is_not_audio_gets_a_plain_message():
    from csmstream.voices.validate import decode_reference_upload

    with pytest.raises(BadRequest) as info:
        decode_reference_upload(b"these are my notes\n" * 100, "notes.txt")
    message = str(info.value)
    assert "“notes.txt” is not a sound file the server can read" in message
    assert "BytesIO" not in message and "soundfile" not in message


def test_an_upload_under_five_seconds_is_refused():
    import io

    import soundfile as sf

    from csmstream.voices.validate import decode_reference_upload

    def wav(seconds: float) -> bytes:
        buffer = io.BytesIO()
        sf.write(buffer, tone(seconds), 24_000, format="WAV")
        return buffer.getvalue()

    with pytest.raises(BadRequest, match=r"only 2\.5 s long; a voice needs at least 5 s"):
        decode_reference_upload(wav(2.46))
    samples, rate = decode_reference_upload(wav(5.0))
    assert rate == 24_000 and samples.shape[0] == 120_000
