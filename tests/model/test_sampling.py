"""Sampling: validation, reproducibility, batch invariance, distribution, invalid ids."""

from __future__ import annotations

import pytest
import torch

from csmstream.model.sampling import BatchSampling, SamplingParams, sample_codes, uniform_noise


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": 0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"topk": 0}, "topk"),
        ({"topk": 2.5}, "topk"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**63}, "seed"),
        ({"seed": "7"}, "seed"),
        ({"greedy": "yes"}, "greedy"),
    ],
)
def test_bad_params_are_rejected_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**kwargs)


def test_unset_seed_is_resolved_once():
    params = SamplingParams().with_seed()
    assert params.seed is not None and params.with_seed() == params


def _logits(batch: int, vocab: int = 2051, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, vocab, generator=torch.Generator().manual_seed(seed)) * 2


def test_same_seed_same_codes_different_seed_different_codes():
    logits = _logits(1).expand(64, -1)
    same = BatchSampling.from_params([SamplingParams(seed=5)] * 64, frame_index=range(64))
    first = sample_codes(logits, same, codebook_index=3, codebook_size=2048)
    again = sample_codes(logits, same, codebook_index=3, codebook_size=2048)
    other = BatchSampling.from_params([SamplingParams(seed=6)] * 64, frame_index=range(64))
    different = sample_codes(logits, other, codebook_index=3, codebook_size=2048)
    assert torch.equal(first, again)
    assert (first != different).any()
    assert len(set(first.tolist())) > 5, "frames of one request must not all draw the same code"


def test_a_row_samples_the_same_alone_or_in_a_batch():
    logits = _logits(5)
    params = [SamplingParams(seed=s, temperature=0.5 + s / 10, topk=3 + s) for s in range(5)]
    batch = BatchSampling.from_params(params, frame_index=[4, 0, 9, 2, 2])
    together = sample_codes(logits, batch, codebook_index=7, codebook_size=2048)
    for row in range(5):
        alone = BatchSampling.from_params([params[row]], frame_index=[batch.frame_index[row].item()])
        assert sample_codes(logits[row : row + 1], alone, 7, 2048).item() == together[row].item()


def test_invalid_ids_are_never_sampled_even_when_they_dominate():
    logits = _logits(256)
    logits[:, 2048:] = 100.0  # the model "wants" the padding ids
    params = [SamplingParams(seed=s, topk=2051, temperature=5.0) for s in range(128)]
    params += [SamplingParams(greedy=True)] * 128
    codes = sample_codes(logits, BatchSampling.from_params(params), codebook_index=0, codebook_size=2048)
    assert codes.max().item() < 2048


def test_greedy_and_topk_one_take_the_argmax():
    logits = _logits(4)
    valid = logits[:, :2048].argmax(dim=-1)
    greedy = BatchSampling.from_params([SamplingParams(greedy=True)] * 4)
    top1 = BatchSampling.from_params([SamplingParams(topk=1, seed=s) for s in range(4)])
    assert torch.equal(sample_codes(logits, greedy, 0, 2048), valid)
    assert torch.equal(sample_codes(logits, top1, 0, 2048), valid)


def test_samples_follow_the_tempered_topk_distribution():
    """Frequencies over many seeds match softmax(top-k(logits) / T) within 5 standard errors."""
    vocab, topk, temperature, draws = 8, 5, 0.7, 20000
    logits = torch.tensor([[1.0, 0.2, -0.5, 2.0, 0.0, 1.5, -1.0, 0.7]])
    params = [SamplingParams(seed=s, topk=topk, temperature=temperature) for s in range(draws)]
    codes = sample_codes(logits.expand(draws, -1), BatchSampling.from_params(params), 0, vocab)
    kept = logits[0].topk(topk).indices
    expected = torch.zeros(vocab)
    expected[kept] = torch.softmax(logits[0, kept] / temperature, dim=0)
    observed = torch.bincount(codes, minlength=vocab).float() / draws
    assert observed[expected == 0].sum() == 0, "ids outside the top-k were sampled"
    standard_error = (expected * (1 - expected) / draws).sqrt()
    assert ((observed - expected).abs() <= 5 * standard_error + 1e-9).all(), f"{observed} vs {expected}"


def test_noise_is_uniform_and_independent_of_neighbours():
    seeds = torch.arange(256, dtype=torch.int64)
    u = uniform_noise(seeds, torch.zeros(256, dtype=torch.int64), 0, 2048)
    assert 0 < u.min() and u.max() < 1
    assert abs(u.mean().item() - 0.5) < 0.01 and abs(u.var().item() - 1 / 12) < 0.005
    # adjacent ids and adjacent seeds are uncorrelated
    assert abs(torch.corrcoef(torch.stack((u[:, :-1].flatten(), u[:, 1:].flatten())))[0, 1]) < 0.02
    assert abs(torch.corrcoef(torch.stack((u[:-1].flatten(), u[1:].flatten())))[0, 1]) < 0.02


def test_sampling_among_the_top_candidates_chooses_exactly_as_over_the_whole_codebook():
    """The fast path (top-N candidates, noise for those ids only) must pick the very code the full path picks."""
    import dataclasses

    from csmstream.model.sampling import BatchSampling, SamplingParams, sample_codes

    generator = torch.Generator().manual_seed(0)
    params = [
        SamplingParams(temperature=t, topk=k, seed=s, greedy=g)
        for t, k, s, g in [(0.9, 50, 1, False), (1.3, 7, 2, False), (0.5, 1, 3, False), (0.9, 30, 4, True)]
    ]
    for frame in range(20):
        logits = torch.randn(len(params), 2051, generator=generator) * 3
        fast = BatchSampling.from_params(params, frame_index=[frame] * len(params))
        assert fast.max_topk == 64, "the bound is the largest k rounded up to a power of two"
        full = dataclasses.replace(fast, max_topk=None)
        for codebook in (0, 5, 31):
            torch.testing.assert_close(
                sample_codes(logits, fast, codebook, 2048), sample_codes(logits, full, codebook, 2048)
            )
