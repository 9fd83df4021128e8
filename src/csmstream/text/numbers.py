"""Numbers as words, the way an American English speaker reads them aloud.

    number_to_words(1_234_567)  → "one million two hundred thirty-four thousand five hundred sixty-seven"
    decimal_to_words("3.14")    → "three point one four"
    ordinal_to_words(21)        → "twenty-first"
    year_to_words(1999)         → "nineteen ninety-nine"
Integers up to the trillions; longer digit strings (phone numbers, ids) are read digit by digit.

The spelling itself is `num2words`'s (lang "en"); it writes British English ("one hundred and one",
commas between groups), so `_american` drops the "and"s and the commas. What is ours is only the policy:
when to read digit by digit, decimals read digit by digit after "point", plurals of decades.
"""

from __future__ import annotations

from num2words import num2words

ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MAX_WORDED = 10**15 - 1  # beyond this, digits are read one by one


def _american(words: str) -> str:
    """num2words' British English → American: "one hundred and one, ..." → "one hundred one ..."."""
    return words.replace(",", "").replace(" and ", " ").replace("oh-", "oh ")


def number_to_words(n: int) -> str:
    """An integer → words ("minus" for negatives); digit by digit beyond the trillions."""
    if abs(n) > MAX_WORDED:
        return ("minus " if n < 0 else "") + digits_to_words(str(abs(n)))
    return _american(num2words(n, lang="en"))


def digits_to_words(digits: str) -> str:
    """ "007" → "zero zero seven"; non-digits are dropped."""
    return " ".join(ONES[int(d)] for d in digits if d.isdigit())


def decimal_to_words(text: str) -> str:
    """ "3.14" → "three point one four"; "-0.5" → "minus zero point five"; "2.0.1" → "two point zero point one"."""
    negative = text.startswith("-")
    whole, *fractions = text.lstrip("-").split(".")
    words = [integer_text_to_words(whole or "0")] + [digits_to_words(f) for f in fractions if f]
    return ("minus " if negative else "") + " point ".join(words)


def integer_text_to_words(digits: str) -> str:
    """Digits as written ("1,000", "007", "42") → words; leading zeros and very long runs digit by digit."""
    plain = digits.replace(",", "")
    if not plain.isdigit():
        return digits
    if len(plain) > 1 and plain.startswith("0") or int(plain) > MAX_WORDED:
        return digits_to_words(plain)
    return number_to_words(int(plain))


def ordinal_to_words(n: int) -> str:
    """21 → "twenty-first", 100 → "one hundredth"."""
    assert n >= 0, f"no ordinal for the negative number {n}"
    return _american(num2words(n, lang="en", to="ordinal"))


def year_to_words(year: int) -> str:
    """1999 → "nineteen ninety-nine", 1900 → "nineteen hundred", 2005 → "two thousand five", 2024 → "twenty twenty-four"."""
    if not 1000 <= year <= 9999:  # num2words would read 999 as "nine ninety-nine"
        return number_to_words(year)
    return _american(num2words(year, lang="en", to="year"))


def plural_of_number_words(words: str) -> str:
    """ "nineteen ninety" → "nineteen nineties" (for "the 1990s")."""
    if words.endswith("y"):
        return words[:-1] + "ies"
    return words + ("es" if words.endswith("x") else "s")
