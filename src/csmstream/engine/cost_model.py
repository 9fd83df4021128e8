"""Step time as a function of batch size, fitted from measurements. Pure Python: no tensors, no clock.

The engine measures every batched step; the scheduler asks what a step of B streams would cost. On any
device a step is close to affine in the batch, `fixed_ms + per_stream_ms · B`: the fixed part is reading the
weights and launching kernels (an eager GPU step is launch-bound, nearly flat up to large batches), the
per-stream part is the arithmetic each row adds (on a CPU nearly all of it). Assuming cost ∝ B instead
forbids batching exactly where it is free.

How the fit stays current and robust:
  - per batch size, an exponentially-decayed mean of its measured steps, so a sudden slow-down shows within a
    few steps; a size measured rarely or long ago takes a new measurement almost as is;
  - one wild measurement (a recompile, a pause of the process) is clipped to `spike_factor` × what was
    expected, so it cannot make the scheduler refuse everyone for the next dozen steps;
  - the affine fit is weighted least squares over those means: sizes measured often and recently weigh most;
    stale sizes keep a small floor weight, so the slope still spans every size ever measured instead of
    resting on two neighbouring, noisy batch sizes;
  - the slope is never negative (more streams never cost less; a negative slope is noise) and neither is
    the fixed part;
  - one batch size only: the cost is taken as flat. That is a guess, used only to probe: `capacity` never
    counts more than one stream past the largest batch measured. The scheduler admits that one, the next
    step measures it, and the fit then has a slope.

A warm-up that measures a few batch sizes before traffic is just a series of `observe` calls: it seeds the
fit, and the probe limit then lies at the largest size warmed up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class AffineCost:
    """Predicted step time `fixed_ms + per_stream_ms · batch_size`."""

    fixed_ms: float
    per_stream_ms: float

    def at(self, batch_size: int) -> float:
        return self.fixed_ms + self.per_stream_ms * batch_size


@dataclass
class _BatchMeasure:
    mean_ms: float  # exponentially-decayed mean of the steps measured at this batch size
    weight: float  # decayed count of those measurements, as of observation number `at_observation`
    at_observation: int


class StepCostModel:
    def __init__(
        self,
        *,
        mean_alpha: float = 0.3,  # weight of a new measurement in its batch size's mean
        weight_decay: float = 0.97,  # per observation (any size): a weight halves in ~23 steps (~2 s)
        floor_weight: float = 0.2,  # the least a measured size weighs in the fit, however stale
        spike_factor: float = 4.0,  # a measurement is clipped to this many times what was expected
    ):
        assert 0.0 < mean_alpha <= 1.0, f"mean_alpha must be in (0, 1], got {mean_alpha}"
        assert 0.0 < weight_decay < 1.0, f"weight_decay must be in (0, 1), got {weight_decay}"
        assert floor_weight > 0.0, f"floor_weight must be positive, got {floor_weight}"
        assert spike_factor > 1.0, f"spike_factor must exceed 1, got {spike_factor}"
        self.mean_alpha = mean_alpha
        self.weight_decay = weight_decay
        self.floor_weight = floor_weight
        self.spike_factor = spike_factor
        self._by_batch: dict[int, _BatchMeasure] = {}
        self._num_observations = 0
        self._last_batch_size = 0
        self._fit: AffineCost | None = None  # cached until the next observation

    # ---- measurements --------------------------------------------------------------------------------
    def observe(self, batch_size: int, step_ms: float) -> None:
        """One measured step of `batch_size` streams."""
        assert batch_size >= 1, f"a step has at least one stream, got batch_size={batch_size}"
        assert math.isfinite(step_ms) and step_ms >= 0.0, f"step time must be a finite ms >= 0, got {step_ms}"
        expected_ms = self._expected_ms(batch_size)
        if expected_ms is not None and expected_ms > 0.0:
            step_ms = min(step_ms, self.spike_factor * expected_ms)
        self._num_observations += 1
        measure = self._by_batch.get(batch_size)
        if measure is None:
            self._by_batch[batch_size] = _BatchMeasure(step_ms, 1.0, self._num_observations)
        else:
            weight = self._decayed_weight(measure)
            # a bias-corrected mean: with little recent weight the new value mostly replaces an old mean
            alpha = max(self.mean_alpha, 1.0 / (weight + 1.0))
            measure.mean_ms += alpha * (step_ms - measure.mean_ms)
            measure.weight = weight + 1.0
            measure.at_observation = self._num_observations
        self._last_batch_size = batch_size
        self._fit = None

    @property
    def num_observations(self) -> int:
        return self._num_observations

    @property
    def largest_measured_batch(self) -> int:
        """The largest batch size ever measured (0: none). One past it is the probe; beyond, unknown."""
        return max(self._by_batch, default=0)

    def measured_ms(self, batch_size: int) -> float | None:
        """The decayed mean of the steps measured at exactly this batch size, if any."""
        measure = self._by_batch.get(batch_size)
        return None if measure is None else measure.mean_ms

    def recent_step_ms(self) -> float | None:
        """The mean step time at the batch size measured last (what a step costs now)."""
        return self.measured_ms(self._last_batch_size)

    # ---- predictions ---------------------------------------------------------------------------------
    def fit(self) -> AffineCost | None:
        """The affine cost curve; None before any measurement."""
        if self._fit is None and self._by_batch:
            self._fit = self._fitted()
        return self._fit

    def predict_ms(self, batch_size: int) -> float | None:
        """Predicted step time of `batch_size` streams (the fit, also beyond what was measured); None before
        any measurement."""
        fit = self.fit()
        return None if fit is None else fit.at(batch_size)

    def capacity(self, budget_ms: float, max_batch: int) -> int | None:
        """The largest batch size, at most `max_batch` and at most one past the largest measured (the probe),
        whose predicted step takes at most `budget_ms`; 0 when not even one stream fits; None before any
        measurement."""
        fit = self.fit()
        if fit is None:
            return None
        limit = min(max_batch, self.largest_measured_batch + 1)
        if fit.per_stream_ms <= 0.0:
            fitting = limit if fit.fixed_ms <= budget_ms else 0
        else:
            # the small epsilon keeps an exact fit (budget on the line) from losing a stream to rounding
            fitting = math.floor((budget_ms - fit.fixed_ms) / fit.per_stream_ms + 1e-9)
        return max(0, min(limit, fitting))

    # ---- internals -----------------------------------------------------------------------------------
    def _decayed_weight(self, measure: _BatchMeasure) -> float:
        return measure.weight * self.weight_decay ** (self._num_observations - measure.at_observation)

    def _expected_ms(self, batch_size: int) -> float | None:
        measured = self.measured_ms(batch_size)
        return measured if measured is not None else self.predict_ms(batch_size)

    def _fitted(self) -> AffineCost:
        points = [
            (float(b), m.mean_ms, max(self.floor_weight, self._decayed_weight(m)))
            for b, m in self._by_batch.items()
        ]
        if len(points) == 1:
            return AffineCost(fixed_ms=points[0][1], per_stream_ms=0.0)  # a flat guess: see the module doc
        total_w = sum(w for _, _, w in points)
        mean_b = sum(w * b for b, _, w in points) / total_w
        mean_y = sum(w * y for _, y, w in points) / total_w
        sxx = sum(w * (b - mean_b) ** 2 for b, _, w in points)
        sxy = sum(w * (b - mean_b) * (y - mean_y) for b, y, w in points)
        per_stream_ms = max(0.0, sxy / sxx)  # sxx > 0: at least two distinct batch sizes
        fixed_ms = mean_y - per_stream_ms * mean_b
        if fixed_ms < 0.0:
            # the cost grows faster than affine: a line through the origin, fitted alone, fits best then
            per_stream_ms = sum(w * b * y for b, y, w in points) / sum(w * b * b for b, _, w in points)
            fixed_ms = 0.0
        return AffineCost(fixed_ms=fixed_ms, per_stream_ms=per_stream_ms)
