"""The settings of one conversation; the realtime handler builds one from the client's `session.update`."""

from __future__ import annotations

from dataclasses import dataclass, field

from csmstream.audio.constants import SAMPLE_RATE
from csmstream.errors import BadRequest
from csmstream.model.sampling import SamplingParams
from csmstream.pipeline.history import ContextPolicy
from csmstream.pipeline.llm.persona import DEFAULT_PERSONA
from csmstream.pipeline.turn_end import Eagerness, TurnDetectionType, TurnEndPolicy
from csmstream.pipeline.vad import VadConfig


@dataclass(frozen=True)
class TurnDetection:
    """Server-side VAD: when the user starts and stops talking, and what happens then.

    `type` "server_vad": a turn ends after `silence_duration_ms` of silence. "semantic_vad": after a
    silence that depends on what was said (`turn_end.py`), scaled by `eagerness`."""

    type: TurnDetectionType = "server_vad"
    eagerness: Eagerness = "auto"  # semantic_vad only: low, medium, high, auto
    threshold: float = 0.5  # speech probability that starts speech
    prefix_padding_ms: int = 300  # audio kept before the detected onset (soft first consonants)
    silence_duration_ms: int = 500  # silence that ends the user's turn
    min_speech_ms: int = 250  # shorter sounds are noise, not speech
    create_response: bool = True  # answer automatically when a turn ends
    interrupt_response: bool = True  # barge-in: the user speaking cuts the assistant off

    def __post_init__(self) -> None:
        if self.prefix_padding_ms < 0:
            raise BadRequest("prefix_padding_ms must be ≥ 0")
        try:
            self.turn_end_policy()
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        self.vad_config()  # validates the rest

    def turn_end_policy(self) -> TurnEndPolicy:
        return TurnEndPolicy(
            type=self.type, silence_duration_ms=float(self.silence_duration_ms), eagerness=self.eagerness
        )

    def vad_config(self) -> VadConfig:
        return VadConfig(
            threshold=self.threshold,
            min_speech_ms=float(self.min_speech_ms),
            # semantic_vad: the VAD's own silence rule is only the backstop of the decider's longest wait
            silence_duration_ms=self.turn_end_policy().max_wait_ms,
        )


@dataclass(frozen=True)
class SessionConfig:
    instructions: str = DEFAULT_PERSONA  # the LLM's system prompt
    voice_id: str | None = None  # None: the engine's default voice
    assistant_speaker: int = 0  # CSM speaker id of the assistant (in requests and in context)
    user_speaker: int = 1  # CSM speaker id given to the user's audio in context
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)  # None: the client commits
    input_sample_rate: int = SAMPLE_RATE  # of the audio given to `append_audio`
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_unit_seconds: float | None = None  # per synthesized unit; None: the engine's default
    context: ContextPolicy = field(default_factory=ContextPolicy)
    # answers in text only (the realtime `modalities: ["text"]`): nothing is synthesized, no engine slot used
    text_only: bool = False

    def __post_init__(self) -> None:
        if self.input_sample_rate <= 0:
            raise BadRequest(f"input_sample_rate must be positive, got {self.input_sample_rate}")
