"""Word error rate for transcript checks: numbers, case and punctuation do not count as errors."""

from __future__ import annotations

import pytest

from csmstream.text.word_error_rate import word_error_rate


@pytest.mark.parametrize(
    "reference, hypothesis, expected",
    [
        ("The library opens at nine.", "the library opens at 9", 0.0),
        ("Hello there, friend!", "hello their friend", 1 / 3),
        ("one two three four", "one three four", 0.25),
        ("one two", "one two three four", 1.0),
        ("", "", 0.0),
        ("", "words", 1.0),
    ],
)
def test_word_error_rate(reference, hypothesis, expected):
    assert word_error_rate(reference, hypothesis) == pytest.approx(expected)
