"""Streaming VAD on real speech (piper) and silence: events, their times, and the knobs that shape them."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_helpers import SAMPLE_RATE, silence, speak, to_pcm16, voiced_span_ms

from csmstream.errors import BadRequest
from csmstream.pipeline.vad import StreamingVad, VadConfig
from csmstream.pipeline.vad_model import WINDOW_MS, SileroVadModel

SENTENCE = "Could you tell me what the weather will be like tomorrow morning?"
LEAD_S, TAIL_S = 0.6, 1.5


@pytest.fixture(scope="module")
def vad_model():
    return SileroVadModel()


@pytest.fixture(scope="module")
def utterance():
    """(audio, first voiced ms, last voiced ms): silence, a spoken sentence, silence."""
    speech = speak(SENTENCE)
    audio = np.concatenate([silence(LEAD_S), speech, silence(TAIL_S)])
    first_ms, last_ms = voiced_span_ms(speech)
    return audio, LEAD_S * 1000 + first_ms, LEAD_S * 1000 + last_ms


def feed(vad: StreamingVad, audio: np.ndarray, chunk: int, as_bytes: bool = True):
    events = []
    for i in range(0, len(audio), chunk):
        piece = audio[i : i + chunk]
        events += vad.push(to_pcm16(piece) if as_bytes else piece)
    return events + vad.flush()


def test_speech_then_silence_gives_start_then_stop_at_plausible_times(vad_model, utterance):
    audio, first_ms, last_ms = utterance
    config = VadConfig(threshold=0.5, min_speech_ms=250, silence_duration_ms=500)
    events = feed(
        StreamingVad(vad_model, config), audio, chunk=1111
    )  # odd chunk size: windows straddle chunks

    assert [e.kind for e in events] == ["speech_started", "speech_stopped"], events
    started, stopped = events
    assert first_ms - 100 <= started.at_ms <= first_ms + 150, (started, first_ms)
    # reported once min_speech_ms of speech confirmed it
    assert started.detected_ms - started.at_ms >= config.min_speech_ms
    assert last_ms - 300 <= stopped.at_ms <= last_ms + 200, (stopped, last_ms)
    # decided after silence_duration_ms of silence, within one window
    assert (
        config.silence_duration_ms
        <= stopped.detected_ms - stopped.at_ms
        < config.silence_duration_ms + WINDOW_MS
    )


def test_silence_duration_sets_when_the_turn_ends(vad_model, utterance):
    audio = utterance[0]
    stops = {}
    for silence_ms in (300, 900):
        events = feed(StreamingVad(vad_model, VadConfig(silence_duration_ms=silence_ms)), audio, chunk=480)
        (stop,) = [e for e in events if e.kind == "speech_stopped"]
        stops[silence_ms] = stop
    assert stops[300].at_ms == stops[900].at_ms, "where speech ended does not depend on the wait"
    waited = stops[900].detected_ms - stops[300].detected_ms
    assert abs(waited - 600) <= WINDOW_MS, waited


def test_a_burst_shorter_than_min_speech_is_not_speech(vad_model):
    # A real syllable-sized burst: 130 ms from the middle of a spoken word, framed by silence.
    word = speak("Hey")
    first_ms, _ = voiced_span_ms(word)
    start = int((first_ms + 20) * SAMPLE_RATE / 1000)
    burst = word[start : start + int(0.13 * SAMPLE_RATE)]
    audio = np.concatenate([silence(0.5), burst, silence(1.0)])

    strict = feed(StreamingVad(vad_model, VadConfig(min_speech_ms=250, silence_duration_ms=300)), audio, 960)
    assert strict == [], strict
    # The same burst does count when the minimum is below its length: the minimum is what rejected it.
    lax = feed(StreamingVad(vad_model, VadConfig(min_speech_ms=32, silence_duration_ms=300)), audio, 960)
    assert [e.kind for e in lax] == ["speech_started", "speech_stopped"], lax


def test_silence_alone_gives_no_event(vad_model):
    rng = np.random.default_rng(0)
    hiss = (rng.standard_normal(3 * SAMPLE_RATE) * 0.003).astype(np.float32)  # a quiet room
    assert feed(StreamingVad(vad_model), hiss, chunk=2400) == []


def test_input_forms_and_rates_agree(vad_model, utterance):
    """bytes / float32 at 24 kHz and float32 at 16 kHz (no resampling) find the same turn."""
    audio = utterance[0]
    as_bytes = feed(StreamingVad(vad_model), audio, chunk=700, as_bytes=True)
    as_float = feed(StreamingVad(vad_model), audio, chunk=4096, as_bytes=False)
    audio_16k = speak(SENTENCE, 16_000)
    at_16k = feed(
        StreamingVad(vad_model, sample_rate=16_000),
        np.concatenate([silence(LEAD_S, 16_000), audio_16k, silence(TAIL_S, 16_000)]),
        chunk=512,
        as_bytes=False,
    )
    # Same samples (bytes vs float): within a window. Resampled another way (16 kHz): a few windows, since
    # the end of speech is where the probability decays through the hysteresis band.
    for other, tolerance_ms in ((as_float, WINDOW_MS), (at_16k, 5 * WINDOW_MS)):
        assert [e.kind for e in other] == [e.kind for e in as_bytes]
        for a, b in zip(as_bytes, other, strict=True):
            assert abs(a.at_ms - b.at_ms) <= tolerance_ms, (a, b)


def test_onnx_and_torchscript_models_agree(utterance):
    audio = utterance[0][: 3 * SAMPLE_RATE]
    streams = [SileroVadModel(backend).new_stream() for backend in ("onnx", "jit")]
    from csmstream.audio.resample import resample

    audio_16k = resample(audio, SAMPLE_RATE, 16_000)
    for i in range(0, len(audio_16k) - 512, 512):
        window = audio_16k[i : i + 512]
        p_onnx, p_jit = (s.probability(window) for s in streams)
        assert abs(p_onnx - p_jit) < 0.02, (i, p_onnx, p_jit)


def test_bad_config_is_rejected():
    with pytest.raises(BadRequest):
        VadConfig(threshold=1.5)
    with pytest.raises(BadRequest):
        VadConfig(silence_duration_ms=0)
