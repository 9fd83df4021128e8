"""The step cost model alone: fits, probing limit, robustness. Plain numbers, no clock."""

import pytest

from csmstream.engine.cost_model import AffineCost, StepCostModel


def test_nothing_measured_predicts_nothing():
    model = StepCostModel()
    assert model.fit() is None and model.predict_ms(1) is None, "no measurement: no prediction"
    assert model.capacity(72.0, 8) is None, "no measurement: no capacity figure"
    assert model.largest_measured_batch == 0


def test_an_affine_curve_is_recovered_exactly():
    model = StepCostModel()
    for _ in range(3):
        for batch in (1, 3, 8):
            model.observe(batch, 30.0 + 2.5 * batch)
    fit = model.fit()
    assert fit.fixed_ms == pytest.approx(30.0) and fit.per_stream_ms == pytest.approx(2.5), fit
    assert model.predict_ms(16) == pytest.approx(70.0)
    assert model.capacity(72.0, 64) == 9, "one past the largest measured batch (8): the probe limit"


def test_one_batch_size_is_taken_as_flat_so_the_scheduler_can_probe_one_more():
    model = StepCostModel()
    model.observe(1, 50.0)
    assert model.fit() == AffineCost(fixed_ms=50.0, per_stream_ms=0.0), "not 50 ms per stream: unknown slope"
    assert model.capacity(72.0, 8) == 2, "only one stream past what was measured"
    assert model.capacity(40.0, 8) == 0, "not even one stream fits 40 ms"


def test_a_warm_up_over_batch_buckets_seeds_the_capacity_up_to_max_slots():
    model = StepCostModel()
    for batch in (1, 2, 4, 8, 16, 32, 64):
        model.observe(batch, 40.0)  # launch-bound: the same cost at every batch
    assert model.capacity(72.0, 64) == 64
    assert model.capacity(72.0, 48) == 48, "capped at max_batch"


def test_the_slope_and_the_fixed_part_are_never_negative():
    model = StepCostModel()
    model.observe(1, 50.0)
    model.observe(2, 45.0)  # noise: more streams cannot cost less
    assert model.fit().per_stream_ms == 0.0, model.fit()
    steep = StepCostModel()
    for batch in (1, 2, 4):
        steep.observe(batch, 10.0 * batch * batch)  # faster than affine: the line would cross below 0
    fit = steep.fit()
    assert fit.fixed_ms == 0.0 and fit.per_stream_ms > 0.0, fit


def test_a_sudden_slow_down_is_followed_within_a_few_steps_despite_stale_sizes():
    model = StepCostModel()
    for batch in (1, 2, 4, 8, 16, 32):
        model.observe(batch, 30.0 + 2.5 * batch)
    for _ in range(100):
        model.observe(16, 70.0)
    assert model.capacity(72.0, 32) == 16
    for _ in range(5):
        model.observe(16, 1.4 * 70.0)
    assert model.predict_ms(16) > 90.0, (
        f"5 steps after a 1.4x slow-down, predicted {model.predict_ms(16):.1f} ms"
    )
    assert model.capacity(72.0, 32) < 16, "the capacity follows the slow-down"


def test_a_stale_mean_is_replaced_when_its_batch_size_is_measured_again():
    model = StepCostModel()
    model.observe(4, 40.0)
    for _ in range(200):
        model.observe(8, 60.0)
    model.observe(4, 50.0)
    assert model.measured_ms(4) > 49.0, f"a long unmeasured size takes the new value: {model.measured_ms(4)}"


def test_one_wild_measurement_is_clipped():
    model = StepCostModel(spike_factor=4.0, mean_alpha=0.3)
    for _ in range(20):
        model.observe(4, 40.0)
    model.observe(4, 5000.0)  # a recompile or a pause of the process
    assert model.measured_ms(4) == pytest.approx(40.0 + 0.3 * (160.0 - 40.0)), "clipped to 4 × 40 ms first"
    for _ in range(10):
        model.observe(4, 40.0)
    assert model.measured_ms(4) < 45.0, "and forgotten within a few steps"
