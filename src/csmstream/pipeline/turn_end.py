"""When has the user finished? A pure decider: what they said so far → how much silence ends the turn.

`server_vad`: silence alone (`silence_duration_ms`), whatever was said.
`semantic_vad`: the words decide. A question ("What is the capital of Germany?") ends the turn after a short
silence; a trailing fragment ("What is the capital of", "and", "so um") waits long, because people pause
mid-sentence to think. Whisper's punctuation carries the signal, but tiny.en is generous with full stops:
measured on piper speech paused for 600 ms mid-sentence, it wrote "I would like to order." and "So one."
(for "so um"). So a statement waits longer than a question, long enough for a thinking pause (~600 ms) to
pass, and a last word that cannot end an English sentence (an article, a preposition, a conjunction, a
filler) makes it a fragment whatever its punctuation. A sentence that opens as a question ("Who wrote ...",
"Do you ...") is a question even when Whisper ends it with a full stop. A question mark after a fragment
("Can you remind me to call?") still ends the turn early: telling that apart needs a model of the words, not
rules (SmolLM2-135M's probability of ending the user's message after it, 0.40, is as high as after complete
questions, 0.05-0.70: it does not tell them apart either).

`eagerness` (the OpenAI names) scales the waits: "high" answers sooner and risks cutting in, "low" waits
longer; "auto" is "medium".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

TurnDetectionType = Literal["server_vad", "semantic_vad"]
Eagerness = Literal["low", "medium", "high", "auto"]
Completeness = Literal["question", "statement", "unclear", "fragment"]

# (question, statement, unclear, fragment) → silence that ends the turn, ms
SEMANTIC_WAITS_MS: dict[str, tuple[float, float, float, float]] = {
    "high": (200.0, 500.0, 600.0, 900.0),
    "medium": (250.0, 700.0, 800.0, 1200.0),
    "low": (400.0, 1000.0, 1000.0, 1500.0),
}
SEMANTIC_WAITS_MS["auto"] = SEMANTIC_WAITS_MS["medium"]

# Words after which an English sentence (almost) never ends: the speaker is mid-thought. Words that often
# end a short answer ("I do", "it is", "thank you", "I think so") are left out on purpose.
TRAILING_FRAGMENT_WORDS = frozenset(
    """a an the of to for from with into onto than and or but because if although though unless
    my your his her its our their um uh er erm hmm""".split()
)
# Openers that are a fragment when nothing else was said yet ("So.", "Well,"), though "I think so." is not.
LONE_OPENERS = frozenset({"so", "well", "like", "okay so", "and so"})
# A sentence that opens as a question (a wh-word, or an auxiliary before its subject) is a question whatever
# punctuation Whisper gave it: tiny.en often ends "Who wrote the book Pride and Prejudice" with a full stop.
QUESTION_OPENERS = frozenset(
    """what where when who whom whose which why how is are was were am do does did can could will would
    should shall may might must have has had""".split()
)
OPEN_ENDINGS = (",", "...", "…", "-", "—", ":", ";")
STATEMENT_ENDINGS = (".", "!")


def completeness(text: str) -> Completeness:
    """How finished the transcript so far sounds."""
    stripped = text.strip()
    if not stripped:
        return "unclear"
    words = re.findall(r"[a-z0-9']+", stripped.lower())
    if words and words[-1] in TRAILING_FRAGMENT_WORDS:
        return "fragment"
    if all(w in TRAILING_FRAGMENT_WORDS or w in LONE_OPENERS for w in words):  # "So, um." / "Well."
        return "fragment"
    if stripped.endswith(OPEN_ENDINGS):
        return "fragment"
    if stripped.endswith("?"):
        return "question"
    if stripped.endswith(STATEMENT_ENDINGS):
        return "question" if words[0] in QUESTION_OPENERS else "statement"
    return "unclear"


@dataclass(frozen=True)
class TurnEndPolicy:
    """The turn-detection settings that decide when a pause ends the turn."""

    type: TurnDetectionType = "server_vad"
    silence_duration_ms: float = 500.0  # server_vad's one wait
    eagerness: Eagerness = "auto"

    def __post_init__(self) -> None:
        if self.type not in ("server_vad", "semantic_vad"):
            raise ValueError(f"turn detection type must be server_vad or semantic_vad, got {self.type!r}")
        if self.eagerness not in SEMANTIC_WAITS_MS:
            raise ValueError(f"eagerness must be low, medium, high or auto, got {self.eagerness!r}")

    @property
    def semantic(self) -> bool:
        return self.type == "semantic_vad"

    @property
    def max_wait_ms(self) -> float:
        """The longest silence any transcript can need: the VAD's own backstop."""
        return SEMANTIC_WAITS_MS[self.eagerness][3] if self.semantic else self.silence_duration_ms

    def wait_ms(self, transcript: str | None) -> float:
        """Silence after which the turn ends, given the transcript of the speech before the silence (None:
        not known yet, which waits as long as a fragment)."""
        if not self.semantic:
            return self.silence_duration_ms
        question_ms, statement_ms, unclear_ms, fragment_ms = SEMANTIC_WAITS_MS[self.eagerness]
        if transcript is None:
            return fragment_ms
        return {
            "question": question_ms,
            "statement": statement_ms,
            "unclear": unclear_ms,
            "fragment": fragment_ms,
        }[completeness(transcript)]

    def turn_ended(self, transcript: str | None, silence_ms: float) -> bool:
        return silence_ms >= self.wait_ms(transcript)
