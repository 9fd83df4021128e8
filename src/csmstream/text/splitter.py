"""Cut an LLM's streamed answer into units that can be spoken one after another.

    splitter = SpeakableSplitter()
    for delta in llm_stream:
        for unit in splitter.push(delta):   # ready now: synthesize while the LLM keeps writing
            speak(unit)
    for unit in splitter.flush():           # the end of the answer
        speak(unit)

A unit is one sentence, or several short ones merged (a unit shorter than `min_chars` makes speech
stutter), or, when a sentence runs past `max_chars`, a clause of it (cut at , ; : or a dash, else
between words). No unit is longer than `max_chars`: only a single word longer than that (a giant URL)
is ever cut inside. The first unit is released as soon as it is complete.

The result does not depend on how the text is chunked (token by token, character by character, all
at once): `boundaries.scan` only reports cuts that no later text can change, and `_next_unit` only
releases a unit when no later text could make a different choice. See the reasoning at each step.
"""

from __future__ import annotations

from csmstream.text.boundaries import Cut, scan

DEFAULT_MIN_CHARS = 20
DEFAULT_MAX_CHARS = 200


class SpeakableSplitter:
    def __init__(self, min_chars: int = DEFAULT_MIN_CHARS, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        if not 0 <= min_chars <= max_chars or max_chars < 1:
            raise ValueError(
                f"need 0 <= min_chars <= max_chars and max_chars >= 1, got {min_chars}, {max_chars}"
            )
        self.min_chars = min_chars
        self.max_chars = max_chars
        self._buffer = ""  # text received and not yet released; never starts with whitespace

    @property
    def pending(self) -> str:
        """Text received but not yet released as a unit."""
        return self._buffer

    def push(self, delta: str) -> list[str]:
        """Add text; return the units that are complete now (often none)."""
        self._buffer = (self._buffer + delta).lstrip()
        return self._drain(final=False)

    def flush(self) -> list[str]:
        """The text is complete: return every remaining unit and start over empty."""
        units = self._drain(final=True)
        assert not self._buffer, "flush must release everything"
        return units

    def _drain(self, final: bool) -> list[str]:
        units = []
        while self._buffer:
            end = self._next_unit(self._buffer, final)
            if end is None:
                break
            unit = self._buffer[:end].strip()
            self._buffer = self._buffer[end:].lstrip()
            if unit:
                units.append(unit)
        return units

    def _next_unit(self, text: str, final: bool) -> int | None:
        """Where the first unit of `text` ends, or None if that depends on text not received yet."""
        # 1. the first sentence cut that makes a long enough unit; a short sentence merges with the next.
        #    Scanning stops at an undecided candidate; `lower_bound` = the least length a unit ending at or
        #    after it could have (its punctuation is non-space, so the unit reaches past it).
        cuts: list[Cut] = []
        lower_bound: int | None = None
        over_long = False
        for cut in scan(text, final):
            if not cut.decided:
                lower_bound = cut.start + 1
                break
            cuts.append(cut)
            if cut.kind != "sentence" or not cut.is_cut:
                continue
            length = _unit_length(text, cut.end)
            if length >= self.min_chars:
                if length <= self.max_chars:
                    return cut.end
                over_long = True  # the sentence (with any merged short ones) is too long: cut it smaller
                break
        if not over_long:
            if final:
                # 2a. the end of the text ends the last unit, unless that unit is too long
                if _unit_length(text, len(text)) <= self.max_chars:
                    return len(text)
            else:
                # 2b. any later cut ends at or beyond `lower_bound` (or beyond the text received); only
                #     when even that is too long do we know the sentence must be cut smaller
                if lower_bound is None:
                    lower_bound = _unit_length(text, len(text))  # a word break right after the text
                if lower_bound <= self.max_chars:
                    return None
        # 3. the sentence is too long; every cut of length <= max_chars is known and decided.
        #    Take the longest clause within [min_chars, max_chars] ...
        best = None
        for cut in cuts:
            if cut.is_cut and self.min_chars <= _unit_length(text, cut.end) <= self.max_chars:
                best = cut.end
        if best is not None:
            return best
        # 4. ... else the last word break within [min_chars, max_chars], else any last word break
        #    (a short unit, but whole words) ...
        word_ends = [end for end in _word_ends(text, self.max_chars)]
        in_range = [end for end in word_ends if end >= self.min_chars]
        if in_range or word_ends:
            return (in_range or word_ends)[-1]
        # 5. ... else the first word alone is longer than max_chars (a long URL, a hash): cut it at the
        #    limit, so that no unit is ever longer than max_chars
        return self.max_chars


def _unit_length(text: str, end: int) -> int:
    return len(text[:end].rstrip())


def _word_ends(text: str, limit: int):
    """Positions <= limit where a whitespace run begins (= the length of the text before it), in order."""
    for position in range(1, min(len(text), limit + 1)):
        if text[position].isspace() and not text[position - 1].isspace():
            yield position
