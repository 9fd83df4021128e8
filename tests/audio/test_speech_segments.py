"""Cutting a recording into speech spans from per-window probabilities: synthetic probabilities and signals."""

from __future__ import annotations

import numpy as np
import pytest

from csmstream.audio.speech_segments import (
    SegmentConfig,
    SpeechSpan,
    speech_spans,
    split_long_span,
    voiced_runs,
)
from csmstream.errors import BadRequest

RATE = 1000  # 1 kHz keeps the arithmetic readable: a sample is a millisecond
WINDOW = 0.01  # 10 ms windows


def probabilities(total_s: float, speech: list[tuple[float, float]], level: float = 0.9) -> np.ndarray:
    p = np.full(int(round(total_s / WINDOW)), 0.05)
    for start, end in speech:
        p[int(round(start / WINDOW)) : int(round(end / WINDOW))] = level
    return p


def spans_s(spans: list[SpeechSpan]) -> list[tuple[float, float]]:
    return [(s.start_sample / RATE, s.end_sample / RATE) for s in spans]


def test_voiced_runs_use_hysteresis():
    assert voiced_runs(np.array([0.1, 0.6, 0.4, 0.6, 0.1, 0.45, 0.1]), threshold=0.5) == [(1, 4)]
    assert voiced_runs(np.array([0.9, 0.9]), 0.5) == [(0, 2)], "speech running to the end is closed"


def test_pads_merges_short_gaps_and_drops_clicks():
    audio = np.zeros(10 * RATE, np.float32)
    p = probabilities(10.0, [(1.0, 2.0), (2.2, 3.0), (5.0, 5.1), (6.0, 7.0)])
    config = SegmentConfig(min_speech_seconds=0.25, merge_gap_seconds=0.3, pad_seconds=0.2, max_seconds=10.0)
    # 1-2 s and 2.2-3 s are one span (gap 0.2 s), the 0.1 s click is gone, every span padded by 0.2 s
    assert spans_s(speech_spans(audio, RATE, p, WINDOW, config)) == [(0.8, 3.2), (5.8, 7.2)]


def test_padding_never_reaches_past_a_neighbour_or_the_ends():
    audio = np.zeros(4 * RATE, np.float32)
    p = probabilities(4.0, [(0.05, 1.0), (1.5, 3.95)])
    config = SegmentConfig(merge_gap_seconds=0.3, pad_seconds=0.4, max_seconds=10.0)
    assert spans_s(speech_spans(audio, RATE, p, WINDOW, config)) == [(0.0, 1.25), (1.25, 4.0)]


def test_long_speech_is_split_at_its_quietest_point():
    t = np.arange(30 * RATE) / RATE
    audio = (0.3 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)
    audio[int(7.3 * RATE) : int(7.4 * RATE)] = 0.0  # a breath at 7.3 s
    audio[int(16.0 * RATE) : int(16.1 * RATE)] *= 0.01  # and one at 16 s
    p = probabilities(30.0, [(0.0, 30.0)])
    config = SegmentConfig(pad_seconds=0.0, max_seconds=10.0, min_piece_seconds=1.0)
    pieces = spans_s(speech_spans(audio, RATE, p, WINDOW, config))
    assert pieces[0] == (0.0, pytest.approx(7.35, abs=0.03)) and pieces[1][1] == pytest.approx(
        16.05, abs=0.03
    )
    assert all(end - start <= 10.0 for start, end in pieces) and pieces[-1][1] == 30.0
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:], strict=False)), "pieces are contiguous"


def test_split_keeps_pieces_at_least_min_piece_long():
    audio = np.ones(12 * RATE, np.float32)
    audio[int(0.5 * RATE)] = 0.0  # the quietest point is too close to the start to cut there
    pieces = split_long_span(audio, RATE, SpeechSpan(0, len(audio)), max_seconds=10.0, min_piece_seconds=2.0)
    assert all(p.num_samples >= 2 * RATE for p in pieces) and sum(p.num_samples for p in pieces) == len(audio)


def test_silence_has_no_spans_and_bad_input_is_refused():
    assert speech_spans(np.zeros(RATE, np.float32), RATE, np.zeros(100), WINDOW) == []
    with pytest.raises(BadRequest, match="mono"):
        speech_spans(np.zeros((RATE, 2), np.float32), RATE, np.zeros(100), WINDOW)
    with pytest.raises(BadRequest, match="twice"):
        SegmentConfig(max_seconds=1.0, min_piece_seconds=1.0)
