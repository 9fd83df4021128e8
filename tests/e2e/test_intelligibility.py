"""Intelligibility end to end with real components: the piper voice speaks, Whisper tiny.en listens.

Both ways a user gets speech: `csmstream say --engine piper` in-process, and `csmstream say --server` streaming
from a running server's WebSocket. Sentences hold numbers and punctuation; the word error rate of each path,
over the whole set, must be at most 15% (piper samples its noise anew each run and Whisper tiny.en varies with
it: 0-12% measured on the same sentences over runs)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import soundfile as sf

from csmstream.text.numbers import number_to_words

MAX_WER = 0.15  # see the module docstring

SENTENCES = [
    "I have 3 apples and 12 oranges.",
    "Please call me back in 15 minutes!",
    "Is the meeting on Tuesday, or on Friday?",
    "The package weighs 7 kilograms; it is heavy.",
    "Turn left, then walk 200 meters to the station.",
    "She said: the soup is hot, so wait a moment.",
]


def normalized_words(text: str) -> list[str]:
    """Lower case, digits spelled out, punctuation and hyphens dropped: what was said, not how it was written."""
    text = re.sub(r"\d+", lambda m: " " + number_to_words(int(m.group())) + " ", text.replace(",", ""))
    return re.sub(r"[^a-z' ]+", " ", text.lower().replace("-", " ")).split()


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, reference words)."""
    ref, hyp = normalized_words(reference), normalized_words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[-1], len(ref)


def test_word_errors_counts_what_was_said():
    assert word_errors("I have 3 apples.", "i have three apples") == (0, 4)
    assert word_errors("Walk 200 meters", "walk two hundred metres") == (1, 4)


@pytest.fixture(scope="module")
def stt():
    from csmstream.pipeline.stt import load_stt

    return load_stt()


@pytest.fixture(scope="module")
def piper_server(tmp_path_factory):
    from serve_process import start_server

    server = start_server(["--engine", "piper"], tmp_path_factory.mktemp("voices"))
    yield server
    server.stop()


def say(args: list[str], output) -> None:
    command = [sys.executable, "-m", "csmstream.cli", "say", *args, "-o", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, env=None)
    assert result.returncode == 0, f"csmstream say failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("path", ["local", "server"])
def test_spoken_sentences_are_understood(path, stt, piper_server, tmp_path, monkeypatch):
    monkeypatch.setenv("CSMSTREAM_NO_AUDIO", "1")
    errors = words = 0
    heard = []
    for i, sentence in enumerate(SENTENCES):
        wav = tmp_path / f"{i}.wav"
        if path == "local":
            say([sentence, "--engine", "piper"], wav)
        else:
            say([sentence, "--server", piper_server.url, "--no-audio"], wav)
        audio, rate = sf.read(wav, dtype="float32")
        assert rate == 24_000, f"the wav must be 24 kHz, got {rate}"
        text = stt.transcribe_sync(audio, rate)
        e, n = word_errors(sentence, text)
        errors, words = errors + e, words + n
        heard.append(f"{sentence!r} → {text!r} ({e}/{n})")
    wer = errors / words
    assert wer <= MAX_WER, f"word error rate {wer:.1%} over {words} words:\n" + "\n".join(heard)
