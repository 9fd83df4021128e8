"""The end-of-turn model (pipeline/end_of_turn_model.py): the bundled SmolLM2's probability that the user's
message ends after these words separates finished utterances from unfinished ones, on sentences written for
this test (not those its bounds were chosen on, nor the bench's); a score does not depend on what was scored
before (the system prompt's KV cache is rewound, not reused dirty); scores are memoised per transcript, and a
failed score leaves the decision to the rules."""

from __future__ import annotations

import asyncio
import logging

import pytest

from csmstream.pipeline.end_of_turn_model import (
    MAX_WORDS,
    EndOfTurnModel,
    EndOfTurnScores,
    load_end_of_turn_model,
    message_words,
)
from csmstream.pipeline.turn_end import COMPLETE_FROM, FRAGMENT_BELOW

COMPLETE = [
    "Could you turn the volume down a little?",
    "What's the best way to learn Spanish?",
    "I'd like a glass of water, please.",
    "When does the museum open on Sundays?",
    "Please add milk to my shopping list.",
    "How old is the Eiffel Tower?",
    "I had a really good weekend.",
    "Which planet is closest to the sun?",
    "Can you recommend a good Italian restaurant?",
    "We should leave in five minutes.",
    "Why is the sky blue?",
    "Open the garage door.",
    "I'm not sure about that.",
    "What's on my calendar tomorrow?",
    "That was a great movie.",
    "How do you spell necessary?",
]
# unfinished, each ending in a word that a sentence can end on (the rules cannot tell these)
INCOMPLETE = [
    "Could you recommend?",
    "What's the fastest way to get?",
    "I'd like to buy.",
    "When does the next bus?",
    "Please add.",
    "I had a really.",
    "Which one of these?",
    "Can you find me?",
    "We should probably.",
    "Why does my phone keep?",
    "I'm trying to remember.",
    "What's the name of that?",
    "Do you happen to know?",
    "How do you?",
]


@pytest.fixture(scope="module")
def model() -> EndOfTurnModel:
    loaded = load_end_of_turn_model()
    if loaded is None:
        pytest.skip("the end-of-turn model needs the llm and llm-model extras")
    return loaded


def test_finished_utterances_score_above_unfinished_ones(model):
    complete = {text: model.probability(text) for text in COMPLETE}
    incomplete = {text: model.probability(text) for text in INCOMPLETE}
    pairs = [(c, i) for c in complete.values() for i in incomplete.values()]
    ranked_right = sum(c > i for c, i in pairs) / len(pairs)
    assert ranked_right >= 0.95, (complete, incomplete)
    # the bounds turn_end.py uses: few finished utterances read as fragments, few unfinished ones as complete
    read_as_fragment = [t for t, p in complete.items() if p < FRAGMENT_BELOW]
    read_as_complete = [t for t, p in incomplete.items() if p >= COMPLETE_FROM]
    assert len(read_as_fragment) <= 2, (read_as_fragment, complete)
    assert len(read_as_complete) <= 1, (read_as_complete, incomplete)


def test_a_score_does_not_depend_on_what_was_scored_before(model):
    text = "Can you set an alarm for seven tomorrow?"
    first = model.probability(text)
    model.probability("the weather in Spain is mostly sunny in the summer and mild in the winter, so")
    assert model.probability(text) == pytest.approx(first, abs=1e-6)
    assert EndOfTurnModel(model.path).probability(text) == pytest.approx(first, abs=1e-3)


def test_the_model_reads_words_not_punctuation_or_case(model):
    assert message_words("Can you, um... CALL?") == "can you um call"
    assert model.probability("Can you remind me to call?") == pytest.approx(
        model.probability("can you remind me to call"), abs=1e-9
    )
    assert model.probability("...") == 0.0  # nothing said
    long_turn = " ".join(["word"] * (MAX_WORDS + 25)) + " and then"
    assert len(message_words(long_turn).split()) == MAX_WORDS  # its end decides; the context stays bounded
    assert 0.0 <= model.probability(long_turn) <= 1.0


class _CountingModel:
    def __init__(self, score: float | None = 0.5) -> None:
        self.calls: list[str] = []
        self.score = score

    def probability(self, transcript: str) -> float:
        self.calls.append(transcript)
        if self.score is None:
            raise RuntimeError("llama.cpp failed")
        return self.score


def test_scores_are_computed_once_per_transcript_and_pending_until_done():
    async def scenario():
        fake = _CountingModel(0.42)
        scores = EndOfTurnScores(fake)  # type: ignore[arg-type]
        assert scores.probability("Is it cold?") == (False, None)  # started, not done
        for _ in range(50):
            await asyncio.sleep(0.01)
            if scores.probability("Is it cold?")[0]:
                break
        assert scores.probability("is it cold") == (True, 0.42)  # the same words: no second call
        return fake.calls

    assert asyncio.run(scenario()) == ["is it cold"]


def test_a_failed_score_leaves_the_decision_to_the_rules_and_is_logged_once(caplog):
    async def scenario():
        scores = EndOfTurnScores(_CountingModel(None))  # type: ignore[arg-type]
        scores.probability("Is it cold?")
        await asyncio.sleep(0.1)
        return [scores.probability("Is it cold?") for _ in range(3)]

    with caplog.at_level(logging.WARNING, logger="csmstream.pipeline.end_of_turn_model"):
        results = asyncio.run(scenario())
    assert results == [(True, None)] * 3
    assert len([r for r in caplog.records if "failed" in r.getMessage()]) == 1
