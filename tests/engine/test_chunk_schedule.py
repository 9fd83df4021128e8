"""When a chunk of audio goes out: the schedule, or earlier when the listener would run dry."""

from csmstream.engine.request import LOW_BUFFER_MARGIN_MS, chunk_is_due


def test_a_chunk_goes_out_early_only_when_the_listener_would_run_dry():
    schedule = (2, 4, 8, 12)
    assert chunk_is_due(12, 3, schedule) and not chunk_is_due(11, 3, schedule), "the schedule, before audio"
    assert not chunk_is_due(0, 3, schedule, 0.0, 80.0), "nothing to send"
    # fast generation (8 ms a frame): 11 frames to go take 88 ms, the listener holds 500 ms: wait for 12
    assert not chunk_is_due(1, 3, schedule, listener_buffer_ms=500.0, ms_per_frame=8.0)
    # near real time (72 ms a frame): the rest of the chunk takes 792 ms, the listener holds 500 ms: send now
    assert chunk_is_due(1, 3, schedule, listener_buffer_ms=500.0, ms_per_frame=72.0)
    # the margin: exactly enough audio is not enough
    assert chunk_is_due(
        11, 3, schedule, listener_buffer_ms=72.0 + LOW_BUFFER_MARGIN_MS - 1, ms_per_frame=72.0
    )
    assert not chunk_is_due(
        11, 3, schedule, listener_buffer_ms=72.0 + LOW_BUFFER_MARGIN_MS + 1, ms_per_frame=72.0
    )
