"""Words that end in a period without ending a sentence.

Three kinds, because a period after them means different things:
- titles and Latin abbreviations that always lead into more text ("Mr. Smith", "e.g. apples");
- abbreviations that may also end a sentence ("… and so on, etc. The next …", "in the U.S. Then …"),
  and dotted initialisms: a boundary only when the next word is one that typically starts a sentence
  ("in the U.S. The" ends, "the U.S. Army" does not);
- abbreviations that precede a number ("No. 5", "Fig. 3"): no boundary when a digit follows.
Lower-case, without the final period.
"""

from __future__ import annotations

import re

NEVER_FINAL: frozenset[str] = frozenset(
    {
        "mr", "mrs", "ms", "mx", "dr", "prof", "st", "rev", "hon", "gen", "col", "lt", "sgt", "capt",
        "cpt", "cmdr", "adm", "gov", "sen", "rep", "pres", "supt", "mt", "ft", "messrs", "mme", "mlle",
        "e.g", "i.e", "cf", "vs", "viz", "approx", "esp", "incl", "dept",
    }
)  # fmt: skip

MAYBE_FINAL: frozenset[str] = frozenset(
    {
        "etc", "inc", "ltd", "co", "corp", "jr", "sr", "bros", "llc", "plc", "al", "a.m", "p.m", "u.s", "u.k",
        "u.n", "e.u", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    }
)  # fmt: skip

BEFORE_NUMBER: frozenset[str] = frozenset(
    {"no", "nos", "vol", "vols", "fig", "figs", "p", "pp", "ch", "sec", "art", "op", "nr"}
)

# dotted initialisms: U.S, Ph.D, a.k.a (the final period is not part of the word here)
DOTTED_INITIALISM = re.compile(r"^(?:[A-Za-z]{1,2}\.)+[A-Za-z]{1,2}$")

# capitalised words that usually start a sentence, for the ambiguous cases above
SENTENCE_STARTERS: frozenset[str] = frozenset(
    {
        "The", "A", "An", "This", "That", "These", "Those", "It", "Its", "It's", "I", "I'm", "I've", "I'll",
        "We", "You", "He", "She", "They", "There", "Here", "In", "On", "At", "But", "And", "So", "Or", "If",
        "When", "Then", "However", "Also", "For", "To", "As", "My", "Our", "Your", "His", "Her", "Their",
        "What", "Why", "How", "Who", "Where", "Which", "Yes", "No", "Now", "Today", "After", "Before",
        "Since", "While", "Although", "Some", "Many", "Most", "All", "Each", "Every", "Let's", "Please",
        "Overall", "Finally", "First", "Second", "Next", "Meanwhile", "Still", "Yet", "Thus", "Therefore",
    }
)  # fmt: skip
