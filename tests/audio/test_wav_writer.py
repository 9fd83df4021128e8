"""`WavWriter`: the file on disk is a complete wav after every append."""

from __future__ import annotations

import wave

import numpy as np
import soundfile as sf
from audio_signals import speech_like, uneven_chunks

from csmstream.audio.io import WavWriter


def test_valid_after_each_append_for_wave_and_soundfile(tmp_path):
    x = speech_like()
    expected = np.rint(x * 32768).astype(np.int16)
    path = tmp_path / "grow.wav"
    with WavWriter(path, 24_000) as writer:
        assert sf.read(path)[0].size == 0, "a fresh file is an empty wav"
        written = 0
        for chunk in uneven_chunks(x):
            writer.append(chunk)
            written += chunk.size
            with wave.open(str(path)) as w:  # trusts the header's sizes
                assert w.getnframes() == written
                frames = np.frombuffer(w.readframes(written), "<i2")
            np.testing.assert_array_equal(frames, expected[:written])
            data, rate = sf.read(path, dtype="int16")
            assert rate == 24_000 and data.size == written
        assert writer.num_samples == x.size
        assert abs(writer.duration_s - 1.5) < 1e-9
    data, _ = sf.read(path, dtype="int16")
    np.testing.assert_array_equal(data, expected)


def test_float32_writer(tmp_path):
    x = speech_like(0.3)
    path = tmp_path / "f.wav"
    with WavWriter(path, 16_000, sample_format="float32") as writer:
        writer.append(x[:1000])
        assert sf.read(path, dtype="float32")[0].size == 1000
        writer.append(x[1000:])
    data, rate = sf.read(path, dtype="float32")
    assert rate == 16_000
    np.testing.assert_array_equal(data, x)


def test_int16_chunks_are_exact(tmp_path):
    x16 = np.arange(-3000, 3000, dtype=np.int16)
    path = tmp_path / "i.wav"
    with WavWriter(path, 24_000) as writer:
        writer.append(x16[:10])
        writer.append(x16[10:])
    np.testing.assert_array_equal(sf.read(path, dtype="int16")[0], x16)
