"""Generation always has its rows: a long voice reference plus context never leaves a unit only a few frames.

The prompt keeps `reserve_rows` (the frames the unit may make) free; earlier turns / units give way first,
then the voice references; the text to speak always stays.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
import torch

from csmstream.engine.csm_engine import CsmEngine
from csmstream.engine.events import Finished
from csmstream.engine.request import SynthesisRequest
from csmstream.engine.speech_length import runaway_seconds
from csmstream.errors import TextTooLong
from csmstream.model.checkpoint import load_checkpoint
from csmstream.model.tokenizer import Segment, TextTokenizer, build_prompt
from csmstream.voices.library import VoiceLibrary

K = 32
TEXT = "Hello there."


@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoint_dir) -> TextTokenizer:
    return TextTokenizer.from_file(tiny_checkpoint_dir / "tokenizer.json")


def coded(speaker: int, text: str, frames: int, value: int = 1) -> Segment:
    return Segment(speaker, text, codes=torch.full((frames, K), value, dtype=torch.int64))


def rows_of(tokenizer: TextTokenizer, segment: Segment) -> int:
    return len(tokenizer.segment_ids(segment.speaker, segment.text)) + segment.codes.shape[0] + 1


def test_turns_give_way_first_then_references_and_the_text_always_stays(tokenizer):
    reference = coded(1, "This is how I sound.", 150)
    turns = [coded(0, "An earlier turn.", 60, 2), coded(1, "A later turn.", 60, 3)]
    text_rows = len(tokenizer.segment_ids(1, TEXT))
    ref_rows, turn_rows = rows_of(tokenizer, reference), [rows_of(tokenizer, t) for t in turns]
    everything = text_rows + ref_rows + sum(turn_rows)

    def build(max_rows: int, reserve_rows: int):
        return build_prompt(
            tokenizer,
            [reference, *turns],
            1,
            TEXT,
            None,
            max_rows,
            num_reference_segments=1,
            reserve_rows=reserve_rows,
        )

    # without a reservation everything fits and generation would get only a few rows
    assert build(everything + 2, 0).num_rows == everything
    # with one, the turns give way (newest kept while it fits) ...
    reserve = 80
    prompt = build(everything + 2, reserve)
    assert prompt.num_rows + reserve <= everything + 2
    assert prompt.num_references_kept == 1, "the reference stays while only turns need to give way"
    assert prompt.num_context_segments == 1 + (
        text_rows + ref_rows + turn_rows[1] + reserve <= everything + 2
    )
    # ... then the reference too, when it alone is more than what is left
    small = text_rows + reserve + ref_rows - 1
    prompt = build(small, reserve)
    assert prompt.num_references_kept == 0 and prompt.num_rows + reserve <= small
    # the text always stays, even when it leaves less than the reservation (generation gets what is left)
    prompt = build(text_rows + 5, reserve)
    assert prompt.num_rows == text_rows and prompt.num_context_segments == 0
    with pytest.raises(TextTooLong):
        build(text_rows - 1, 0)


def test_a_long_voice_and_context_still_leave_the_unit_its_reserved_rows(tiny_checkpoint_dir, tmp_path):
    checkpoint = load_checkpoint(str(tiny_checkpoint_dir), device="cpu", dtype="float32")
    voices = VoiceLibrary(tmp_path / "voices")
    t = np.arange(24000 * 12) / 24000  # 12 s of reference: 150 frames
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    voices.create("long", "Long", 1, [(audio, 24000, "This is how I sound, at some length.")])
    context = (coded(0, "An earlier turn of the conversation.", 60, 2), coded(1, "My answer to it.", 60, 3))
    frames = math.ceil(runaway_seconds(TEXT) * 12.5)  # what the unit may make (random weights use it all)
    max_rows = 320  # the voice + context + text would leave just a few frames of it without a reservation

    engine = CsmEngine(checkpoint, voices, max_slots=1, max_rows=max_rows, realtime_admission=False)
    built = []
    real_build = engine.prompts.build

    def spy(request, voice, reserve_rows=0):
        prompt = real_build(request, voice, reserve_rows=reserve_rows)
        full = real_build(request, voice, reserve_rows=0)  # what the old policy would have kept
        built.append((prompt.num_rows, full.num_rows))
        return prompt

    engine.prompts.build = spy

    async def main():
        await engine.start()
        try:
            handle = engine.submit(SynthesisRequest(text=TEXT, voice_id="long", context=context))
            return [event async for event in handle.events()]
        finally:
            await engine.stop()

    events = asyncio.run(main())
    done = events[-1]
    assert isinstance(done, Finished) and done.finish_reason == "length", done
    ((prompt_rows, full_rows),) = built
    assert max_rows - full_rows < frames, "the test must put the unit at risk: voice + context nearly fill it"
    assert prompt_rows + frames <= max_rows, "the prompt leaves the unit's reserved rows free"
    assert done.audio_seconds == pytest.approx(frames * 0.08), "the unit made all the frames it may make"
