"""Tests of kallos.evaluation.bootstrap: circular blocks, block sums, Politis-White length."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from arch.bootstrap import optimal_block_length

from kallos.evaluation.bootstrap import Resampler, politis_white_block_length
from kallos.exceptions import ConfigError


@pytest.mark.parametrize(("n", "block"), [(103, 7), (50, 1), (40, 40), (10, 25)])
def test_draws_are_circular_blocks(n, block):
    draws = Resampler(block, 30, 0).draws(n)
    length = draws.block_length
    assert length == min(block, n)
    idx = draws.indices
    assert idx.shape == (30, n) and idx.min() >= 0 and idx.max() < n
    for start in range(0, n, length):
        for j in range(min(length, n - start)):
            np.testing.assert_array_equal(idx[:, start + j], (idx[:, start] + j) % n)
    assert draws.block_sizes.sum() == n


def test_draws_are_cached_and_reproducible():
    a, b = Resampler(5, 20, 3), Resampler(5, 20, 3)
    assert a.draws(60) is a.draws(60)
    np.testing.assert_array_equal(a.draws(60).indices, b.draws(60).indices)
    assert not np.array_equal(Resampler(5, 20, 4).draws(60).indices, a.draws(60).indices)


def test_block_sums_equal_the_resampled_sums():
    data = np.random.default_rng(0).normal(size=(97, 3))
    draws = Resampler(6, 40, 1).draws(97)
    sums = draws.block_sums(data)  # (k, reps, n_blocks)
    assert sums.shape == (3, 40, math.ceil(97 / 6))
    resampled = data[draws.indices]  # (reps, n, k)
    np.testing.assert_allclose(sums.sum(axis=2), resampled.sum(axis=1).T, atol=1e-12)
    first_block = resampled[:, :6, :].sum(axis=1).T
    np.testing.assert_allclose(sums[:, :, 0], first_block, atol=1e-12)


def test_resampler_rejects_bad_settings():
    with pytest.raises(ConfigError, match="block length"):
        Resampler(0, 10, 0)
    with pytest.raises(ConfigError, match="reps"):
        Resampler(3, 0, 0)


def test_politis_white_follows_arch():
    rng = np.random.default_rng(2)
    n = 800
    ar = np.zeros((n, 2))
    e = rng.normal(size=(n, 2))
    for t in range(1, n):
        ar[t] = 0.6 * ar[t - 1] + e[t]
    frame = pd.DataFrame(ar * 0.01)
    stacked = np.hstack([frame.to_numpy(), frame.to_numpy() ** 2])
    expected = math.ceil(float(np.median(optimal_block_length(stacked)["circular"])))
    assert politis_white_block_length(frame) == expected
    assert politis_white_block_length(frame) > politis_white_block_length(pd.DataFrame(e * 0.01))


def test_politis_white_degenerate_inputs():
    assert politis_white_block_length(pd.DataFrame({"a": [0.01] * 5})) == 1
    assert politis_white_block_length(pd.DataFrame({"a": [0.01] * 50, "b": [0.0] * 50})) == 1
