"""When each stage of one answered turn happened, in ms after the end of the user's speech.

The user's speech ended where the silence that ended the turn began; on a live (1×) stream that moment is
the wall-clock time at which the end was detected minus the silence waited for. The stages, in order:

  speech_end_detected   the turn-end decision (VAD silence or the semantic decider)
  transcript_final      the user's words are known
  llm_first_token       the LLM's first text
  first_unit_to_voice   the first speakable unit is handed to the speech engine
  first_audio_out       the first assistant audio is sent

A response that no spoken turn started (a typed message, a client's `response.create`) counts from its
creation instead, without the first two stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STAGES = (
    "speech_end_detected",
    "transcript_final",
    "llm_first_token",
    "first_unit_to_voice",
    "first_audio_out",
)


@dataclass
class TurnTimings:
    origin_s: float  # clock time of the end of the user's speech (or of the response's creation)
    marks_s: dict[str, float] = field(default_factory=dict)  # stage → clock time

    def mark(self, stage: str, now_s: float) -> None:
        """Record a stage the first time it happens."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        self.marks_s.setdefault(stage, now_s)

    def as_ms(self) -> dict[str, float]:
        """stage → ms after the origin, in stage order, for the stages that happened."""
        return {
            stage: round((self.marks_s[stage] - self.origin_s) * 1000.0, 1)
            for stage in STAGES
            if stage in self.marks_s
        }
