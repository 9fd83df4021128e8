"""Reading uploads / files (`read_audio`, `load_mono_24k`) and writing wavs (`write_wav`)."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
import soundfile as sf
from audio_signals import aligned_correlation, speech_like

from csmstream.audio.encoders import make_encoder
from csmstream.audio.io import load_mono_24k, read_audio, write_wav
from csmstream.errors import BadRequest


def dominant_frequency(samples: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / sample_rate)[np.argmax(spectrum)])


def tone(frequency: float, duration_s: float, sample_rate: int) -> np.ndarray:
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    return (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def encode_with_ffmpeg(samples: np.ndarray, sample_rate: int, container: str, codec: str) -> bytes:
    """(S,) mono float → bytes of `container` holding `codec` (for formats only PyAV can read)."""
    sink = io.BytesIO()
    with av.open(sink, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=sample_rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate, frame.pts = sample_rate, 0
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return sink.getvalue()


def test_read_wav_path_keeps_channels_and_rate(tmp_path):
    stereo = np.stack([tone(440, 0.5, 44_100), tone(660, 0.5, 44_100)], axis=1)  # (S, 2)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, 44_100, subtype="FLOAT")
    samples, rate = read_audio(path)
    assert rate == 44_100 and samples.shape == stereo.shape and samples.dtype == np.float32
    np.testing.assert_array_equal(samples, stereo)
    samples_from_str, _ = read_audio(str(path))
    np.testing.assert_array_equal(samples_from_str, stereo)


def test_load_mono_24k_downmixes_and_resamples_stereo_44k(tmp_path):
    left, right = tone(440, 1.0, 44_100), tone(440, 1.0, 44_100) * 0.5
    path = tmp_path / "in.wav"
    sf.write(path, np.stack([left, right], axis=1), 44_100, subtype="PCM_16")  # int16 on disk
    mono = load_mono_24k(path)
    assert mono.ndim == 1 and mono.dtype == np.float32
    assert abs(mono.size - 24_000) <= 2
    assert dominant_frequency(mono, 24_000) == pytest.approx(440, abs=2)
    middle = mono[2000:-2000]
    assert np.max(np.abs(middle)) == pytest.approx(0.375, abs=0.01), "channels are averaged"


def test_load_mono_24k_from_bytes_of_each_container():
    x = speech_like(1.0, 16_000)
    cases = {}
    for fmt in ("wav", "flac", "ogg"):
        buffer = io.BytesIO()
        sf.write(buffer, x, 16_000, format=fmt.upper(), subtype="VORBIS" if fmt == "ogg" else None)
        cases[fmt] = buffer.getvalue()
    cases["m4a"] = encode_with_ffmpeg(x, 16_000, "ipod", "aac")
    cases["webm"] = encode_with_ffmpeg(x, 16_000, "webm", "libopus")
    reference = load_mono_24k(cases["wav"])
    for fmt, data in cases.items():
        mono = load_mono_24k(data)
        assert abs(mono.size / 24_000 - 1.0) < 0.1, f"{fmt}: {mono.size} samples"
        correlation, _ = aligned_correlation(reference, mono)
        assert correlation > 0.9, f"{fmt}: correlation {correlation:.3f}"


@pytest.mark.parametrize("fmt", ["mp3", "opus", "flac", "wav"])
def test_reads_our_own_streams(fmt):
    """Including streamed FLAC of unknown length, which libsndfile cannot read (PyAV fallback)."""
    x = speech_like(1.0)
    encoder = make_encoder(fmt)
    data = encoder.encode(x) + encoder.finish()
    mono = load_mono_24k(data)
    assert mono.size >= x.size and mono.size - x.size < 2400
    assert aligned_correlation(x, mono)[0] > 0.95


def test_int16_wav_is_scaled_to_float(tmp_path):
    x16 = (tone(300, 0.5, 24_000) * 32767).astype(np.int16)
    path = tmp_path / "int16.wav"
    sf.write(path, x16, 24_000, subtype="PCM_16")
    mono = load_mono_24k(path)
    np.testing.assert_allclose(mono, x16 / 32768.0, atol=1e-6)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"\x00" * 10, "could not decode"),
        (np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes(), "could not decode"),
        (b"RIFF\x10\x00\x00\x00WAVEjunkjunk", "could not decode"),
        (b"hello, this is not audio at all\n" * 40, "could not decode"),
    ],
)
def test_garbage_bytes_are_bad_request(data, message):
    with pytest.raises(BadRequest, match=message):
        read_audio(data)


def test_missing_path_directory_and_empty_file_are_bad_request(tmp_path):
    with pytest.raises(BadRequest, match="not found"):
        read_audio(tmp_path / "missing.wav")
    with pytest.raises(BadRequest, match="directory"):
        read_audio(tmp_path)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(BadRequest, match="empty"):
        read_audio(empty)


def test_wav_without_samples_is_bad_request():
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(0, np.float32), 24_000, format="WAV")
    with pytest.raises(BadRequest, match="no samples"):
        read_audio(buffer.getvalue())


def test_wrong_source_type_is_bad_request():
    with pytest.raises(BadRequest):
        read_audio(12345)  # type: ignore[arg-type]


def test_write_wav_pcm16_default_and_float_option(tmp_path):
    x = speech_like(0.5)
    x[10] = 1.7  # out of range: must clip, not wrap
    write_wav(tmp_path / "a.wav", x, 24_000)
    info = sf.info(tmp_path / "a.wav")
    assert info.subtype == "PCM_16" and info.samplerate == 24_000 and info.channels == 1
    back, _ = sf.read(tmp_path / "a.wav", dtype="int16")
    assert back[10] == 32767
    np.testing.assert_array_equal(back[11:], np.rint(x[11:] * 32768).astype(np.int16))
    write_wav(tmp_path / "b.wav", x, 24_000, float32=True)
    assert sf.info(tmp_path / "b.wav").subtype == "FLOAT"
    np.testing.assert_array_equal(sf.read(tmp_path / "b.wav", dtype="float32")[0], x)
