"""Helpers of the runner tests: streams of a tiny checkpoint driven through `ModelRunner` like the engine does."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from csmstream.engine.runner import ModelRunner
from csmstream.model.sampling import SamplingParams


@dataclass
class Stream:
    """One session: its slot, prompt and sampling; the frames the runner made for it so far."""

    slot: int
    prompt_rows: int
    sampling: SamplingParams
    codes: list[np.ndarray] = field(default_factory=list)  # (K,) per frame
    pcm: list[np.ndarray] = field(default_factory=list)  # (S,) per frame

    @property
    def position(self) -> int:
        return self.prompt_rows + len(self.codes)

    def all_codes(self) -> np.ndarray:
        return np.stack(self.codes)

    def all_pcm(self) -> np.ndarray:
        return np.concatenate(self.pcm)


def text_prompt(seed: int, num_rows: int, text_vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens, mask (T, 33) of random text rows."""
    ids = torch.randint(0, text_vocab, (num_rows,), generator=torch.Generator().manual_seed(seed))
    tokens = torch.zeros(num_rows, 33, dtype=torch.int64)
    mask = torch.zeros(num_rows, 33, dtype=torch.bool)
    tokens[:, 32] = ids
    mask[:, 32] = True
    return tokens, mask


def start_stream(runner: ModelRunner, slot: int, prompt_rows: int, sampling: SamplingParams) -> Stream:
    """Start a session in `slot`: its settings, then its prompt prefilled (seeded by slot and length)."""
    text_vocab = runner.model.config.text_vocab_size
    tokens, mask = text_prompt(seed=100 * slot + prompt_rows, num_rows=prompt_rows, text_vocab=text_vocab)
    runner.start_slot(slot, sampling)
    runner.prefill(slot, tokens, mask, 0, True)
    return Stream(slot=slot, prompt_rows=prompt_rows, sampling=sampling)


def step(runner: ModelRunner, streams: list[Stream]) -> None:
    """One batched frame for `streams`, kept in each stream (as the engine's `_run_step` calls the runner)."""
    out = runner.step(
        [s.slot for s in streams], [s.position for s in streams], [len(s.codes) for s in streams]
    )
    for i, stream in enumerate(streams):
        stream.codes.append(out.codes[i])
        stream.pcm.append(out.pcm[i])


def assert_same_frames(actual: Stream, expected: Stream) -> None:
    """Equal codes, and the same audio up to float rounding (a frame decoded in another batch)."""
    np.testing.assert_array_equal(actual.all_codes(), expected.all_codes())
    reference = expected.all_pcm()
    rms = float(np.sqrt(np.mean(reference**2)))
    assert rms > 0, "the reference audio is silent: the comparison would prove little"
    np.testing.assert_allclose(actual.all_pcm(), reference, rtol=0, atol=1e-5 * rms)
