"""Numbers as words, the way an American English speaker reads them aloud.

    number_to_words(1_234_567)  → "one million two hundred thirty-four thousand five hundred sixty-seven"
    decimal_to_words("3.14")    → "three point one four"
    ordinal_to_words(21)        → "twenty-first"
    year_to_words(1999)         → "nineteen ninety-nine"
Integers up to the trillions; longer digit strings (phone numbers, ids) are read digit by digit.
"""

from __future__ import annotations

ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")  # fmt: skip
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
MAX_WORDED = 10**15 - 1  # beyond this, digits are read one by one

# cardinal ending → ordinal ending, for the last word only
_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                  "nine": "ninth", "twelve": "twelfth"}  # fmt: skip


def _below_thousand(n: int) -> list[str]:
    assert 0 <= n < 1000, f"{n} is not below a thousand"
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(TENS[tens] + (f"-{ONES[ones]}" if ones else ""))
    elif rest:
        words.append(ONES[rest])
    return words


def number_to_words(n: int) -> str:
    """An integer → words ("minus" for negatives); digit by digit beyond the trillions."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n > MAX_WORDED:
        return digits_to_words(str(n))
    if n == 0:
        return "zero"
    words: list[str] = []
    for scale, name in SCALES:
        count, n = divmod(n, scale)
        if count:
            words += _below_thousand(count) + [name]
    words += _below_thousand(n)
    return " ".join(words)


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
    words = number_to_words(n)
    head, _, last = words.rpartition(" ")
    stem, hyphen, unit = last.rpartition("-")
    if unit in _ORDINAL_WORDS:
        unit = _ORDINAL_WORDS[unit]
    elif unit.endswith("y"):
        unit = unit[:-1] + "ieth"
    else:
        unit += "th"
    last = stem + hyphen + unit
    return f"{head} {last}" if head else last


def year_to_words(year: int) -> str:
    """1999 → "nineteen ninety-nine", 1900 → "nineteen hundred", 2005 → "two thousand five", 2024 → "twenty twenty-four"."""
    if not 1000 <= year <= 9999 or 2000 <= year <= 2009 or year % 1000 == 0:
        return number_to_words(year)
    century, rest = divmod(year, 100)
    if rest == 0:
        return f"{number_to_words(century)} hundred"
    if rest < 10:
        return f"{number_to_words(century)} oh {ONES[rest]}"
    return f"{number_to_words(century)} {number_to_words(rest)}"


def plural_of_number_words(words: str) -> str:
    """ "nineteen ninety" → "nineteen nineties" (for "the 1990s")."""
    if words.endswith("y"):
        return words[:-1] + "ies"
    return words + ("es" if words.endswith("x") else "s")
