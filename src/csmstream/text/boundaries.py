"""Where a text may be cut into speakable units: sentence ends, clause breaks, line breaks.

`scan(text, final)` walks the text left to right and yields `Cut` candidates in order. A candidate
whose fate depends on characters not received yet (the word after "Dr.", whether "." becomes "...")
is yielded as undecided and the scan stops there: everything yielded before it can never change
when more text arrives. That is what makes the streaming splitter independent of how the text is
chunked. With `final=True` the text is complete and every candidate is decided.

Rules, in brief:
- "." "!" "?" "…" (runs of them, then closing quotes/brackets/emoji) end a sentence only when
  followed by whitespace: "3.14", "example.com", "a@b.co", "?q=1" never split;
- "!" and "?" end a sentence at once; "." looks at the next word: abbreviations (Mr., e.g., No. 5,
  U.S.), initials ("J. Smith"), list markers at the start of a line ("1. ") and a lower-case next
  word mean "not the end"; an ellipsis ends a sentence only before a capital;
- a line break ends a sentence;
- clause breaks (used only to cut sentences that are too long): ", " "; " ": " (so "1,000" and
  "10:30" are not breaks), em dashes, and spaced hyphens / en dashes (" - ", " – ").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from csmstream.text.abbreviations import (
    BEFORE_NUMBER,
    DOTTED_INITIALISM,
    MAYBE_FINAL,
    NEVER_FINAL,
    SENTENCE_STARTERS,
)
from csmstream.text.emoji import is_emoji

TERMINATORS = frozenset(".!?…")
CLAUSE_MARKS = frozenset(",;:")
CLOSERS = frozenset("\"'”’»)]}")
OPENERS = "\"'“‘«([{"
SPACED_DASHES = frozenset("-–")
EM_DASH = "—"

CutKind = Literal["sentence", "clause"]


@dataclass(frozen=True, slots=True)
class Cut:
    """A place to cut: the unit is `text[:end]` (right-stripped), the rest starts after it."""

    kind: CutKind
    end: int
    decided: bool = True
    is_cut: bool = True  # False: decided, and decided *not* to cut here (kept for completeness)
    start: int = 0  # where the deciding punctuation begins (for undecided candidates: how far is known)


def scan(text: str, final: bool) -> Iterator[Cut]:
    """Candidates in order of position; stops after the first undecided one."""
    n = len(text)
    i = 0
    while i < n:
        char = text[i]
        if char in TERMINATORS:
            cut, i = _terminator(text, i, final)
        elif char == "\n":
            cut, i = Cut("sentence", i, start=i), i + 1
        elif char in CLAUSE_MARKS:
            cut, i = _clause_mark(text, i, final)
        elif char == EM_DASH:
            cut, i = Cut("clause", i + 1, start=i), i + 1
        elif char in SPACED_DASHES and i > 0 and text[i - 1].isspace():
            cut, i = _spaced_dash(text, i, final)
        else:
            i += 1
            continue
        if cut is None:
            continue
        yield cut
        if not cut.decided:
            return


def _skip_closers(text: str, k: int) -> int:
    while k < len(text) and (text[k] in CLOSERS or is_emoji(text[k])):
        k += 1
    return k


def _terminator(text: str, i: int, final: bool) -> tuple[Cut | None, int]:
    n = len(text)
    # 1. the run of terminators and what closes it: `."` `?!)` `…🙂`
    j = i
    while j < n and text[j] in TERMINATORS:
        j += 1
    k = _skip_closers(text, j)
    if k == n:  # the run might grow ("." → "..."), closers might follow
        return (Cut("sentence", n, start=i) if final else Cut("sentence", n, decided=False, start=i)), n
    if not text[k].isspace():
        return None, j  # "3.14", "example.com", "e.g.x", "?q=1": inside a token
    run = text[i:j]
    if "!" in run or "?" in run:
        return Cut("sentence", k, start=i), k
    # 2. periods and ellipses need the next word
    m = k
    while m < n and text[m].isspace():
        m += 1
    if m == n:
        return (Cut("sentence", k, start=i) if final else Cut("sentence", k, decided=False, start=i)), k
    if len(run) > 1 or "…" in run:
        ends: bool | None = text[m].isupper()  # "Well... maybe" goes on; "I see... Then" ends
    else:
        ends = _period_ends_sentence(text, i, m, final)
    if ends is None:
        return Cut("sentence", k, decided=False, start=i), k
    return Cut("sentence", k, is_cut=ends, start=i), k


def _period_ends_sentence(text: str, period: int, next_start: int, final: bool) -> bool | None:
    """Does the "." at `period` end a sentence, the next word starting at `next_start`? None: can't tell yet."""
    next_char = text[next_start]
    token_start = period
    while token_start > 0 and not text[token_start - 1].isspace():
        token_start -= 1
    word = text[token_start:period].lstrip(OPENERS)
    lowered = word.lower()
    if _starts_line(text, token_start) and (
        word.isdigit() and len(word) <= 3 or (len(word) == 1 and word.isalpha())
    ):
        return False  # a list marker: "1. Buy milk", "a. first option"
    if lowered in NEVER_FINAL:
        return False
    if len(word) == 1 and word.isupper():
        return False  # an initial: "J. R. R. Tolkien"
    if lowered in BEFORE_NUMBER and next_char.isdigit():
        return False  # "No. 5", "Fig. 3"
    if lowered in MAYBE_FINAL or DOTTED_INITIALISM.match(word):
        if not next_char.isupper():
            return False  # "a.m. tomorrow"
        next_word_end = next_start
        while next_word_end < len(text) and (text[next_word_end].isalpha() or text[next_word_end] in "'’"):
            next_word_end += 1
        if next_word_end == len(text) and not final:
            return None  # "U.S. Th" could become "The" or "Thames"
        return text[next_start:next_word_end].replace("’", "'") in SENTENCE_STARTERS
    return not next_char.islower()


def _starts_line(text: str, position: int) -> bool:
    before = text[:position].rstrip(" \t")
    return before == "" or before.endswith("\n")


def _clause_mark(text: str, i: int, final: bool) -> tuple[Cut | None, int]:
    n = len(text)
    k = _skip_closers(text, i + 1)
    if k == n:
        return (Cut("clause", n, start=i) if final else Cut("clause", n, decided=False, start=i)), n
    if not text[k].isspace():
        return None, i + 1  # "1,000", "10:30", "https://"
    return Cut("clause", k, start=i), k


def _spaced_dash(text: str, i: int, final: bool) -> tuple[Cut | None, int]:
    n = len(text)
    j = i
    while j < n and text[j] in SPACED_DASHES:
        j += 1
    if j == n:
        return (None if final else Cut("clause", n, decided=False, start=i)), n
    if not text[j].isspace() or j - i > 2:
        return None, j  # "-5", "well-known" (no space before), "----" rules
    return Cut("clause", j, start=i), j
