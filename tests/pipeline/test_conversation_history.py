"""The pure parts of a conversation: cutting a turn to what was heard, the context policy, the LLM messages,
the playback estimate and the input buffer."""

from __future__ import annotations

import numpy as np
import pytest
from conversation_helpers import ManualClock

from csmstream.engine.request import FRAME_SAMPLES
from csmstream.pipeline.history import AssistantTurn, ContextPolicy, History, SpokenUnit, UserTurn
from csmstream.pipeline.input_buffer import InputAudioBuffer
from csmstream.pipeline.playback import PlaybackClock


def unit(text: str, num_frames: int, finished: bool = True) -> SpokenUnit:
    audio = np.linspace(-0.5, 0.5, num_frames * FRAME_SAMPLES, dtype=np.float32)
    codes = np.tile(np.arange(num_frames)[:, None], (1, 32)) if finished else None
    return SpokenUnit(text=text, spoken_text=text, chunks=[audio], codes_full=codes, finished=finished)


def test_truncate_keeps_whole_units_then_cuts_the_one_playing():
    turn = AssistantTurn(
        "a", [unit("One two three four.", 10), unit("Five six seven eight.", 10), unit("Nine.", 5)]
    )
    turn.truncate(10 * FRAME_SAMPLES + 5 * FRAME_SAMPLES + 100)
    assert turn.truncated and len(turn.units) == 2
    first, second = turn.units
    assert first.heard_samples is None and first.text == "One two three four."
    assert len(second.audio) == 5 * FRAME_SAMPLES + 100
    assert len(second.codes) == 5
    assert second.heard_text == "Five six"  # half the audio → half the words
    assert turn.text == "One two three four. Five six"
    assert turn.num_samples == 15 * FRAME_SAMPLES + 100


def test_truncate_beyond_the_end_changes_nothing_and_a_tiny_remainder_is_dropped():
    turn = AssistantTurn("a", [unit("Hello there.", 4), unit("Bye now.", 4)])
    turn.truncate(100 * FRAME_SAMPLES)
    assert not turn.truncated and turn.text == "Hello there. Bye now."
    turn.truncate(4 * FRAME_SAMPLES + 300)  # 12 ms of the second unit: not worth keeping
    assert turn.truncated and [u.text for u in turn.units] == ["Hello there."]
    turn.truncate(0)
    assert turn.units == [] and turn.text == ""


def test_a_unit_still_generating_estimates_the_heard_words_from_its_text():
    still_going = unit("A rather long sentence that was still being generated here.", 3, finished=False)
    turn = AssistantTurn("a", [still_going])
    turn.truncate(3 * FRAME_SAMPLES)
    assert len(turn.units) == 1
    heard = turn.units[0].heard_text
    assert heard and len(heard.split()) < len(still_going.text.split())


def test_speech_context_walks_back_within_both_limits():
    history = History()
    for i in range(4):
        history.add(UserTurn(f"u{i}", f"question {i}", audio=np.zeros(24_000, dtype=np.float32)))  # 1 s
        history.add(AssistantTurn(f"a{i}", [unit(f"Answer {i}.", 25)]))  # 2 s
    current = AssistantTurn("now", [unit("Earlier part.", 25)])
    history.add(current)

    def texts(policy: ContextPolicy) -> list[str]:
        segments = history.speech_context(policy, user_speaker=1, assistant_speaker=0, current=current)
        return [s.text for s in segments]

    assert texts(ContextPolicy(max_turns=2, max_audio_seconds=100)) == [
        "question 3",
        "Answer 3.",
        "Earlier part.",
    ]
    # 2 s (current) + 2 s (answer 3) + 1 s (question 3) = 5 s; answer 2 would make 7 s
    assert texts(ContextPolicy(max_turns=10, max_audio_seconds=6)) == [
        "question 3",
        "Answer 3.",
        "Earlier part.",
    ]
    assert texts(ContextPolicy(max_turns=0, max_audio_seconds=100)) == ["Earlier part."]
    segments = history.speech_context(ContextPolicy(), user_speaker=1, assistant_speaker=0, current=current)
    assert {s.speaker for s in segments if s.text.startswith("question")} == {1}
    assert {s.speaker for s in segments if not s.text.startswith("question")} == {0}
    assert all(s.codes is not None and s.codes.shape[1] == 32 for s in segments if s.speaker == 0)


