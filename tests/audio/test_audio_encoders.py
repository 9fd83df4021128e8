"""Every streaming encoder: fed uneven chunks, its bytes decode back to the input."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest
import soundfile as sf
from audio_signals import aligned_correlation, decode_with_av, speech_like, uneven_chunks

from csmstream.audio.encoders import SUPPORTED_FORMATS, make_encoder
from csmstream.errors import BadRequest

SR = 24_000


def encode_all(fmt: str, samples: np.ndarray, sample_rate: int = SR) -> tuple[list[bytes], bytes]:
    """(bytes returned by each encode() call, the whole stream)."""
    encoder = make_encoder(fmt, sample_rate)
    parts = [encoder.encode(chunk) for chunk in uneven_chunks(samples)]
    tail = encoder.finish()
    return parts, b"".join(parts) + tail


def test_supported_formats_listed():
    assert set(SUPPORTED_FORMATS) >= {"pcm", "pcm_s16le", "pcm_f32le", "wav", "mp3", "opus", "flac"}


@pytest.mark.parametrize("fmt", ["aac", "ogg_vorbis", "", "wav2"])
def test_unknown_format_is_bad_request_listing_supported(fmt):
    with pytest.raises(BadRequest) as info:
        make_encoder(fmt)
    for name in ("mp3", "opus", "flac", "pcm"):
        assert name in str(info.value), f"the error should list {name}"


def test_format_names_are_case_insensitive():
    assert make_encoder(" MP3 ").content_type == "audio/mpeg"


@pytest.mark.parametrize(
    "fmt, content_type",
    [
        ("wav", "audio/wav"),
        ("mp3", "audio/mpeg"),
        ("opus", "audio/ogg"),
        ("flac", "audio/flac"),
        ("pcm", "audio/pcm"),
    ],
)
def test_content_types(fmt, content_type):
    assert make_encoder(fmt).content_type.startswith(content_type)


@pytest.mark.parametrize("fmt", ["pcm", "pcm_s16le"])
def test_pcm_s16le_is_exact_int16(fmt):
    x = speech_like()
    _, data = encode_all(fmt, x)
    decoded = np.frombuffer(data, dtype="<i2")
    assert decoded.size == x.size
    np.testing.assert_array_equal(decoded, np.rint(x * 32768).astype(np.int16))


def test_pcm_s16le_clips_instead_of_wrapping():
    data = make_encoder("pcm_s16le").encode(np.array([1.5, -1.5, 0.5], np.float32))
    assert np.frombuffer(data, "<i2").tolist() == [32767, -32768, 16384]


def test_pcm_f32le_is_bit_exact():
    x = speech_like()
    _, data = encode_all("pcm_f32le", x)
    np.testing.assert_array_equal(np.frombuffer(data, dtype="<f4"), x)


def test_int16_input_is_accepted():
    x16 = (speech_like() * 32767).astype(np.int16)
    data = make_encoder("pcm_s16le").encode(x16)
    np.testing.assert_array_equal(np.frombuffer(data, "<i2"), x16)


def test_streaming_wav_header_comes_first_and_readers_accept_unknown_length():
    x = speech_like()
    parts, data = encode_all("wav", x)
    assert parts[0][:4] == b"RIFF" and parts[0][8:12] == b"WAVE", "the header must precede the first samples"
    decoded, rate = sf.read(io.BytesIO(data), dtype="int16")
    assert rate == SR and decoded.size == x.size
    np.testing.assert_array_equal(decoded, np.rint(x * 32768).astype(np.int16))
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SR, 1, 2)
        frames = w.readframes(w.getnframes())  # the header says "huge"; the reader stops at the end
    np.testing.assert_array_equal(np.frombuffer(frames, "<i2"), decoded)


def test_streaming_wav_prefix_is_playable():
    """Bytes received so far (header + whole samples) are a readable file: what a player sees mid-stream."""
    x = speech_like()
    encoder = make_encoder("wav")
    received = encoder.encode(x[:5000]) + encoder.encode(x[5000:9001])
    decoded, _ = sf.read(io.BytesIO(received), dtype="float32")
    assert decoded.size == 9001


@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus", "flac"])
def test_empty_stream_is_harmless(fmt):
    data = make_encoder(fmt).finish()
    if data:  # mp3 has no header: no audio, no bytes
        decoded, _ = decode_with_av(data)
        assert decoded.size == 0


def test_encode_after_finish_is_a_bug():
    encoder = make_encoder("opus")
    encoder.finish()
    with pytest.raises(AssertionError):
        encoder.encode(np.zeros(10, np.float32))
    with pytest.raises(AssertionError):
        encoder.finish()


def test_stereo_input_is_rejected():
    with pytest.raises(BadRequest):
        make_encoder("wav").encode(np.zeros((100, 2), np.float32))


# (format, minimum correlation after alignment, allowed extra duration in seconds)
LOSSY_CASES = [("mp3", 0.97, 0.1), ("opus", 0.95, 0.0), ("flac", 0.9999, 0.0)]


@pytest.mark.parametrize("fmt, min_correlation, extra_s", LOSSY_CASES)
def test_codec_round_trip(fmt, min_correlation, extra_s):
    x = speech_like()
    parts, data = encode_all(fmt, x)
    decoded, rate = decode_with_av(data)
    if rate != SR:  # Opus always decodes at 48 kHz
        decoded = decode_with_av_resampled(data, SR)
    duration_s = decoded.size / SR
    assert x.size / SR <= duration_s + 1e-3 <= x.size / SR + extra_s + 2e-3, (
        f"{fmt}: decoded {duration_s:.4f} s"
    )
    correlation, lag = aligned_correlation(x, decoded)
    assert correlation >= min_correlation, f"{fmt}: correlation {correlation:.4f} at lag {lag}"
    if fmt in ("opus", "flac"):
        assert lag == 0, f"{fmt} must be sample-aligned (pre-skip honoured), got lag {lag}"


def decode_with_av_resampled(data: bytes, rate: int) -> np.ndarray:
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        blocks = []
        for frame in container.decode(stream):
            blocks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        blocks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(blocks)


def test_flac_is_lossless_at_16_bits():
    x = speech_like()
    _, data = encode_all("flac", x)
    decoded, rate = decode_with_av(data)
    assert rate == SR
    np.testing.assert_array_equal(
        np.rint(decoded * 32768).astype(np.int16), np.rint(x * 32768).astype(np.int16)
    )


def test_opus_decodes_with_libsndfile_at_the_input_rate():
    """libsndfile checks Ogg CRCs and honours pre-skip and end trimming: exact length, original rate."""
    x = speech_like()
    _, data = encode_all("opus", x)
    decoded, rate = sf.read(io.BytesIO(data), dtype="float32")
    assert rate == SR and decoded.size == x.size
    assert aligned_correlation(x, decoded)[0] > 0.95


def test_mp3_decodes_with_libsndfile():
    x = speech_like()
    _, data = encode_all("mp3", x)
    decoded, rate = sf.read(io.BytesIO(data), dtype="float32")
    assert rate == SR and aligned_correlation(x, decoded)[0] > 0.97


def test_opus_at_a_rate_libopus_lacks_is_resampled():
    rate = 44_100
    x = speech_like(sample_rate=rate)
    _, data = encode_all("opus", x, sample_rate=rate)
    decoded, decoded_rate = decode_with_av(data)
    assert decoded_rate == 48_000
    assert abs(decoded.size / 48_000 - x.size / rate) < 0.005
    reference = decode_reference_at_48k(x, rate)
    assert aligned_correlation(reference, decoded, max_lag=200)[0] > 0.95


def decode_reference_at_48k(x: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    return soxr.resample(x, rate, 48_000).astype(np.float32)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "flac", "wav"])
def test_audio_comes_out_before_finish(fmt):
    """Streaming: nearly all audio is decodable from the bytes returned by encode(), before finish()."""
    x = speech_like()
    encoder = make_encoder(fmt)
    received = b"".join(encoder.encode(chunk) for chunk in uneven_chunks(x))
    decoded, rate = decode_with_av(received)
    # codec framing may hold back a frame or two (mp3: 24 ms frames + delay; opus 20 ms; flac 80 ms)
    assert decoded.size / rate >= x.size / SR - 0.1, f"{fmt}: only {decoded.size / rate:.3f} s before finish"


def test_every_supported_format_round_trips_its_length():
    x = speech_like(duration_s=0.5)
    for fmt in SUPPORTED_FORMATS:
        _, data = encode_all(fmt, x)
        if fmt.startswith("pcm"):
            width = 4 if fmt == "pcm_f32le" else 2
            assert len(data) == x.size * width, fmt
            continue
        decoded, rate = decode_with_av(data)
        assert decoded.size / rate >= x.size / SR - 1e-3, f"{fmt} lost audio"
