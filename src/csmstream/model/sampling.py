"""Choosing codes from logits: top-k + temperature, or greedy; reproducible and batch invariant.

Sampling uses the Gumbel-max trick, argmax(logits / temperature + g), with the noise g computed from a
hash of (seed, frame index, codebook index, code id). The noise of one row therefore depends on that
row's request alone, not on its neighbours in the batch nor on any generator state: the same seed gives
the same audio whether a request runs alone or beside others, and the step needs no host round trip.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

MAX_SEED = 2**63 - 1
_MASK32 = 0xFFFFFFFF
# odd multipliers below 2**31, so a 32-bit value times one never overflows int64
_MULTIPLIER_A = 0x7FEB352D
_MULTIPLIER_B = 0x2C1B3C6D


@dataclass(frozen=True)
class SamplingParams:
    """How one request chooses its codes. `seed=None` draws a fresh seed when the request starts."""

    temperature: float = 0.9
    topk: int = 50
    seed: int | None = None
    greedy: bool = False

    def __post_init__(self) -> None:
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t <= 0:
            raise ValueError(
                f"temperature must be a finite number > 0, got {t!r} (for deterministic output use greedy=True)"
            )
        if isinstance(self.topk, bool) or not isinstance(self.topk, int) or self.topk < 1:
            raise ValueError(f"topk must be an integer >= 1, got {self.topk!r}")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED
        ):
            raise ValueError(f"seed must be an integer in [0, 2**63 - 1] or None, got {self.seed!r}")
        if not isinstance(self.greedy, bool):
            raise ValueError(f"greedy must be true or false, got {self.greedy!r}")

    def with_seed(self) -> SamplingParams:
        """These params with a concrete seed (a random one when unset); call once per request."""
        return self if self.seed is not None else replace(self, seed=secrets.randbits(63))


@dataclass
class BatchSampling:
    """Per-row sampling settings of one batch, as tensors on the model's device."""

    temperature: torch.Tensor  # (B,) float32
    topk: torch.Tensor  # (B,) int64
    greedy: torch.Tensor  # (B,) bool
    seed: torch.Tensor  # (B,) int64
    frame_index: torch.Tensor  # (B,) int64: index of the frame being made within its request
    # A host-side bound on every row's top-k (e.g. the batch's largest k, rounded up to a power of two):
    # sampling then looks at that many candidates per row instead of sorting the whole codebook.
    max_topk: int | None = None

    @classmethod
    def from_params(
        cls,
        params: Sequence[SamplingParams],
        frame_index: Sequence[int] | torch.Tensor | None = None,
        device: torch.device | str | None = None,
    ) -> BatchSampling:
        """Rows from params; unset seeds get random ones (resolve them once per request with `with_seed`)."""
        params = [p.with_seed() for p in params]
        if frame_index is None:
            frame_index = [0] * len(params)
        frame_index = torch.as_tensor(frame_index, dtype=torch.int64, device=device)
        assert frame_index.shape == (len(params),), (
            f"frame_index {tuple(frame_index.shape)} != ({len(params)},)"
        )
        return cls(
            temperature=torch.tensor([p.temperature for p in params], dtype=torch.float32, device=device),
            topk=torch.tensor([p.topk for p in params], dtype=torch.int64, device=device),
            greedy=torch.tensor([p.greedy for p in params], dtype=torch.bool, device=device),
            seed=torch.tensor([p.seed for p in params], dtype=torch.int64, device=device),
            frame_index=frame_index,
            max_topk=topk_bound(p.topk for p in params),
        )

    @property
    def batch_size(self) -> int:
        return self.temperature.shape[0]


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xorshift-multiply rounds) on int64 tensors holding values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = (x * _MULTIPLIER_A) & _MASK32
    x = x ^ (x >> 15)
    x = (x * _MULTIPLIER_B) & _MASK32
    return x ^ (x >> 16)


def topk_bound(topks) -> int:
    """The smallest power of two >= every k: few distinct values, so compiled code sees few shapes."""
    largest = max(topks, default=1)
    return 1 << max(0, int(largest) - 1).bit_length()


def uniform_noise(
    seed: torch.Tensor,
    frame_index: torch.Tensor,
    codebook_index: int | torch.Tensor,
    vocab_size: int,
    ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, V) float32 uniforms in (0, 1), a pure function of (seed, frame_index, codebook_index, code id),
    for code ids 0..V-1, or for the (B, N) code ids `ids` only (the same value a code gets either way)."""
    device = seed.device
    h = _mix32(seed & _MASK32)
    h = _mix32(h ^ ((seed >> 32) & _MASK32))
    h = _mix32(h ^ (frame_index & _MASK32))
    h = _mix32(h ^ codebook_index)  # (B,)
    if ids is None:
        ids = torch.arange(vocab_size, device=device, dtype=torch.int64)[None, :]
    h = _mix32(_mix32(h[:, None] ^ ids) ^ 0x5BD1E995)  # (B, V); a second round decorrelates neighbours
    # 24 high bits: exactly representable in float32, and +0.5 keeps the value strictly inside (0, 1)
    return ((h >> 8).float() + 0.5) / float(1 << 24)


def sample_codes(
    logits: torch.Tensor, sampling: BatchSampling, codebook_index: int | torch.Tensor, codebook_size: int
) -> torch.Tensor:
    """logits (B, V) of one codebook → (B,) int64 codes in [0, codebook_size).

    Ids >= codebook_size exist in the vocabulary but are no valid codes: they are cut off first.
    """
    logits = logits[:, :codebook_size].float()  # (B, C)
    batch, vocab = logits.shape
    k = sampling.topk.clamp(1, vocab)
    if sampling.max_topk is not None and sampling.max_topk < vocab:
        return _sample_among_candidates(logits, sampling, codebook_index, k)
    # 1. top-k: keep the logits >= the k-th largest of each row (ties may keep a few more)
    kth_largest = logits.sort(dim=-1, descending=True).values.gather(-1, (k - 1)[:, None])  # (B, 1)
    allowed = logits >= kth_largest
    # 2. Gumbel-max over the tempered logits: argmax(l / T + g) is a sample of softmax(l / T)
    u = uniform_noise(sampling.seed, sampling.frame_index, codebook_index, vocab)
    gumbel = -torch.log(-torch.log(u))
    scores = logits / sampling.temperature[:, None] + gumbel
    scores = torch.where(allowed, scores, float("-inf"))
    # 3. greedy rows take the plain argmax
    scores = torch.where(sampling.greedy[:, None], logits, scores)
    return scores.argmax(dim=-1)


def _sample_among_candidates(
    logits: torch.Tensor, sampling: BatchSampling, codebook_index: int | torch.Tensor, k: torch.Tensor
) -> torch.Tensor:
    """`sample_codes` when every row's k is at most `sampling.max_topk` = N: the same choice, made among the
    N largest logits of each row only (top-k, noise and argmax over (B, N) instead of (B, C))."""
    values, ids = logits.topk(sampling.max_topk, dim=-1)  # (B, N) sorted, largest first
    kth_largest = values.gather(-1, (k.clamp(max=sampling.max_topk) - 1)[:, None])  # (B, 1)
    allowed = values >= kth_largest
    u = uniform_noise(sampling.seed, sampling.frame_index, codebook_index, logits.shape[1], ids=ids)
    scores = values / sampling.temperature[:, None] - torch.log(-torch.log(u))
    scores = torch.where(allowed, scores, float("-inf"))
    scores = torch.where(sampling.greedy[:, None], values, scores)
    return ids.gather(-1, scores.argmax(dim=-1, keepdim=True))[:, 0]
