"""How long a text may take to speak: what one unit is expected to need, and the bound on a runaway one.

CSM ends an utterance by generating an all-zero frame. A model that never does (random test weights, a bad
fine-tune, a prompt it cannot make sense of) would speak until its window is full, so every unit gets a
runaway bound derived from its own text, generous enough never to cut real speech:

    runaway_seconds(text) = RUNAWAY_MIN_SECONDS + RUNAWAY_SECONDS_PER_CHAR x spoken characters

A normal speaking rate is about 14 characters a second (150 words a minute), 0.07 s a character; the bound
allows 0.25 s a character, about 3.5 times as long, plus 3 s for a breath and a pause ("Hi." may take 3.75 s).
Characters are counted after `normalize_for_speech` when that is longer ("1999" is spoken as nineteen
ninety-nine). A unit cut by this bound ends with finish_reason `length`, never `eos`.

`expected_seconds` (the normal rate) is what the CSM engine needs room for after a text's prompt rows: a
text too long to be spoken in one window at all is refused (split it: the server's unit chain does).
"""

from __future__ import annotations

from csmstream.text.normalize import normalize_for_speech

NORMAL_CHARS_PER_SECOND = 14.0  # about 150 words a minute
RUNAWAY_SECONDS_PER_CHAR = 0.25  # about 3.5x the normal rate
RUNAWAY_MIN_SECONDS = 3.0


def spoken_chars(text: str) -> int:
    """Characters the text has when spoken: the raw text's, or its normalised words' when those are more."""
    raw = len(" ".join(text.split()))
    try:
        normalized = len(normalize_for_speech(text))
    except Exception:  # normalisation is a refinement of the estimate; never let it refuse a request
        normalized = 0
    return max(raw, normalized)


def expected_seconds(text: str) -> float:
    """About how long the text takes at a normal speaking rate."""
    return spoken_chars(text) / NORMAL_CHARS_PER_SECOND


def runaway_seconds(text: str) -> float:
    """The most one unit of this text may speak when no end of speech comes (see the module docstring)."""
    return RUNAWAY_MIN_SECONDS + RUNAWAY_SECONDS_PER_CHAR * spoken_chars(text)
