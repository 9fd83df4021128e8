"""What was said so far: user turns (their audio and transcript) and assistant turns (spoken units with the
audio and codes the speech model generated), and how it becomes the LLM's messages and the speech model's
context.

Context policy for the speech model (CSM conditions each utterance on earlier audio, which keeps the voice
and prosody consistent): walk back from the newest segment and keep segments while both limits hold — at
most `max_turns` turns and `max_audio_seconds` of audio — stopping at the first that would break one, so
the kept context is always a contiguous recent stretch. The units already spoken in the response being
generated come first (they are the newest). Turns without audio (typed text) are left to the LLM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from csmstream.engine.request import FRAME_SAMPLES, SAMPLE_RATE
from csmstream.model.tokenizer import Segment
from csmstream.pipeline.llm.base import ChatMessage

# Speaking rate used to guess how much of a unit's text was heard when its total length is not known yet.
SAMPLES_PER_CHAR_ESTIMATE = SAMPLE_RATE // 14  # ≈ 14 characters per second of speech


@dataclass(frozen=True)
class ContextPolicy:
    max_turns: int = 6  # earlier turns (user or assistant) given to the speech model
    max_audio_seconds: float = 40.0  # and at most this much of their audio (CSM has 2048 rows ≈ 164 s)
    max_llm_turns: int = 40  # turns given to the LLM


@dataclass
class UserTurn:
    item_id: str
    text: str  # the transcript ("" until transcription completes) or the typed text
    audio: np.ndarray | None = None  # (S,) float32 24 kHz; None for typed text


@dataclass
class SpokenUnit:
    """One speakable piece of an assistant turn (a sentence or clause), as it was synthesized.

    After barge-in, `heard_samples` limits it to what the user heard: audio, codes and text are cut to match.
    """

    text: str  # as the LLM wrote it
    spoken_text: str  # as the speech model was given it (normalised)
    chunks: list[np.ndarray] = field(default_factory=list)  # (S,) float32 24 kHz, in order
    codes_full: np.ndarray | None = None  # (T, K) every generated frame, set when synthesis finishes
    finished: bool = False  # synthesis ran to its end (eos or length)
    heard_samples: int | None = None  # None: all of it counts
    # the share of the text heard, fixed when the unit is cut: a cancelled synthesis may still finish
    # afterwards (its codes are collected), and the kept text must not change under the client's feet
    heard_text_fraction: float | None = None

    @property
    def generated_samples(self) -> int:
        return sum(len(c) for c in self.chunks)

    @property
    def num_samples(self) -> int:
        n = self.generated_samples
        return n if self.heard_samples is None else min(n, self.heard_samples)

    @property
    def audio(self) -> np.ndarray:
        """(S,) float32: the audio that counts."""
        audio = np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.float32)
        return audio[: self.num_samples]

    @property
    def codes(self) -> np.ndarray | None:
        """(T, K) codes of the frames that count: only whole frames that were heard."""
        if self.codes_full is None or self.heard_samples is None:
            return self.codes_full
        return self.codes_full[: self.heard_samples // FRAME_SAMPLES]

    def _heard_fraction(self) -> float:
        if self.heard_samples is None:
            return 1.0
        if self.heard_text_fraction is not None:
            return self.heard_text_fraction
        total = (
            self.generated_samples
            if self.finished
            else max(self.generated_samples, len(self.spoken_text) * SAMPLES_PER_CHAR_ESTIMATE)
        )
        return min(1.0, self.heard_samples / total) if total else 0.0

    @property
    def heard_text(self) -> str:
        return _first_words(self.text, self._heard_fraction())

    @property
    def heard_spoken_text(self) -> str:
        return _first_words(self.spoken_text, self._heard_fraction())


def _first_words(text: str, fraction: float) -> str:
    if fraction >= 1.0:
        return text
    words = text.split()
    return " ".join(words[: round(len(words) * fraction)])


@dataclass
class AssistantTurn:
    item_id: str
    units: list[SpokenUnit] = field(default_factory=list)
    truncated: bool = False
    text_only: bool = False  # written, not spoken: its units have text but no audio (nothing to truncate)

    @property
    def text(self) -> str:
        return " ".join(t for t in (u.heard_text for u in self.units) if t)

    @property
    def num_samples(self) -> int:
        return sum(u.num_samples for u in self.units)

    def truncate(self, played_samples: int) -> None:
        """Keep only the first `played_samples` of the turn's audio: later units go, the unit playing at that
        point is cut (audio to the sample, codes to whole frames, text in proportion). A text-only turn has
        no audio to cut: it keeps what was written."""
        if self.text_only:
            return
        played_samples = max(0, played_samples)
        offset = 0
        kept: list[SpokenUnit] = []
        for unit in self.units:
            available = unit.num_samples
            heard = played_samples - offset
            if heard <= 0:
                break
            if heard >= available and unit.finished:
                kept.append(unit)
                offset += available
                continue
            unit.heard_samples = min(heard, available)
            unit.heard_text_fraction = None
            unit.heard_text_fraction = unit._heard_fraction()
            if unit.heard_samples >= FRAME_SAMPLES:  # less than 80 ms heard is nothing worth keeping
                kept.append(unit)
            break
        if len(kept) != len(self.units) or any(u.heard_samples is not None for u in kept):
            self.truncated = True
        self.units = kept


Turn = UserTurn | AssistantTurn


class History:
    """The turns of one conversation, oldest first."""

    def __init__(self) -> None:
        self.turns: list[Turn] = []

    def add(self, turn: Turn) -> None:
        self.turns.append(turn)

    def remove(self, turn: Turn) -> None:
        if turn in self.turns:
            self.turns.remove(turn)

    def find(self, item_id: str) -> Turn | None:
        return next((t for t in self.turns if t.item_id == item_id), None)

    def llm_messages(
        self, instructions: str | None, policy: ContextPolicy, before: Turn | None = None
    ) -> list[ChatMessage]:
        """System prompt + the last `max_llm_turns` turns (before `before`, when given) as chat messages.

        Consecutive turns of one role are merged (two user utterances without an answer between them), since
        many chat templates require user and assistant to alternate. Empty turns are skipped.
        """
        turns = (
            self.turns
            if before is None or before not in self.turns
            else self.turns[: self.turns.index(before)]
        )
        messages: list[ChatMessage] = []
        for turn in turns[-policy.max_llm_turns :]:
            role = "user" if isinstance(turn, UserTurn) else "assistant"
            text = turn.text.strip()
            if not text:
                continue
            if messages and messages[-1]["role"] == role:
                messages[-1]["content"] += " " + text
            else:
                messages.append({"role": role, "content": text})
        if instructions:
            messages.insert(0, {"role": "system", "content": instructions})
        return messages

    def speech_context(
        self,
        policy: ContextPolicy,
        *,
        user_speaker: int,
        assistant_speaker: int,
        current: AssistantTurn | None = None,
    ) -> tuple[Segment, ...]:
        """Segments for the next utterance of `current` (its own earlier units first), oldest first."""
        budget_samples = int(policy.max_audio_seconds * SAMPLE_RATE)
        newest_first: list[Segment] = []
        used_samples = 0

        def fits(num_samples: int) -> bool:
            return used_samples + num_samples <= budget_samples

        if current is not None:
            for unit in reversed(current.units):
                if unit.num_samples == 0:
                    continue
                if not fits(unit.num_samples):
                    return tuple(reversed(newest_first))
                newest_first.append(_unit_segment(unit, assistant_speaker))
                used_samples += unit.num_samples

        earlier = [t for t in self.turns if t is not current]
        turns_used = 0
        for turn in reversed(earlier):
            if turns_used >= policy.max_turns:
                break
            if isinstance(turn, UserTurn):
                if turn.audio is None or len(turn.audio) == 0 or not turn.text.strip():
                    continue  # typed text, or nothing recognised: nothing the speech model can align
                if not fits(len(turn.audio)):
                    break
                newest_first.append(Segment(user_speaker, turn.text, audio=turn.audio))
                used_samples += len(turn.audio)
            else:
                units = [u for u in turn.units if u.num_samples > 0]
                turn_samples = sum(u.num_samples for u in units)
                if not units:
                    continue
                if not fits(turn_samples):
                    break
                newest_first.extend(_unit_segment(u, assistant_speaker) for u in reversed(units))
                used_samples += turn_samples
            turns_used += 1
        return tuple(reversed(newest_first))


def _unit_segment(unit: SpokenUnit, speaker: int) -> Segment:
    codes = unit.codes
    # The generated codes spare the engine re-encoding this audio; Segment takes them as a (T, K) int64 tensor.
    codes_tensor = (
        torch.from_numpy(np.ascontiguousarray(codes, dtype=np.int64))
        if codes is not None and len(codes)
        else None
    )
    return Segment(speaker, unit.heard_spoken_text, audio=unit.audio, codes=codes_tensor)
