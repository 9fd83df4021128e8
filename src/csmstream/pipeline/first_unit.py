"""The answer's first speakable unit, cut short: its first clause, so the voice starts sooner.

The speech engine speaks a unit only once it has all of it, and on the CPU voice the time to its first audio
grows with the unit's length (piper on 2 shared cores: "Sure," 0.24 s, "Sure, here is a short answer."
0.73 s). The listener waits only for the first unit; the later ones are synthesized while earlier ones play.
So the first unit ends at the first clause end (, ; : . ! ?) once it holds a word, or after
`FIRST_UNIT_MAX_WORDS` words at a word break when none came sooner; the rest of the answer goes through the
ordinary `SpeakableSplitter`. The word-count cut can leave a short second unit ("The capital of France" |
"is Paris."), spoken right after the first: with the bundled LLM it took the median first audio from about
1.3 s (6 words) to 0.85 s (4 words) on this machine (`bench/conversation.py`).
"""

from __future__ import annotations

import re

from csmstream.text.splitter import SpeakableSplitter

FIRST_UNIT_MAX_WORDS = 4
MIN_LETTERS = 2  # a lone "I," or "-" is not worth a unit of its own

# a clause mark followed by white space: the mark is known to end the clause ("3.5" or "e.g.x" do not)
_CLAUSE_END = re.compile(r"[,;:.!?](?=\s)")


def first_unit_end(text: str) -> int | None:
    """Where the first unit of `text` (the answer so far) ends, or None when that is not known yet."""
    for match in _CLAUSE_END.finditer(text):
        if sum(c.isalpha() for c in text[: match.end()]) >= MIN_LETTERS:
            return match.end()
    words = list(re.finditer(r"\S+(?=\s)", text))
    if len(words) >= FIRST_UNIT_MAX_WORDS:
        return words[FIRST_UNIT_MAX_WORDS - 1].end()
    return None


class FirstClauseSplitter:
    """`SpeakableSplitter`'s interface; the first unit is cut by `first_unit_end`, the rest by `rest`."""

    def __init__(self, rest: SpeakableSplitter | None = None) -> None:
        self._rest = rest or SpeakableSplitter()
        self._first: str | None = ""  # the first unit so far; None once it was released

    def push(self, delta: str) -> list[str]:
        if self._first is None:
            return self._rest.push(delta)
        self._first = (self._first + delta).lstrip()
        end = first_unit_end(self._first)
        if end is None:
            return []
        unit, rest = self._first[:end].strip(), self._first[end:]
        self._first = None
        return [unit, *self._rest.push(rest)]

    def flush(self) -> list[str]:
        if self._first:  # the whole answer was shorter than a first unit
            self._rest.push(self._first)
        self._first = None
        return self._rest.flush()
