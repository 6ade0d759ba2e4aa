"""Tests of kallos.evaluation.dominance: exact integrated CDFs and dominance on constructed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kallos.evaluation.bootstrap import Resampler
from kallos.evaluation.dominance import integrated_cdf, integrated_cdfs, quantile_grid, stochastic_dominance


def _naive(x: np.ndarray, grid: np.ndarray, order: int) -> np.ndarray:
    gap = grid[None, :] - x[:, None]
    if order == 1:
        return (gap >= 0).mean(axis=0)
    return (np.maximum(gap, 0.0) ** (order - 1)).mean(axis=0) / math.factorial(order - 1)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_integrated_cdf_matches_the_definition(order):
    rng = np.random.default_rng(order)
    x = rng.standard_t(3, 300) * 0.02
    grid = np.linspace(-0.1, 0.1, 57)
    np.testing.assert_allclose(integrated_cdf(x, grid, order), _naive(x, grid, order), atol=1e-14)
    indices = Resampler(4, 20, 0).draws(x.size).indices
    boot = integrated_cdf(x, grid, order, indices)
    expected = np.stack([_naive(x[i], grid, order) for i in indices])
    np.testing.assert_allclose(boot, expected, atol=1e-14)
    both = integrated_cdfs(x, grid, (1, order), indices)
    np.testing.assert_allclose(both[order], boot, atol=1e-15)


def test_integrated_cdf_rejects_order_zero():
    with pytest.raises(ValueError, match="order"):
        integrated_cdf(np.zeros(3), np.zeros(2), 0)


def test_quantile_grid_is_increasing_and_spans_the_sample():
    x = np.random.default_rng(0).normal(size=500)
    grid = quantile_grid(x)
    assert np.all(np.diff(grid) > 0) and grid[0] == x.min() and grid[-1] == x.max()


@pytest.fixture(scope="module")
def draws():
    return Resampler(block_length=3, reps=400, seed=2).draws(400)


def test_a_shifted_up_series_first_order_dominates(draws):
    rng = np.random.default_rng(4)
    b = rng.standard_t(4, 400) * 0.02
    a = b + 0.01  # every day better by 1 %
    res = stochastic_dominance(a, b, draws, order=1)
    assert res.direction == 1
    assert res.p_b_dominates < 0.01  # "b dominates a" rejected
    assert res.p_a_dominates > 0.5  # "a dominates b" not rejected
    assert res.p_value < 0.01  # the distributions differ
    flipped = stochastic_dominance(b, a, draws, order=1)
    assert flipped.direction == -1 and flipped.statistic == pytest.approx(res.statistic)


def test_a_mean_preserving_spread_is_second_but_not_first_order_dominated(draws):
    rng = np.random.default_rng(5)
    a = rng.normal(0.001, 0.01, 400)
    b = a.mean() + 3.0 * (a - a.mean())  # same mean, three times the spread: a >=_SSD b
    first = stochastic_dominance(a, b, draws, order=1)
    second = stochastic_dominance(a, b, draws, order=2)
    assert first.direction == 0  # the CDFs cross
    assert second.direction == 1
    assert second.p_b_dominates < 0.01
    assert second.p_a_dominates > 0.5


def test_equal_distributions_do_not_reject_too_often():
    resampler = Resampler(block_length=1, reps=199, seed=9)
    rejections = 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        a, b = rng.normal(0, 0.01, 300), rng.normal(0, 0.01, 300)
        rejections += stochastic_dominance(a, b, resampler.draws(300), order=1).p_value < 0.05
    assert rejections <= 4  # nominal 1 in 20; binomial(20, 0.05) exceeds 4 with probability < 0.3 %


def test_identical_series_are_not_different(draws):
    a = np.random.default_rng(1).normal(0, 0.01, 400)
    res = stochastic_dominance(a, a.copy(), draws, order=2)
    assert res.statistic == 0.0 and res.p_value == 1.0 and res.direction == 0


def test_bootstrap_p_values_are_never_zero(draws):
    """A sample statistic beyond every resample gets p = 1 / (reps + 1), not 0."""
    rng = np.random.default_rng(5)
    b = rng.normal(0.0, 0.02, 400)
    res = stochastic_dominance(b + 0.05, b, draws, order=1)  # every day higher: extreme statistic
    assert res.p_value == pytest.approx(1.0 / (draws.indices.shape[0] + 1))
    assert res.p_b_dominates == pytest.approx(1.0 / 401) and res.p_a_dominates == 1.0
