"""Tests of kallos.data.universe.capped_weights: a hand-worked answer, properties and errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kallos.data.universe import capped_weights


def test_known_answer_two_rounds_of_capping():
    # values [50, 30, 10, 5, 5], total 100, cap 0.35.
    # Round 1: proportional weights [0.50, 0.30, 0.10, 0.05, 0.05]; a (0.50) is over the cap.
    #   a := 0.35; the remaining 0.65 goes to b..e in proportion to 30:10:5:5 (total 50):
    #   b = 0.65 × 30/50 = 0.39, c = 0.65 × 10/50 = 0.13, d = e = 0.65 × 5/50 = 0.065.
    # Round 2: b (0.39) is over the cap. b := 0.35; the remaining 1 − 2 × 0.35 = 0.30 goes to
    #   c, d, e in proportion 10:5:5 (total 20): c = 0.30 × 10/20 = 0.15, d = e = 0.30 × 5/20 = 0.075.
    # Round 3: nothing above 0.35, done.
    values = pd.Series([50.0, 30.0, 10.0, 5.0, 5.0], index=list("abcde"))
    w = capped_weights(values, 0.35)
    expected = pd.Series([0.35, 0.35, 0.15, 0.075, 0.075], index=list("abcde"))
    pd.testing.assert_series_equal(w, expected, check_exact=False, rtol=0, atol=1e-12)


def test_no_cap_binding_gives_plain_proportional_weights():
    values = pd.Series([3.0, 2.0, 1.0], index=["x", "y", "z"])
    w = capped_weights(values, 0.6)
    np.testing.assert_allclose(w.to_numpy(), [0.5, 1 / 3, 1 / 6], rtol=0, atol=1e-15)
    assert list(w.index) == ["x", "y", "z"]


def test_cap_times_n_equal_one_gives_equal_weight():
    values = pd.Series([100.0, 1.0, 1.0, 1.0], index=list("abcd"))
    w = capped_weights(values, 0.25)
    np.testing.assert_allclose(w.to_numpy(), [0.25] * 4, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("values", "cap", "match"),
    [
        ([1.0, 1.0], 0.4, "cannot sum to 1"),  # 0.4 × 2 = 0.8 < 1
        ([5.0, 4.0, 3.0, 2.0, 1.0], 0.19, "cannot sum to 1"),  # 0.19 × 5 = 0.95 < 1
        ([1.0, 0.0, 2.0], 0.5, "positive"),
        ([1.0, -3.0, 2.0], 0.5, "positive"),
        ([1.0, np.nan, 2.0], 0.5, "positive"),
    ],
)
def test_errors(values, cap, match):
    with pytest.raises(ValueError, match=match):
        capped_weights(pd.Series(values, index=[f"c{i}" for i in range(len(values))]), cap)


@st.composite
def values_and_cap(draw):
    n = draw(st.integers(1, 12))
    values = draw(
        st.lists(
            st.floats(1e-3, 1e6, allow_nan=False, allow_infinity=False),
            min_size=n,
            max_size=n,
        )
    )
    frac = draw(st.floats(0.0, 1.0))
    cap = 1.0 / n + frac * (1.0 - 1.0 / n)  # any feasible cap in [1/n, 1]
    return pd.Series(values, index=[f"c{i}" for i in range(n)]), cap


@settings(max_examples=200, deadline=None)
@given(values_and_cap())
def test_properties(vc):
    values, cap = vc
    w = capped_weights(values, cap)
    assert list(w.index) == list(values.index)
    assert w.sum() == pytest.approx(1.0, abs=1e-9)
    assert (w >= 0).all()
    assert (w <= cap + 1e-12).all()
    # Order preserved: a larger value never gets a smaller weight.
    v, x = values.to_numpy(), w.to_numpy()
    bigger = v[:, None] > v[None, :]
    assert (x[:, None] >= x[None, :] - 1e-12)[bigger].all()
    # Names below the cap keep the ratios of their values.
    free = x < cap - 1e-9
    if free.sum() >= 2:
        ratio_w = x[free] / x[free].sum()
        ratio_v = v[free] / v[free].sum()
        np.testing.assert_allclose(ratio_w, ratio_v, rtol=1e-9, atol=1e-12)
    # With a non-binding cap the weights are exactly proportional.
    if (v / v.sum()).max() <= cap:
        np.testing.assert_allclose(x, v / v.sum(), rtol=1e-12, atol=0)
