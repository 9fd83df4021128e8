"""A Conversation driving the real CSM engine (tiny random checkpoint): the history it builds is context the
engine accepts — the user's recorded audio (encoded by the engine) and the assistant's own generated codes."""

from __future__ import annotations

import asyncio

import numpy as np
import torch
from conversation_helpers import EventLog, ScriptedLLM

from csmstream.engine.base import SpeechEngine
from csmstream.engine.csm_engine import CsmEngine
from csmstream.model.checkpoint import load_checkpoint
from csmstream.model.sampling import SamplingParams
from csmstream.pipeline import events as ev
from csmstream.pipeline.conversation import Conversation
from csmstream.pipeline.history import AssistantTurn
from csmstream.pipeline.session import SessionConfig
from csmstream.voices.library import VoiceLibrary


class Recording(SpeechEngine):
    """Passes requests to the real engine and keeps them."""

    def __init__(self, inner: SpeechEngine) -> None:
        self.inner = inner
        self.name, self.model_name, self.sample_rate = inner.name, inner.model_name, inner.sample_rate
        self.requests = []

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    def submit(self, request):
        self.requests.append(request)
        return self.inner.submit(request)

    def stats(self):
        return self.inner.stats()


class FixedTranscriber:
    async def transcribe(self, pcm, sample_rate=24_000):
        return "tell me more"


def test_history_becomes_context_the_csm_engine_uses(tiny_checkpoint_dir, tmp_path):
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors
    checkpoint = load_checkpoint(str(tiny_checkpoint_dir), device="cpu", dtype="float32")
    engine = Recording(
        CsmEngine(
            checkpoint, VoiceLibrary(tmp_path / "voices"), max_slots=2, max_queue=4, realtime_admission=False
        )
    )
    config = SessionConfig(
        turn_detection=None,
        max_unit_seconds=0.4,  # 5 frames per unit
        sampling=SamplingParams(seed=3, temperature=0.9, topk=50),
    )

    async def scenario():
        await engine.start()
        conversation = Conversation(
            engine,
            ScriptedLLM(["The first answer is here. T", "he second one follows."]),
            None,
            config=config,
        )
        log = EventLog(conversation)
        conversation.add_user_text("Hello")
        conversation.create_response()
        await log.wait_for_type(ev.ResponseDone, timeout_s=60)
        # the user answers by voice: one second of a tone, committed by the client, transcribed
        conversation.stt = FixedTranscriber()
        tone = (0.3 * np.sin(np.arange(24_000) * 2 * np.pi * 220 / 24_000)).astype(np.float32)
        conversation.append_audio(tone)
        conversation.commit()
        await log.wait_for_type(ev.TranscriptionCompleted)
        conversation.llm = ScriptedLLM(["Third unit now."])
        conversation.create_response()
        await log.wait_for(lambda e: len(log.of_type(ev.ResponseDone)) == 2, timeout_s=60)
        await conversation.aclose()
        await engine.stop()
        return conversation, log

    try:
        conversation, log = asyncio.run(scenario())
    finally:
        torch.set_num_threads(previous_threads)

    assert [d.status for d in log.of_type(ev.ResponseDone)] == ["completed", "completed"], log.of_type(
        ev.Error
    )
    first_turn = conversation.history.turns[1]
    assert isinstance(first_turn, AssistantTurn) and len(first_turn.units) == 2
    assert all(u.codes is not None and len(u.codes) == len(u.audio) // 1920 for u in first_turn.units)
    # third request: both earlier assistant units (as their generated codes), then the user's audio
    last_context = engine.requests[-1].context
    assert [s.speaker for s in last_context] == [0, 0, 1]
    for segment, unit in zip(last_context[:2], first_turn.units, strict=True):
        assert torch.equal(segment.codes, torch.from_numpy(unit.codes))
    assert last_context[2].text == "tell me more" and last_context[2].codes is None
    assert len(last_context[2].audio) == 24_000
    assert log.of_type(ev.AudioDelta)[-1].response_id == log.of_type(ev.ResponseDone)[-1].response_id
