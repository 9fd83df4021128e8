"""The playback buffer between the network and the sound card's callback."""

from __future__ import annotations

import threading

import numpy as np

from csmstream.clients.pcm_buffer import PcmBuffer


def ramp(start: int, n: int) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.int16)


def test_pull_returns_pushed_samples_in_order_across_chunks_then_silence():
    buffer = PcmBuffer()
    buffer.push(ramp(0, 5))
    buffer.push(ramp(5, 3))
    assert buffer.pending_samples == 8
    np.testing.assert_array_equal(buffer.pull(4), ramp(0, 4))
    np.testing.assert_array_equal(buffer.pull(6), np.concatenate([ramp(4, 4), np.zeros(2, np.int16)]))
    assert buffer.pending_samples == 0 and buffer.played_samples == 8
    np.testing.assert_array_equal(buffer.pull(3), np.zeros(3, np.int16))
    assert buffer.played_samples == 8, "silence is not counted as played"


def test_clear_drops_what_was_not_played():
    buffer = PcmBuffer()
    buffer.push(ramp(0, 10))
    buffer.pull(4)
    assert buffer.clear() == 6
    assert buffer.pending_samples == 0 and buffer.dropped_samples == 6
    np.testing.assert_array_equal(buffer.pull(2), np.zeros(2, np.int16))
    buffer.push(ramp(100, 2))
    np.testing.assert_array_equal(buffer.pull(2), ramp(100, 2), err_msg="the buffer works after a clear")


def test_push_copies_so_the_caller_may_reuse_its_array():
    buffer = PcmBuffer()
    samples = ramp(0, 4)
    buffer.push(samples)
    samples[:] = 0
    np.testing.assert_array_equal(buffer.pull(4), ramp(0, 4))


def test_concurrent_push_and_pull_lose_and_reorder_nothing():
    buffer = PcmBuffer()
    total = 20_000
    pulled: list[np.ndarray] = []

    def consumer() -> None:
        while buffer.played_samples < total:
            block = buffer.pull(97)
            pulled.append(block)

    thread = threading.Thread(target=consumer)
    thread.start()
    for start in range(0, total, 250):
        buffer.push((np.arange(start, start + 250) % 30000 + 1).astype(np.int16))  # never 0: 0 marks silence
    thread.join(timeout=30)
    assert not thread.is_alive(), "the consumer finished"
    audio = np.concatenate(pulled)
    audio = audio[audio != 0]  # drop the silence of moments the consumer ran dry
    np.testing.assert_array_equal(audio, (np.arange(total) % 30000 + 1).astype(np.int16))
