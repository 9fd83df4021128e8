"""normalize_for_speech: markdown, emoji, URLs, symbols and numbers → speakable text."""

from __future__ import annotations

import pytest

from csmstream.text.emoji import is_emoji
from csmstream.text.normalize import normalize_for_speech
from csmstream.text.splitter import SpeakableSplitter

CASES = [
    # markdown
    ("Some **bold**, __strong__, *italic* and _em_ text.", "Some bold, strong, italic and em text."),
    ("Use `pip install x` here.", "Use pip install x here."),
    ("```python\nprint(1)\n```", "print(one)"),
    ("# Title\nBody text.", "Title. Body text."),
    ("## Already punctuated:\nBody.", "Already punctuated: Body."),
    ("- first item\n- second item", "first item. second item."),
    ("* one thing\n+ another!", "one thing. another!"),
    ("> a quoted line", "a quoted line"),
    ("Above\n\n---\n\nBelow", "Above Below"),
    ("See [the docs](https://docs.python.org/3/) now.", "See the docs now."),
    ("![a cat](cat.png) sleeps", "a cat sleeps"),
    ("~~old~~ new", "old new"),
    ("| Name | Age |\n|---|---|\n| Ann | 30 |", "Name, Age. Ann, thirty."),
    ("snake_case_name and 2 * 3 stay meaningful", "snake_case_name and two times three stay meaningful"),
    ("#1 pick, #hashtag, C# code", "number one pick, hashtag, C# code"),
    # emoji and whitespace
    ("I ❤️ this 🎉🎉 so   much 👩‍💻!", "I this so much!"),
    ("Thumbs 👍🏽 up\n\n\n  now", "Thumbs up now"),
    # URLs and e-mail
    ("Visit https://www.example.com/a/b?c=1.", "Visit example dot com."),
    ("Docs at http://docs.python.org:8080/x, ok", "Docs at docs dot python dot org, ok"),
    ("Go to www.wikipedia.org today", "Go to wikipedia dot org today"),
    ("Mail john.doe@example.co.uk now", "Mail john dot doe at example dot co dot uk now"),
    # symbols and currency
    ("Tom & Jerry", "Tom and Jerry"),
    ("Up 50% then 3.5 %.", "Up fifty percent then three point five percent."),
    ("It costs $5.", "It costs five dollars."),
    ("Only $1!", "Only one dollar!"),
    ("Pay $5.50 or $0.99.", "Pay five dollars and fifty cents or ninety-nine cents."),
    ("$1,234.56 total", "one thousand two hundred thirty-four dollars and fifty-six cents total"),
    ("A $2.5 million deal, or $10k.", "A two point five million dollars deal, or ten thousand dollars."),
    ("€20 and £3.50", "twenty euros and three pounds and fifty pence"),
    ("It is 25°C or 77 °F.", "It is twenty-five degrees Celsius or seventy-seven degrees Fahrenheit."),
    ("2 + 2 = 4, 3×4 and 0x1F", "two plus two equals four, three times four and 0x1F"),
    ("About ~5 minutes", "About about five minutes"),
    ("e.g. apples, i.e. fruit, etc.", "for example, apples, that is, fruit, et cetera."),
    ("cats vs. dogs", "cats versus dogs"),
    # numbers
    ("Meet at 10:30, 9:05 or 12:00.", "Meet at ten thirty, nine oh five or twelve o'clock."),
    ("The 1st, 2nd, 3rd and 21st.", "The first, second, third and twenty-first."),
    ("In 1999 and since 2024.", "In nineteen ninety-nine and since twenty twenty-four."),
    ("Music of the 1980s", "Music of the nineteen eighties"),
    ("Pi is 3.14.", "Pi is three point one four."),
    ("Count 1,000,000 sheep.", "Count one million sheep."),
    ("It's -5 outside.", "It's minus five outside."),
    (
        "I have 2048 codes and 7 billion people",
        "I have two thousand forty-eight codes and seven billion people",
    ),
    ("Agent 007", "Agent zero zero seven"),
    ("Version 2.0.1", "Version two point zero point one"),
    # left alone (conservative)
    ("GPT-4 on an H100 plays mp3 files", "GPT-four on an H100 plays mp3 files"),
    ("pages 10-20, 555-1234, 1/2 and 24/7", "pages 10-20, 555-1234, 1/2 and 24/7"),
    ("Hello, how are you today? I'm fine.", "Hello, how are you today? I'm fine."),
    ("Mr. Smith met Dr. Jones.", "Mr. Smith met Dr. Jones."),
    ("", ""),
]


@pytest.mark.parametrize("text, expected", CASES)
def test_cases(text, expected):
    assert normalize_for_speech(text) == expected


@pytest.mark.parametrize("text, expected", CASES)
def test_idempotent(text, expected):
    assert normalize_for_speech(expected) == expected, "normalizing twice must change nothing more"


MARKDOWN_ANSWER = """## Photosynthesis 🌱

Plants make **food** from light, see [Wikipedia](https://en.wikipedia.org/wiki/Photosynthesis):

1. *Light* is absorbed — about 1% of it.
2. Water splits into O₂ & H⁺ at 25°C.
- `ATP` costs ~$0.01 per mole (not really) 😄

> Fun fact: it started 3,400,000,000 years ago!
"""


def test_markdown_answer_has_nothing_left_to_misread():
    spoken = normalize_for_speech(MARKDOWN_ANSWER)
    for forbidden in ("*", "#", "`", "[", "](", "http", "%", "$", "&", "\n", "  "):
        assert forbidden not in spoken, f"{forbidden!r} left in {spoken!r}"
    assert not any(is_emoji(c) for c in spoken)
    assert not any(c in "0123456789" for c in spoken), spoken
    assert "about one cent" in spoken
    assert "three billion four hundred million years ago" in spoken


def test_normalizing_units_from_the_splitter():
    splitter = SpeakableSplitter(min_chars=10)
    units = splitter.push(MARKDOWN_ANSWER) + splitter.flush()
    spoken = [normalize_for_speech(u) for u in units]
    assert all(spoken), f"every unit keeps something to say: {list(zip(units, spoken, strict=True))}"
    assert " ".join(spoken).split() == normalize_for_speech(" \n".join(units)).split()
