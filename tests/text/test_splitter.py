"""SpeakableSplitter: sentence / clause cutting of streamed text, independent of the chunking."""

from __future__ import annotations

import random

import pytest

from csmstream.text.splitter import SpeakableSplitter


def split_all(text: str, chunks: list[str] | None = None, **options) -> list[str]:
    splitter = SpeakableSplitter(**options)
    units = []
    for chunk in chunks if chunks is not None else [text]:
        units += splitter.push(chunk)
    return units + splitter.flush()


# (text, units) with no merging of short sentences, so each rule shows
CASES = [
    ("Mr. Smith is here. He left.", ["Mr. Smith is here.", "He left."]),
    ("Dr. Who? Yes.", ["Dr. Who?", "Yes."]),
    ("Use e.g. apples. Or i.e. pears.", ["Use e.g. apples.", "Or i.e. pears."]),
    ("Bring food, water, etc. and tools. Then go.", ["Bring food, water, etc. and tools.", "Then go."]),
    ("We sell pens, paper, etc. The shop is open.", ["We sell pens, paper, etc.", "The shop is open."]),
    ("The U.S. Army is large. It is old.", ["The U.S. Army is large.", "It is old."]),
    ("I moved to the U.S. The weather is nice.", ["I moved to the U.S.", "The weather is nice."]),
    ("We met at 9 a.m. today. Bye.", ["We met at 9 a.m. today.", "Bye."]),
    ("Pi is 3.14 roughly. Next.", ["Pi is 3.14 roughly.", "Next."]),
    ("It costs 1,000,000 dollars. Cheap.", ["It costs 1,000,000 dollars.", "Cheap."]),
    ("Meet at 10:30 today. Bye.", ["Meet at 10:30 today.", "Bye."]),
    ("See https://example.com/a.b?c=d. Then stop.", ["See https://example.com/a.b?c=d.", "Then stop."]),
    ("Mail john.doe@example.co.uk. Thanks!", ["Mail john.doe@example.co.uk.", "Thanks!"]),
    ("Well... maybe not. I think... I know.", ["Well... maybe not.", "I think...", "I know."]),
    ("Wait… What? Okay.", ["Wait…", "What?", "Okay."]),
    ("Great job! 🎉 Next step.", ["Great job!", "🎉 Next step."]),
    ("Great job!🎉 Next step.", ["Great job!🎉", "Next step."]),
    ("I love this 😍 so much. Yes.", ["I love this 😍 so much.", "Yes."]),
    ('He said "Hello." Then he left.', ['He said "Hello."', "Then he left."]),
    ("(This is an aside.) Next one.", ["(This is an aside.)", "Next one."]),
    ("J. R. R. Tolkien wrote it. Yes.", ["J. R. R. Tolkien wrote it.", "Yes."]),
    ("Item No. 5 is here. No. It is not.", ["Item No. 5 is here.", "No.", "It is not."]),
    ("Steps:\n1. Open it.\n2. Close it.", ["Steps:", "1. Open it.", "2. Close it."]),
    ("Version 2.0 is out. Update now.", ["Version 2.0 is out.", "Update now."]),
    ("It was approx. five. Really.", ["It was approx. five.", "Really."]),
    ("Is it? yes it is.", ["Is it?", "yes it is."]),
    ("Wow!!! Really?! Sure.", ["Wow!!!", "Really?!", "Sure."]),
    ("Hello world", ["Hello world"]),
    ("No punctuation at the end\n\nNew paragraph here", ["No punctuation at the end", "New paragraph here"]),
    ("", []),
    ("   \n ", []),
]


@pytest.mark.parametrize("text, expected", CASES)
def test_rules(text, expected):
    assert split_all(text, min_chars=0) == expected
    assert split_all(text, list(text), min_chars=0) == expected, "char by char must give the same units"


def test_short_sentences_merge_with_the_next():
    text = "Hi. Ok. This is a longer sentence here. And one more."
    assert split_all(text, min_chars=10) == ["Hi. Ok. This is a longer sentence here.", "And one more."]
    assert split_all(text, min_chars=0) == ["Hi.", "Ok.", "This is a longer sentence here.", "And one more."]


def test_short_last_unit_is_still_released():
    assert split_all("This is the first sentence. Ok.", min_chars=20) == [
        "This is the first sentence.",
        "Ok.",
    ]


def test_long_sentence_is_cut_at_clauses():
    text = (
        "This sentence is rather long, with several clauses in it; it goes on: and on and on — "
        "and on until it finally stops, somewhere near the end."
    )
    units = split_all(text, min_chars=10, max_chars=50)
    assert len(units) >= 3
    assert all(len(u) <= 50 for u in units), units
    assert all(u[-1] in ",;:—." for u in units), f"cuts should fall on clause marks: {units}"
    assert "".join(units).replace(" ", "") == text.replace(" ", "")


def test_clause_marks_inside_numbers_and_times_are_not_cuts():
    text = "We counted 1,000,000 people at 10:30 and 11:45 in the morning and nobody complained at all"
    units = split_all(text, min_chars=5, max_chars=30)
    joined = " ".join(units)
    assert "1,000,000" in joined and "10:30" in joined and "11:45" in joined
    assert all(len(u) <= 30 for u in units)


def test_without_clause_marks_cuts_between_words():
    text = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    units = split_all(text, min_chars=5, max_chars=20)
    assert all(5 <= len(u) <= 20 for u in units[:-1]) and len(units[-1]) <= 20
    assert " ".join(units).split() == text.split(), "no word may be cut"


def test_a_url_within_the_limit_is_never_cut():
    url = "https://example.com/some/path?query=1&x=2"
    text = f"Please see the page at {url} for more details about it"
    units = split_all(text, min_chars=5, max_chars=len(url) + 2)
    assert url in units, units


