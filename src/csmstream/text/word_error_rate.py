"""Word error rate between what should have been said and what a recogniser heard.

Both texts are made comparable first: numbers, symbols and abbreviations in words (`normalize_for_speech`, so
"9" and "nine" agree), lower case, punctuation dropped."""

from __future__ import annotations

import re

from csmstream.text.normalize import normalize_for_speech


def comparable_words(text: str) -> list[str]:
    spoken = normalize_for_speech(text).lower().replace("-", " ")
    return re.sub(r"[^a-z0-9' ]+", " ", spoken).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + insertions + deletions) / words in `reference`; 1.0 for an empty reference unless the
    hypothesis is empty too (0.0)."""
    ref, hyp = comparable_words(reference), comparable_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    distance = list(range(len(hyp) + 1))  # edit distance of ref[:i] to every prefix of hyp
    for i, ref_word in enumerate(ref, 1):
        diagonal, distance[0] = distance[0], i
        for j, hyp_word in enumerate(hyp, 1):
            diagonal, distance[j] = (
                distance[j],
                min(distance[j] + 1, distance[j - 1] + 1, diagonal + (ref_word != hyp_word)),
            )
    return distance[len(hyp)] / len(ref)