def test_llm_messages_merge_roles_and_skip_empty_turns():
    history = History()
    history.add(UserTurn("u1", "Hi."))
    history.add(UserTurn("u2", "Are you there?"))
    history.add(AssistantTurn("a1", []))  # an answer cut before anything was heard
    history.add(UserTurn("u3", ""))  # nothing recognised
    history.add(AssistantTurn("a2", [unit("Yes, I am here.", 3)]))
    messages = history.llm_messages("persona", ContextPolicy())
    assert messages == [
        {"role": "system", "content": "persona"},
        {"role": "user", "content": "Hi. Are you there?"},
        {"role": "assistant", "content": "Yes, I am here."},
    ]
    assert history.llm_messages(None, ContextPolicy(max_llm_turns=1)) == messages[2:]


def test_playback_clock_plays_at_real_time_and_waits_when_starved():
    clock = ManualClock()
    playback = PlaybackClock(24_000, clock)
    assert playback.played_samples() == 0 and not playback.playing()
    playback.sent(12_000)  # 0.5 s at t=0
    clock.now += 0.25
    assert playback.played_samples() == 6_000 and playback.playing()
    clock.now += 0.75  # ran dry at t=0.5
    assert playback.played_samples() == 12_000 and not playback.playing()
    playback.sent(24_000)  # playback resumes now, at t=1.0
    clock.now += 0.5
    assert playback.played_samples() == 12_000 + 12_000
    playback.sent(24_000)  # queued behind: does not restart the clock
    clock.now += 1.0
    assert playback.played_samples() == 12_000 + 36_000


def test_input_buffer_slices_by_absolute_position():
    buffer = InputAudioBuffer(sample_rate=1000, max_seconds=5)
    for i in range(10):
        buffer.append(np.full(300, i, dtype=np.float32))  # 3 s in all
    assert np.array_equal(buffer.slice(250, 350), np.array([0] * 50 + [1] * 50, dtype=np.float32))
    buffer.drop_before(1000)
    assert buffer.start_sample == 1000 and buffer.num_samples == 2000
    assert len(buffer.slice(0, 1100)) == 100  # clamped to what is kept
    for _ in range(10):
        buffer.append(np.zeros(300, dtype=np.float32))
    assert buffer.num_samples == 5000, "older audio beyond max_seconds is forgotten"
    assert len(buffer.take_all()) == 5000 and buffer.num_samples == 0


@pytest.mark.parametrize("frames", [1, 7])
def test_heard_codes_are_whole_frames(frames):
    u = unit("Some words here.", 10)
    u.heard_samples = frames * FRAME_SAMPLES + FRAME_SAMPLES - 1
    assert len(u.codes) == frames


def test_the_kept_text_of_a_cut_unit_does_not_change_when_its_synthesis_finishes_later():
    """After a barge-in the cancelled synthesis may still run to its end (its codes are collected): the text
    the client was told it kept (response.done) must be the text the history keeps afterwards."""
    text = "one two three four five six seven eight nine ten"
    unit = SpokenUnit(text=text, spoken_text=text, chunks=[np.zeros(1920 * 10, np.float32)])
    turn = AssistantTurn(item_id="item_1", units=[unit])
    turn.truncate(1920 * 5)
    told = turn.text
    assert told and len(told.split()) < len(text.split()), told
    unit.finished = True  # the drained synthesis reached its length limit after the cut
    unit.codes_full = np.zeros((10, 32), np.int64)
    assert turn.text == told
