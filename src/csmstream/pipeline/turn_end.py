"""When has the user finished? A pure decider: what they said so far → how much silence ends the turn.

`server_vad`: silence alone (`silence_duration_ms`), whatever was said.
`semantic_vad`: the words decide. A finished sentence or question ends the turn after a short silence; a
trailing fragment ("What is the capital of", "and", "so um") waits long, because people pause mid-sentence to
think. Two signals:

- Rules on the transcript. A last word that cannot end an English sentence (an article, a preposition, a
  conjunction, a filler) or an open ending ("...", ",") makes a fragment whatever else is said.
- A language model's probability that the message ends after these words (`end_of_turn_model.py`), for
  what rules cannot tell: Whisper tiny.en punctuates as if every pause ended a sentence ("I would like to
  order." "Can you remind me to call?") and drops a dangling word ("How far is it from London [to]").
  Below `FRAGMENT_BELOW` the words are a fragment; from `COMPLETE_FROM` on they are complete, a statement as
  much as a question ("Tell me something interesting.").
- Whisper's own confidence: words it was unsure of (mean token log-probability below `UNSURE_LOGPROB`) are
  often a guess at speech cut mid-thought ("So um" → "So, one.", -0.8 to -1.2; complete questions -0.05 to
  -0.2), and neither the rules nor the model can read a guess: the turn waits as for unclear words.

Between the model's two bounds, or without the model (the `llm` extras missing), punctuation decides: a question ends soon; a statement waits long enough for
  a thinking pause (~600 ms) to pass, as tiny.en is generous with full stops; a sentence that opens as a
  question ("Who wrote ...", "Do you ...") is a question even when Whisper ends it with a full stop.

`eagerness` (the OpenAI names) scales the waits: "high" answers sooner and risks cutting in, "low" waits
longer; "auto" is "medium".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

TurnDetectionType = Literal["server_vad", "semantic_vad"]
Eagerness = Literal["low", "medium", "high", "auto"]
Completeness = Literal["complete", "question", "statement", "unclear", "fragment"]

# (complete or question, statement, unclear, fragment) → silence that ends the turn, ms
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
# The end-of-turn model's P(end) (see end_of_turn_model.py for the measured ranges): below this the words are a
# fragment, from the second on they are complete; between, punctuation decides.
FRAGMENT_BELOW = 0.01
COMPLETE_FROM = 0.03
UNSURE_LOGPROB = -0.5  # Whisper's mean log-probability per token below which its words are a guess
OPEN_ENDINGS = (",", "...", "…", "-", "—", ":", ";")
STATEMENT_ENDINGS = (".", "!")


def completeness(
    text: str, end_probability: float | None = None, avg_logprob: float | None = None
) -> Completeness:
    """How finished the transcript so far sounds; `end_probability` is the end-of-turn model's score of it
    (None: no model, the rules alone decide), `avg_logprob` Whisper's confidence in it (None: not known)."""
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
    if avg_logprob is not None and avg_logprob < UNSURE_LOGPROB:
        return "unclear"
    if end_probability is not None and words:
        if end_probability < FRAGMENT_BELOW:
            return "fragment"
        if end_probability >= COMPLETE_FROM:
            return "complete"
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

    def wait_ms(
        self, transcript: str | None, end_probability: float | None = None, avg_logprob: float | None = None
    ) -> float:
        """Silence after which the turn ends, given the transcript of the speech before the silence (None:
        not known yet, which waits as long as a fragment), the end-of-turn model's score of it (None: no
        model) and Whisper's confidence in it (None: not known)."""
        if not self.semantic:
            return self.silence_duration_ms
        complete_ms, statement_ms, unclear_ms, fragment_ms = SEMANTIC_WAITS_MS[self.eagerness]
        if transcript is None:
            return fragment_ms
        return {
            "complete": complete_ms,
            "question": complete_ms,
            "statement": statement_ms,
            "unclear": unclear_ms,
            "fragment": fragment_ms,
        }[completeness(transcript, end_probability, avg_logprob)]

    def turn_ended(
        self,
        transcript: str | None,
        silence_ms: float,
        end_probability: float | None = None,
        avg_logprob: float | None = None,
    ) -> bool:
        return silence_ms >= self.wait_ms(transcript, end_probability, avg_logprob)
