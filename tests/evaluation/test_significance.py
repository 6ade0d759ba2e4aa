"""Tests of kallos.evaluation.significance: agreement with scipy/statsmodels, hand-computed values,
multiple-testing corrections, edge cases and properties."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.multitest import multipletests

from kallos.evaluation.significance import (
    TestResult,
    adjust_pvalues,
    cohens_d,
    jobson_korkie_memmel,
    jobson_korkie_memmel_arrays,
    ks_test,
    ks_test_arrays,
    mann_whitney,
    mann_whitney_arrays,
    newey_west_maxlags,
    paired_t_hac,
    paired_t_hac_arrays,
    variance_test,
    variance_test_arrays,
)
from kallos.exceptions import ConfigError, DataValidationError

COLUMNS = [
    "group",
    "a",
    "b",
    "test",
    "statistic",
    "p_value",
    "p_holm",
    "p_bh",
    "significant",
    "n",
    "start",
    "end",
    "cohens_d",
    "mean_diff_annual",
]


def _series(values, start="2022-01-01") -> pd.Series:
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq="D"), dtype=float)


@pytest.fixture(scope="module")
def pair() -> tuple[pd.Series, pd.Series]:
    """Two correlated, autocorrelated daily return series (AR(1) common factor)."""
    rng = np.random.default_rng(7)
    n = 400
    common = np.zeros(n)
    shocks = rng.normal(0.0, 0.02, n)
    for t in range(1, n):
        common[t] = 0.3 * common[t - 1] + shocks[t]
    a = 0.0015 + common + rng.normal(0.0, 0.01, n)
    b = 0.0002 + 0.8 * common + rng.normal(0.0, 0.012, n)
    return _series(a), _series(b)


# ---------------------------------------------------------------- paired t-test with HAC errors


def test_newey_west_rule_of_thumb():
    assert newey_west_maxlags(100) == 4
    assert newey_west_maxlags(300) == math.floor(4 * 3 ** (2 / 9)) == 5
    assert newey_west_maxlags(1000) == 6
    assert newey_west_maxlags(0) == 0


def test_paired_t_hac_matches_hand_newey_west(pair):
    a, b = pair
    res = paired_t_hac(a, b)
    d = (a - b).to_numpy()
    t_obs = d.size
    lags = math.floor(4 * (t_obs / 100) ** (2 / 9))
    e = d - d.mean()
    gamma = [np.sum(e[lag:] * e[: t_obs - lag]) / t_obs for lag in range(lags + 1)]
    long_run = gamma[0] + 2 * sum((1 - lag / (lags + 1)) * gamma[lag] for lag in range(1, lags + 1))
    var_mean = long_run / t_obs * t_obs / (t_obs - 1)  # small-sample correction T / (T - k), k = 1
    t_hand = d.mean() / math.sqrt(var_mean)

    assert res.test == "t_test_hac"
    assert res.n == t_obs
    assert res.detail["maxlags"] == lags
    assert res.detail["mean_diff"] == pytest.approx(d.mean(), rel=1e-12)
    assert res.statistic == pytest.approx(t_hand, rel=1e-10)
    assert res.p_value == pytest.approx(2 * stats.t.sf(abs(t_hand), df=t_obs - 1), rel=1e-9)


def test_paired_t_hac_matches_direct_statsmodels(pair):
    a, b = pair
    d = (a - b).to_numpy()
    fit = sm.OLS(d, np.ones((d.size, 1))).fit(
        cov_type="HAC", cov_kwds={"maxlags": 7, "use_correction": True}, use_t=True
    )
    res = paired_t_hac(a, b, maxlags=7)
    assert res.statistic == pytest.approx(fit.tvalues[0], rel=1e-12)
    assert res.p_value == pytest.approx(fit.pvalues[0], rel=1e-12)
    assert res.detail["se"] == pytest.approx(fit.bse[0], rel=1e-12)


def test_paired_t_hac_with_zero_lags_is_the_classical_paired_t(pair):
    """With 0 lags the HAC variance is sum(e^2) / T^2; the T / (T - 1) correction turns it into
    s^2 / T with ddof=1, so the statistic *equals* scipy's one-sample t on the differences.
    Without the correction it would be larger by exactly sqrt(T / (T - 1))."""
    a, b = pair
    d = (a - b).to_numpy()
    t_obs = d.size
    ref = stats.ttest_1samp(d, 0.0)
    res = paired_t_hac(a, b, maxlags=0)
    assert abs(res.statistic - ref.statistic) < 1e-10
    assert abs(res.p_value - ref.pvalue) < 1e-10
    assert stats.ttest_rel(a, b).statistic == pytest.approx(res.statistic, rel=1e-10)

    uncorrected = sm.OLS(d, np.ones((t_obs, 1))).fit(
        cov_type="HAC", cov_kwds={"maxlags": 0, "use_correction": False}
    )
    assert uncorrected.tvalues[0] == pytest.approx(res.statistic * math.sqrt(t_obs / (t_obs - 1)), rel=1e-10)


def test_paired_t_hac_aligns_on_common_dates_and_drops_nan_pairs():
    a = _series([0.01, 0.02, np.nan, 0.00, 0.03, -0.01, 0.02], start="2022-01-01")
    b = _series([0.00, 0.01, 0.02, np.nan, 0.01], start="2022-01-03")
    # common dates 01-03..01-07: a = [nan, 0, 0.03, -0.01, 0.02], b = [0, 0.01, 0.02, nan, 0.01]
    res = paired_t_hac(a, b, maxlags=0)
    d = np.array([0.0 - 0.01, 0.03 - 0.02, 0.02 - 0.01])
    assert res.n == 3
    assert res.statistic == pytest.approx(stats.ttest_1samp(d, 0.0).statistic, rel=1e-10)


def test_paired_t_hac_rejects_negative_lags(pair):
    with pytest.raises(ValueError, match="maxlags"):
        paired_t_hac(*pair, maxlags=-1)


# ---------------------------------------------------------------- Jobson-Korkie-Memmel


def test_jkm_hand_computed_value():
    rng = np.random.default_rng(2024)
    x = rng.normal(0.002, 0.03, 250)
    y = 0.5 * x + rng.normal(0.0, 0.02, 250)
    t_obs = 250
    mx, my = sum(x) / t_obs, sum(y) / t_obs
    sx = math.sqrt(sum((v - mx) ** 2 for v in x) / (t_obs - 1))
    sy = math.sqrt(sum((v - my) ** 2 for v in y) / (t_obs - 1))
    rho = sum((u - mx) * (v - my) for u, v in zip(x, y, strict=True)) / ((t_obs - 1) * sx * sy)
    sr_a, sr_b = mx / sx, my / sy
    v = (2 - 2 * rho + 0.5 * (sr_a**2 + sr_b**2 - 2 * sr_a * sr_b * rho**2)) / t_obs
    z = (sr_a - sr_b) / math.sqrt(v)
    p = 2 * (1 - stats.norm.cdf(abs(z)))

    res = jobson_korkie_memmel(_series(x), _series(y))
    assert res.test == "jobson_korkie_memmel"
    assert res.n == 250
    assert res.detail["sharpe_a"] == pytest.approx(sr_a, rel=1e-10)
    assert res.detail["sharpe_b"] == pytest.approx(sr_b, rel=1e-10)
    assert res.detail["rho"] == pytest.approx(rho, rel=1e-10)
    assert res.statistic == pytest.approx(z, rel=1e-9)
    assert res.p_value == pytest.approx(p, rel=1e-8)


def test_jkm_golden_small_sample():
    a = _series([0.1, -0.05, 0.02, -0.03, 0.04])
    b = _series([0.05, -0.02, 0.01, 0.00, 0.01])
    # by hand (exact fractions): means 0.016 and 0.01, variances (ddof=1) 0.00353 and 0.00065,
    # covariance 0.00145
    sr_a = 0.016 / math.sqrt(0.00353)
    sr_b = 0.01 / math.sqrt(0.00065)
    rho = 0.00145 / math.sqrt(0.00353 * 0.00065)
    v = (2 - 2 * rho + 0.5 * (sr_a**2 + sr_b**2 - 2 * sr_a * sr_b * rho**2)) / 5
    res = jobson_korkie_memmel(a, b)
    assert res.detail["rho"] == pytest.approx(0.957246906, rel=1e-8)
    assert res.statistic == pytest.approx((sr_a - sr_b) / math.sqrt(v), rel=1e-10)
    assert res.statistic == pytest.approx(-0.861130703, rel=1e-8)
    assert res.p_value == pytest.approx(2 * stats.norm.cdf(-0.861130703), rel=1e-7)


def test_jkm_is_antisymmetric(pair):
    a, b = pair
    ab, ba = jobson_korkie_memmel(a, b), jobson_korkie_memmel(b, a)
    assert ab.statistic == pytest.approx(-ba.statistic, rel=1e-12)
    assert ab.p_value == pytest.approx(ba.p_value, rel=1e-12)
    assert ab.detail["rho"] == pytest.approx(ba.detail["rho"], rel=1e-12)


def test_jkm_identical_series_gives_zero_and_one(pair):
    a, _ = pair
    res = jobson_korkie_memmel(a, a.copy())
    assert res.statistic == 0.0
    assert res.p_value == 1.0


def test_jkm_detects_a_large_sharpe_gap():
    rng = np.random.default_rng(3)
    noise = rng.normal(0.0, 0.01, 2000)
    a = _series(0.004 + noise + rng.normal(0.0, 0.002, 2000))
    b = _series(-0.004 + noise + rng.normal(0.0, 0.002, 2000))
    res = jobson_korkie_memmel(a, b)
    assert res.statistic > 10
    assert res.p_value < 1e-10


# ---------------------------------------------------------------- scipy-backed tests


def test_scipy_tests_agree_with_scipy(pair):
    a, b = pair
    x, y = a.to_numpy(), b.to_numpy()
    cases = [
        (ks_test, stats.ks_2samp(x, y), "kolmogorov_smirnov"),
        (mann_whitney, stats.mannwhitneyu(x, y, alternative="two-sided"), "mann_whitney_u"),
        (variance_test, stats.levene(x, y, center="median"), "brown_forsythe"),
    ]
    for func, ref, name in cases:
        res = func(a, b)
        assert res.test == name
        assert res.n == 400
        assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
        assert res.p_value == pytest.approx(ref.pvalue, rel=1e-12)


def test_brown_forsythe_flags_a_variance_difference():
    rng = np.random.default_rng(11)
    res = variance_test(_series(rng.normal(0, 0.01, 500)), _series(rng.normal(0, 0.03, 500)))
    assert res.p_value < 1e-6


# ---------------------------------------------------------------- Cohen's d


def test_cohens_d_hand_value():
    a = _series([0.01, 0.03, 0.02, 0.04])
    b = _series([0.00, 0.01, 0.01, 0.02])
    # means 0.025 and 0.01; variances (ddof=1) 1.6667e-4 and 6.6667e-5
    var_a = ((0.015**2) + (0.005**2) * 2 + (0.015**2)) / 3
    var_b = (0.01**2 + 0 + 0 + 0.01**2) / 3
    expected = (0.025 - 0.01) / math.sqrt((3 * var_a + 3 * var_b) / 6)
    assert cohens_d(a, b) == pytest.approx(expected, rel=1e-12)
    assert cohens_d(b, a) == pytest.approx(-expected, rel=1e-12)


# ---------------------------------------------------------------- edge cases

EDGE_CASES = {
    "empty": (_series([]), _series([])),
    "all_nan": (_series([np.nan] * 5), _series([np.nan] * 5)),
    "length_one": (_series([0.01]), _series([0.02])),
    "length_two": (_series([0.01, 0.03]), _series([0.02, -0.01])),
    "constant": (_series([0.01] * 20), _series([0.01] * 20)),
    "no_common_dates": (_series([0.01, 0.02, 0.03]), _series([0.01, 0.02, 0.03], start="2023-01-01")),
}


SERIES_TESTS = {
    "t_test_hac": paired_t_hac,
    "jobson_korkie_memmel": jobson_korkie_memmel,
    "kolmogorov_smirnov": ks_test,
    "mann_whitney_u": mann_whitney,
    "brown_forsythe": variance_test,
}


@pytest.mark.parametrize("case", list(EDGE_CASES))
@pytest.mark.parametrize("name", list(SERIES_TESTS))
def test_degenerate_inputs_give_nan_without_raising(case, name):
    a, b = EDGE_CASES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = SERIES_TESTS[name](a, b)
        d = cohens_d(a, b)
    assert isinstance(res, TestResult)
    assert res.test == name
    assert math.isnan(res.statistic)
    assert math.isnan(res.p_value)
    assert math.isnan(d)


def test_zero_variance_of_one_side_is_nan_for_jkm_but_t_test_still_runs():
    a = _series([0.01] * 10)
    b = _series([0.0, 0.02, -0.01, 0.03, 0.01, 0.0, 0.02, -0.02, 0.01, 0.0])
    assert math.isnan(jobson_korkie_memmel(a, b).statistic)
    assert np.isfinite(paired_t_hac(a, b).statistic)
    # a constant shift leaves a - b constant: the mean-difference test is undefined
    assert math.isnan(paired_t_hac(b + 0.01, b).statistic)


def test_test_result_is_frozen_and_not_collected():
    res = TestResult(test="x", statistic=1.0, p_value=0.5, n=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.statistic = 2.0  # type: ignore[misc]
    assert TestResult.__test__ is False
    assert res.detail == {}
    # the effect fields (filled by the exploratory battery) are absent unless given
    assert (res.effect, res.ci_low, res.ci_high, res.effect_name) == (None, None, None, None)


def test_degenerate_result_is_nan_and_keeps_its_detail():
    res = TestResult.degenerate("t_test_hac", 2, maxlags=0)
    assert (res.test, res.n, res.detail) == ("t_test_hac", 2, {"maxlags": 0})
    assert math.isnan(res.statistic) and math.isnan(res.p_value) and res.effect is None


@pytest.mark.parametrize(
    ("series_test", "array_test"),
    [
        (paired_t_hac, paired_t_hac_arrays),
        (jobson_korkie_memmel, jobson_korkie_memmel_arrays),
        (ks_test, ks_test_arrays),
        (mann_whitney, mann_whitney_arrays),
        (variance_test, variance_test_arrays),
    ],
)
def test_array_twins_equal_the_series_tests_on_aligned_data(pair, series_test, array_test):
    a, b = pair
    b = b.copy()
    b.iloc[[3, 50]] = np.nan  # the series test drops these days; the array test gets them dropped
    keep = b.notna()
    assert array_test(a[keep].to_numpy(), b[keep].to_numpy()) == series_test(a, b)


# ---------------------------------------------------------------- multiple testing


def test_holm_and_bh_known_vector():
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(adjust_pvalues(p, "holm"), [0.03, 0.06, 0.06, 0.02], rtol=1e-12)
    np.testing.assert_allclose(adjust_pvalues(p, "fdr_bh"), [0.02, 0.04, 0.04, 0.02], rtol=1e-12)


def test_adjust_pvalues_passes_nan_through_and_excludes_it():
    out = adjust_pvalues([0.01, np.nan, 0.04], "holm")
    assert math.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.04], rtol=1e-12)
    assert np.isnan(adjust_pvalues([np.nan, np.nan], "fdr_bh")).all()
    assert adjust_pvalues([], "holm").shape == (0,)


def test_adjust_pvalues_rejects_bad_input():
    with pytest.raises(ConfigError, match="bonferroni"):
        adjust_pvalues([0.1], "bonferroni")
    with pytest.raises(DataValidationError, match=r"\[0, 1\]"):
        adjust_pvalues([0.1, 1.2], "holm")


@settings(max_examples=25, deadline=None)  # statsmodels holm calls gc.collect(): slow
@given(st.lists(st.one_of(st.floats(0.0, 1.0), st.just(float("nan"))), min_size=1, max_size=30))
def test_adjusted_pvalues_bounds(p):
    raw = np.asarray(p, dtype=float)
    holm = adjust_pvalues(raw, "holm")
    bh = adjust_pvalues(raw, "fdr_bh")
    finite = ~np.isnan(raw)
    assert np.array_equal(np.isnan(holm), ~finite)
    assert np.array_equal(np.isnan(bh), ~finite)
    for adj in (holm, bh):
        assert np.all(adj[finite] >= raw[finite] - 1e-15)
        assert np.all(adj[finite] <= 1.0)
    assert np.all(holm[finite] >= bh[finite] - 1e-15)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-500, 500), min_size=3, max_size=40),
    st.lists(st.integers(-500, 500), min_size=3, max_size=40),
)
def test_cohens_d_is_antisymmetric(xs, ys):
    n = min(len(xs), len(ys))
    a = _series([v / 10_000 for v in xs[:n]])
    b = _series([v / 10_000 for v in ys[:n]])
    d_ab, d_ba = cohens_d(a, b), cohens_d(b, a)
    if math.isnan(d_ab):
        assert math.isnan(d_ba)
    else:
        assert d_ab == pytest.approx(-d_ba, abs=1e-12)


def test_holm_matches_statsmodels_multipletests():
    # adjust_pvalues computes Holm itself (statsmodels' Holm path calls gc.collect(), slow in a big
    # process); the numbers must be the same. A few vectors only, because of that gc.collect().
    rng = np.random.default_rng(0)
    vectors = [rng.uniform(size=40), rng.uniform(0, 0.05, size=25), np.array([0.01, 0.01, 0.04, 0.04, 1.0])]
    for values in vectors:
        np.testing.assert_allclose(
            adjust_pvalues(values, "holm"), multipletests(values, method="holm")[1], rtol=1e-12, atol=1e-15
        )