def test_only_a_word_longer_than_the_limit_is_cut_inside():
    url = "https://example.com/" + "x" * 80
    units = split_all(f"see {url} now and then again", min_chars=5, max_chars=30)
    assert all(len(u) <= 30 for u in units), units
    assert "".join(units).replace(" ", "") == f"see {url} now and then again".replace(" ", "")
    assert units[0] == "see", "the words before the long one stay whole"


def test_first_unit_is_released_before_the_end():
    answer = "Sure! The capital of France is Paris. It is known for the Eiffel Tower and great food."
    splitter = SpeakableSplitter(min_chars=20)
    released_at = None
    for position in range(len(answer)):
        if splitter.push(answer[position]):
            released_at = position
            break
    assert released_at is not None, "nothing was released before flush()"
    # released as soon as the next word starts (the period could have been "Paris.com" or "Dr.")
    assert answer[: released_at + 1].endswith("Paris. I")


def test_question_and_exclamation_release_without_waiting_for_the_next_word():
    splitter = SpeakableSplitter(min_chars=0)
    assert splitter.push("What a day!") == []
    assert splitter.push(" ") == ["What a day!"]
    assert splitter.push("Is it done?\n") == ["Is it done?"]


def test_period_waits_for_the_next_word():
    splitter = SpeakableSplitter(min_chars=0)
    assert splitter.push("Ask Dr. ") == [], "could be an abbreviation"
    assert splitter.push("Who. ") == []
    assert splitter.push("Then") == ["Ask Dr. Who."]
    assert splitter.pending == "Then"
    assert splitter.flush() == ["Then"]
    assert splitter.flush() == [], "flush empties the splitter"


def test_bad_limits_are_rejected():
    with pytest.raises(ValueError):
        SpeakableSplitter(min_chars=50, max_chars=10)


# ---- chunking invariance ---------------------------------------------------------------------------

FRAGMENTS = [
    "Hello there!",
    "Sure.",
    "Mr. Smith met Dr. Jones at 10:30 a.m. on Jan. 5.",
    "The U.S. Army, the U.K. navy, etc. were there.",
    "I moved to the U.S. The weather is nice.",
    "Pi is roughly 3.14159, and e is 2.718.",
    "It cost $1,000,000.50, i.e. a lot.",
    "Visit https://example.com/path?q=1&x=2. Or email me at jane.doe@example.org!",
    "Well... I think so... Maybe not…",
    "Wow 🎉! That's great 😍 news.",
    'She said, "Stop." Then she left.',
    "(An aside.) [Another one!]",
    "Here is a list:\n1. Apples\n2. Pears\n3. Plums",
    "This is a rather long sentence with many clauses, some commas, a semicolon; a colon: and even an em dash — "
    "to make sure that the clause splitter has plenty of work to do when the limit is small.",
    "Supercalifragilisticexpialidocious-is-a-very-long-hyphenated-token-without-spaces-at-all",
    "Numbers: 1, 2, 3 - and 4 – 5.",
    "What?! Really?",
    "See Fig. 3 and No. 7 for details.",
    "J. R. R. Tolkien wrote books.",
    "version 2.0.1 is out",
    "\n\n",
    "   ",
    "Ok",
]


def random_text(rng: random.Random) -> str:
    parts = [rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 9))]
    return "".join(p + rng.choice([" ", " ", "  ", "\n", ""]) for p in parts)


def random_chunks(text: str, rng: random.Random, style: str) -> list[str]:
    if style == "chars":
        return list(text)
    if style == "tokens":  # LLM-like: a leading space travels with the next word
        chunks, current = [], ""
        for char in text:
            if char.isspace() and current and not current.isspace():
                chunks.append(current)
                current = ""
            current += char
        return chunks + [current]
    chunks, start = [], 0
    while start < len(text):
        size = rng.randint(0, 7)
        chunks.append(text[start : start + size])
        start += size
    return chunks


CONFIGS = [dict(min_chars=0, max_chars=200), dict(min_chars=20, max_chars=200), dict(min_chars=10, max_chars=40),
           dict(min_chars=1, max_chars=12), dict(min_chars=30, max_chars=60)]  # fmt: skip


def cut_positions(text: str, units: list[str]) -> list[int]:
    """Where in `text` each unit but the last ends (units are stripped substrings, in order)."""
    positions, start = [], 0
    for unit in units:
        start = text.index(unit, start) + len(unit)
        positions.append(start)
    return positions[:-1]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"min{c['min_chars']}-max{c['max_chars']}")
def test_units_do_not_depend_on_chunking(config):
    rng = random.Random(1234)
    for _ in range(40):
        text = random_text(rng)
        reference = split_all(text, **config)
        for style in ("chars", "tokens", "random"):
            chunks = random_chunks(text, rng, style)
            assert "".join(chunks) == text
            assert split_all(text, chunks, **config) == reference, f"{style} chunking of {text!r}"
        # nothing is lost or invented
        assert "".join("".join(reference).split()) == "".join(text.split())
        # a unit is short only when the next word would not have fitted under max_chars
        for unit, position in zip(reference, cut_positions(text, reference), strict=False):
            if len(unit) < config["min_chars"]:
                next_word = text[position:].split()[0]
                assert len(unit) + 1 + len(next_word) > config["max_chars"], f"{unit!r} is needlessly short"
        # no unit is too long; only words longer than the limit are cut inside
        assert all(0 < len(u) <= config["max_chars"] and u == u.strip() for u in reference), reference
        for position in cut_positions(text, reference):
            if text[position - 1] != "—" and not text[position].isspace():
                word = text[:position].split()[-1] + text[position:].split()[0]
                assert len(word) > config["max_chars"], f"{word!r} was cut in {reference}"
