"""Numbers as words."""

from __future__ import annotations

import pytest

from csmstream.text.numbers import (
    decimal_to_words,
    digits_to_words,
    integer_text_to_words,
    number_to_words,
    ordinal_to_words,
    plural_of_number_words,
    year_to_words,
)


@pytest.mark.parametrize(
    "n, words",
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (20, "twenty"),
        (21, "twenty-one"),
        (99, "ninety-nine"),
        (100, "one hundred"),
        (101, "one hundred one"),
        (110, "one hundred ten"),
        (999, "nine hundred ninety-nine"),
        (1000, "one thousand"),
        (1001, "one thousand one"),
        (2024, "two thousand twenty-four"),
        (90_000, "ninety thousand"),
        (123_456, "one hundred twenty-three thousand four hundred fifty-six"),
        (1_000_000, "one million"),
        (1_234_567, "one million two hundred thirty-four thousand five hundred sixty-seven"),
        (1_000_000_000, "one billion"),
        (2_000_000_001, "two billion one"),
        (7_000_000_000_000, "seven trillion"),
        (-42, "minus forty-two"),
    ],
)
def test_cardinals(n, words):
    assert number_to_words(n) == words


def test_very_long_numbers_are_read_digit_by_digit():
    assert number_to_words(12_345_678_901_234_567) == digits_to_words("12345678901234567")
    assert digits_to_words("1234567890123456").split()[:3] == ["one", "two", "three"]


def test_every_number_below_ten_thousand_has_distinct_words():
    seen = {number_to_words(n) for n in range(10_000)}
    assert len(seen) == 10_000, "two numbers share a spelling"
    assert all(w.replace("-", " ").replace(" ", "").isalpha() for w in seen)


@pytest.mark.parametrize(
    "n, words",
    [(1, "first"), (2, "second"), (3, "third"), (4, "fourth"), (5, "fifth"), (8, "eighth"), (9, "ninth"),
     (11, "eleventh"), (12, "twelfth"), (20, "twentieth"), (21, "twenty-first"), (42, "forty-second"),
     (100, "one hundredth"), (101, "one hundred first"), (1000, "one thousandth"), (1_000_003, "one million third")],
)  # fmt: skip
def test_ordinals(n, words):
    assert ordinal_to_words(n) == words


@pytest.mark.parametrize(
    "text, words",
    [("3.14", "three point one four"), ("0.5", "zero point five"), ("-2.05", "minus two point zero five"),
     ("10.0", "ten point zero"), ("2.0.1", "two point zero point one"), (".5", "zero point five")],
)  # fmt: skip
def test_decimals(text, words):
    assert decimal_to_words(text) == words


@pytest.mark.parametrize(
    "year, words",
    [(1066, "ten sixty-six"), (1800, "eighteen hundred"), (1905, "nineteen oh five"), (1999, "nineteen ninety-nine"),
     (2000, "two thousand"), (2005, "two thousand five"), (2010, "twenty ten"), (2024, "twenty twenty-four")],
)  # fmt: skip
def test_years(year, words):
    assert year_to_words(year) == words


def test_integer_text_handles_separators_and_leading_zeros():
    assert integer_text_to_words("1,000,000") == "one million"
    assert integer_text_to_words("007") == "zero zero seven"
    assert integer_text_to_words("0") == "zero"


def test_plural_of_decades():
    assert plural_of_number_words(year_to_words(1990)) == "nineteen nineties"
    assert plural_of_number_words("nineteen hundred") == "nineteen hundreds"
