"""Tests of kallos.evaluation.sharpe: PSR/DSR/minTRL known answers and the Ledoit-Wolf (2008) test."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from arch.bootstrap import CircularBlockBootstrap
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from kallos.evaluation.bootstrap import Resampler
from kallos.evaluation.sharpe import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    ledoit_wolf_2008,
    min_track_record_length,
    probabilistic_sharpe_ratio,
    sharpe_stats,
)
from kallos.evaluation.significance import jobson_korkie_memmel
from kallos.exceptions import DataValidationError

# Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", numerical example: annualised SR 2.5
# over 5 years of daily returns (T = 1250, 250 days a year), skew -3, kurtosis 10, N = 100 trials
# whose annualised Sharpe ratios have variance 1/2. The paper reports SR_0 = 0.1132 (daily) and DSR = 0.9004.
_DAYS_PER_YEAR_IN_PAPER = 250


def test_dsr_worked_example_from_the_paper():
    sr = 2.5 / math.sqrt(_DAYS_PER_YEAR_IN_PAPER)
    var = 0.5 / _DAYS_PER_YEAR_IN_PAPER
    assert expected_max_sharpe(var, 100) == pytest.approx(0.1132, abs=5e-5)
    assert deflated_sharpe_ratio(sr, 1250, -3.0, 10.0, var, 100) == pytest.approx(0.9004, abs=5e-4)


def test_dsr_is_psr_against_the_expected_maximum_and_falls_with_more_trials():
    sr, n, skew, kurt, var = 0.1, 1000, -0.5, 6.0, 0.001
    for trials in (1, 10, 1000):
        threshold = expected_max_sharpe(var, trials)
        dsr = deflated_sharpe_ratio(sr, n, skew, kurt, var, trials)
        assert dsr == pytest.approx(probabilistic_sharpe_ratio(sr, n, skew, kurt, threshold), rel=1e-12)
    one, many = (deflated_sharpe_ratio(sr, n, skew, kurt, var, t) for t in (1, 1000))
    assert one == pytest.approx(probabilistic_sharpe_ratio(sr, n, skew, kurt, 0.0))  # one trial: no deflation
    assert many < one


def test_psr_under_normality_matches_the_closed_form():
    # normal returns: sigma(SR) = sqrt((1 + SR^2 / 2) / (n - 1)) (Lo 2002; BLdP 2012 with skew 0, kurt 3)
    sr, n = 0.08, 500
    expected = stats.norm.cdf(sr * math.sqrt(n - 1) / math.sqrt(1 + sr**2 / 2))
    assert probabilistic_sharpe_ratio(sr, n) == pytest.approx(expected, rel=1e-12)
    assert probabilistic_sharpe_ratio(0.0, n) == pytest.approx(0.5)
    assert math.isnan(probabilistic_sharpe_ratio(float("nan"), n))
    assert math.isnan(probabilistic_sharpe_ratio(sr, 1))


def test_negative_skew_and_fat_tails_lower_psr():
    base = probabilistic_sharpe_ratio(0.1, 400, 0.0, 3.0)
    assert probabilistic_sharpe_ratio(0.1, 400, -2.0, 3.0) < base
    assert probabilistic_sharpe_ratio(0.1, 400, 0.0, 12.0) < base


@settings(max_examples=60, deadline=None)
@given(
    sr=st.floats(0.01, 0.5),
    skew=st.floats(-2.0, 1.0),
    kurt=st.floats(3.0, 15.0),
    alpha=st.sampled_from([0.01, 0.05, 0.1]),
)
def test_psr_at_the_min_track_record_length_is_one_minus_alpha(sr, skew, kurt, alpha):
    trl = min_track_record_length(sr, skew, kurt, alpha=alpha)
    # PSR uses sqrt(n - 1); at n = minTRL it equals 1 - alpha exactly (BLdP 2012 eq. 13 inverts eq. 11)
    sigma2 = 1 - skew * sr + (kurt - 1) / 4 * sr**2
    z = sr * math.sqrt(trl - 1) / math.sqrt(sigma2)
    assert stats.norm.cdf(z) == pytest.approx(1 - alpha, abs=1e-9)
    assert min_track_record_length(sr * 1.5, skew, kurt, alpha=alpha) < trl


def test_min_track_record_length_known_values_and_edges():
    # normal returns, SR 0.1 daily, one-sided 5 %: 1 + (1 + 0.005) * (1.644854 / 0.1)^2 = 272.9
    assert min_track_record_length(0.1) == pytest.approx(1 + 1.005 * (1.6448536 / 0.1) ** 2, rel=1e-6)
    assert min_track_record_length(0.1) == pytest.approx(272.91, abs=0.01)
    assert min_track_record_length(-0.1) == math.inf
    assert math.isnan(min_track_record_length(float("nan")))


def test_expected_max_sharpe_edges():
    assert expected_max_sharpe(0.01, 1) == 0.0
    with pytest.raises(DataValidationError, match="sharpe_variance"):
        expected_max_sharpe(-1.0, 10)


def test_sharpe_stats_moments():
    rng = np.random.default_rng(3)
    r = rng.standard_t(5, 2000) * 0.01 + 0.001
    m = sharpe_stats(r)
    assert m.sharpe == pytest.approx(r.mean() / r.std(ddof=1))
    assert m.skew == pytest.approx(stats.skew(r))
    assert m.kurtosis == pytest.approx(stats.kurtosis(r, fisher=False))  # raw: normal = 3
    assert m.n == 2000
    assert math.isnan(sharpe_stats(np.full(10, 0.01)).sharpe)


# ---------------------------------------------------------------- Ledoit & Wolf (2008)


@pytest.fixture(scope="module")
def lw_pair():
    rng = np.random.default_rng(11)
    n = 600
    common = rng.standard_t(4, n) * 0.02
    x = 0.002 + common + rng.normal(0, 0.01, n)
    y = 0.0 + 0.7 * common + rng.normal(0, 0.012, n)
    return x, y


def test_lw_bootstrap_draws_match_arch_apply_with_the_same_seed(lw_pair):
    x, y = lw_pair
    resampler = Resampler(block_length=5, reps=300, seed=4)
    res = ledoit_wolf_2008(x, y, resampler.draws(x.size))

    def sharpe_diff(a, b):
        return a.mean() / a.std() - b.mean() / b.std()

    bs = CircularBlockBootstrap(5, x, y, seed=np.random.default_rng([4, x.size]))
    reference = bs.apply(sharpe_diff, 300)[:, 0]
    np.testing.assert_allclose(res.boot_sharpe_diff, reference, rtol=1e-10, atol=1e-14)
    assert res.sharpe_diff == pytest.approx(sharpe_diff(x, y), rel=1e-12)


def test_lw_standard_error_matches_numerical_delta_method(lw_pair):
    x, y = lw_pair
    res = ledoit_wolf_2008(x, y, Resampler(3, 100, 0).draws(x.size), maxlags=0)
    moments = np.column_stack([x, y, x**2, y**2])
    u = moments.mean(axis=0)

    def f(v):
        return v[0] / math.sqrt(v[2] - v[0] ** 2) - v[1] / math.sqrt(v[3] - v[1] ** 2)

    grad = np.array([(f(u + h) - f(u - h)) / (2 * 1e-7) for h in np.eye(4) * 1e-7])
    psi = np.cov(moments.T, ddof=0)
    assert res.se == pytest.approx(math.sqrt(grad @ psi @ grad / x.size), rel=1e-5)
    assert res.statistic == pytest.approx(res.sharpe_diff / res.se, rel=1e-12)


def test_lw_agrees_with_jkm_on_iid_normal_returns():
    # for i.i.d. normal returns the delta-method variance equals Memmel's (2003) corrected JK variance
    rng = np.random.default_rng(5)
    n = 20_000
    z = rng.multivariate_normal([0.0, 0.0], [[1.0, 0.6], [0.6, 1.0]], n) * 0.01
    x, y = z[:, 0] + 0.0012, z[:, 1] + 0.0002
    lw = ledoit_wolf_2008(x, y, Resampler(1, 100, 0).draws(n), maxlags=0)
    jkm = jobson_korkie_memmel(pd.Series(x), pd.Series(y))
    assert lw.statistic == pytest.approx(jkm.statistic, rel=0.03)


def test_lw_is_antisymmetric_and_detects_a_large_gap(lw_pair):
    x, y = lw_pair
    draws = Resampler(5, 500, 1).draws(x.size)
    ab, ba = ledoit_wolf_2008(x, y, draws), ledoit_wolf_2008(y, x, draws)
    assert ab.statistic == pytest.approx(-ba.statistic, rel=1e-12)
    assert ab.p_value == pytest.approx(ba.p_value)
    rng = np.random.default_rng(8)
    strong = rng.normal(0.004, 0.01, x.size)
    assert ledoit_wolf_2008(strong, y, draws).p_value < 0.01
    # the reported p-value is the asymptotic one of the HAC-studentised statistic: no 1/(M+1) floor
    assert ab.p_value == pytest.approx(2 * stats.norm.sf(abs(ab.statistic)), rel=1e-12)
    assert ledoit_wolf_2008(strong, y, draws).p_value < 1 / 501
    # the studentised bootstrap p-value is kept as a diagnostic, with the (count + 1) / (M + 1) bounds
    assert 1 / 501 <= ab.p_value_bootstrap <= 1.0


def test_lw_default_standard_error_is_the_prewhitened_qs_delta_method(lw_pair):
    from kallos.evaluation.longrun import prewhitened_qs_covariance

    x, y = lw_pair
    res = ledoit_wolf_2008(x, y, Resampler(3, 100, 0).draws(x.size))
    moments = np.column_stack([x, y, x**2, y**2])
    u = moments.mean(axis=0)

    def f(v):
        return v[0] / math.sqrt(v[2] - v[0] ** 2) - v[1] / math.sqrt(v[3] - v[1] ** 2)

    grad = np.array([(f(u + h) - f(u - h)) / (2 * 1e-7) for h in np.eye(4) * 1e-7])
    psi = prewhitened_qs_covariance(moments, weights=grad)
    assert res.se == pytest.approx(math.sqrt(grad @ psi @ grad / x.size), rel=1e-5)


def test_lw_constant_series_gives_nan():
    x = np.full(50, 0.01)
    y = np.random.default_rng(0).normal(0, 0.01, 50)
    res = ledoit_wolf_2008(x, y, Resampler(2, 50, 0).draws(50))
    assert math.isnan(res.statistic) and math.isnan(res.p_value)
