"""Tests of kallos.evaluation.metrics: golden numbers, empyrical agreement, edge cases, properties."""

from __future__ import annotations

import math
import warnings

import empyrical
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kallos.evaluation.metrics import (
    cumulative_returns,
    drawdown,
    performance_metrics,
    rolling_sharpe,
)
from kallos.types import PERIODS_PER_YEAR

RETURNS = [0.1, -0.05, 0.02, -0.03, 0.04]
FLOAT_KEYS = (
    "total_return",
    "cagr",
    "annual_volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "var",
    "cvar",
    "skewness",
    "kurtosis",
    "win_rate",
    "turnover_annual",
    "turnover_per_rebalance",
    "effective_n",
)


def _series(values, start="2022-01-01") -> pd.Series:
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq="D"), dtype=float)


@pytest.fixture(scope="module")
def noisy() -> pd.Series:
    rng = np.random.default_rng(42)
    return _series(rng.normal(0.0008, 0.035, size=730))


def test_constant_is_365():
    assert PERIODS_PER_YEAR == 365


def test_golden_numbers_on_hand_computable_series():
    m = performance_metrics(_series(RETURNS))
    r = np.array(RETURNS)
    n = 5
    mean = 0.016
    std = math.sqrt(sum((x - mean) ** 2 for x in RETURNS) / (n - 1))
    total = 1.1 * 0.95 * 1.02 * 0.97 * 1.04 - 1.0
    cagr = (1.0 + total) ** (365 / 5) - 1.0
    # wealth 1.1, 1.045, 1.0659, 1.033923, 1.07527992: trough 1.033923 under the 1.1 peak
    mdd = 1.1 * 0.95 * 1.02 * 0.97 / 1.1 - 1.0
    downside = math.sqrt((0.05**2 + 0.03**2) / 5) * math.sqrt(365)

    assert m["start"] == "2022-01-01"
    assert m["end"] == "2022-01-05"
    assert m["n_days"] == 5
    assert m["total_return"] == pytest.approx(total, rel=1e-12)
    assert m["cagr"] == pytest.approx(cagr, rel=1e-12)
    assert m["annual_volatility"] == pytest.approx(std * math.sqrt(365), rel=1e-12)
    assert m["sharpe"] == pytest.approx(mean / std * math.sqrt(365), rel=1e-12)
    assert m["sortino"] == pytest.approx(mean * 365 / downside, rel=1e-12)
    assert m["max_drawdown"] == pytest.approx(mdd, rel=1e-12)
    assert m["max_drawdown"] == pytest.approx(-0.06007, abs=1e-12)
    assert m["calmar"] == pytest.approx(cagr / abs(mdd), rel=1e-12)
    # 5 % quantile of sorted [-0.05, -0.03, 0.02, 0.04, 0.1] at position 0.05 * 4 = 0.2
    assert m["var"] == pytest.approx(-0.05 + 0.2 * 0.02, abs=1e-15)
    assert m["cvar"] == pytest.approx(-0.05, abs=1e-15)
    assert m["win_rate"] == pytest.approx(3 / 5)
    # bias-corrected skewness / excess kurtosis as pandas computes them
    assert m["skewness"] == pytest.approx(pd.Series(r).skew(), rel=1e-12)
    assert m["kurtosis"] == pytest.approx(pd.Series(r).kurt(), rel=1e-12)
    assert math.isnan(m["turnover_annual"])
    assert math.isnan(m["turnover_per_rebalance"])
    assert math.isnan(m["effective_n"])


def test_keys_are_exactly_the_documented_ones():
    m = performance_metrics(_series(RETURNS))
    assert list(m) == ["start", "end", "n_days", *FLOAT_KEYS]


def test_cagr_of_constant_daily_return_over_one_year():
    r = 0.001
    m = performance_metrics(_series([r] * 365))
    assert m["cagr"] == pytest.approx((1 + r) ** 365 - 1, rel=1e-10)
    assert m["total_return"] == pytest.approx((1 + r) ** 365 - 1, rel=1e-10)
    two_years = performance_metrics(_series([r] * 730))
    assert two_years["cagr"] == pytest.approx((1 + r) ** 365 - 1, rel=1e-10)


def test_max_drawdown_of_known_path():
    # wealth: 1.2, 0.6, 0.9, 0.45, 0.9 -> worst is 0.45 / 1.2 - 1 = -0.625
    m = performance_metrics(_series([0.2, -0.5, 0.5, -0.5, 1.0]))
    assert m["max_drawdown"] == pytest.approx(-0.625, abs=1e-12)


def test_drawdown_counts_a_first_day_loss():
    dd = drawdown(_series([-0.1, 0.05, 0.1]))
    np.testing.assert_allclose(dd.to_numpy(), [-0.1, 0.9 * 1.05 - 1, 0.0], atol=1e-12)
    assert performance_metrics(_series([-0.1, 0.05, 0.1]))["max_drawdown"] == pytest.approx(-0.1)


def test_drawdown_and_cumulative_returns_keep_index_and_treat_nan_as_zero():
    s = _series([0.1, np.nan, -0.1])
    cum = cumulative_returns(s)
    assert cum.index.equals(s.index)
    np.testing.assert_allclose(cum.to_numpy(), [0.1, 0.1, 1.1 * 0.9 - 1], atol=1e-15)
    dd = drawdown(s)
    assert dd.index.equals(s.index)
    np.testing.assert_allclose(dd.to_numpy(), [0.0, 0.0, -0.1], atol=1e-15)


def test_agrees_with_empyrical_at_365(noisy):
    m = performance_metrics(noisy)
    assert m["sharpe"] == pytest.approx(empyrical.sharpe_ratio(noisy, annualization=365), rel=1e-10)
    assert m["sortino"] == pytest.approx(empyrical.sortino_ratio(noisy, annualization=365), rel=1e-10)
    assert m["annual_volatility"] == pytest.approx(
        empyrical.annual_volatility(noisy, annualization=365), rel=1e-10
    )
    assert m["cagr"] == pytest.approx(empyrical.cagr(noisy, annualization=365), rel=1e-10)
    assert m["max_drawdown"] == pytest.approx(empyrical.max_drawdown(noisy), rel=1e-10)
    assert m["calmar"] == pytest.approx(empyrical.calmar_ratio(noisy, annualization=365), rel=1e-10)
    assert m["var"] == pytest.approx(empyrical.value_at_risk(noisy, cutoff=0.05), rel=1e-10)
    assert m["total_return"] == pytest.approx(empyrical.cum_returns_final(noisy), rel=1e-10)


def test_empyrical_default_252_differs_by_sqrt_365_over_252(noisy):
    m = performance_metrics(noisy)
    factor = math.sqrt(365 / 252)
    assert m["sharpe"] == pytest.approx(empyrical.sharpe_ratio(noisy) * factor, rel=1e-10)
    assert m["sortino"] == pytest.approx(empyrical.sortino_ratio(noisy) * factor, rel=1e-10)
    assert m["annual_volatility"] == pytest.approx(empyrical.annual_volatility(noisy) * factor, rel=1e-10)
    at_252 = performance_metrics(noisy, periods_per_year=252)
    assert at_252["sharpe"] == pytest.approx(empyrical.sharpe_ratio(noisy), rel=1e-10)


def test_turnover_and_effective_n():
    idx = pd.date_range("2022-01-01", periods=73, freq="D")
    returns = pd.Series(0.001, index=idx)
    returns.iloc[::2] = -0.0005
    turnover = pd.Series(0.0, index=idx)
    turnover.iloc[[0, 30, 60]] = [1.0, 0.2, 0.4]
    m = performance_metrics(returns, turnover=turnover)
    # 73 days = 0.2 years; 1.6 traded in total
    assert m["turnover_annual"] == pytest.approx(1.6 / 0.2, rel=1e-12)
    assert m["turnover_per_rebalance"] == pytest.approx(1.6 / 3, rel=1e-12)

    holdings = pd.DataFrame(
        [[0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.5, 0.5, np.nan, np.nan]],
        index=idx[:4],
        columns=["btc", "eth", "sol", "ada"],
    )
    m = performance_metrics(returns, holdings=holdings)
    assert m["effective_n"] == pytest.approx((2 + 1 + 4 + 2) / 4, rel=1e-12)
    no_trades = performance_metrics(returns, turnover=pd.Series(0.0, index=idx))
    assert no_trades["turnover_annual"] == 0.0
    assert math.isnan(no_trades["turnover_per_rebalance"])


def test_rolling_sharpe_matches_window_formula(noisy):
    rs = rolling_sharpe(noisy, window=90)
    assert rs.index.equals(noisy.index)
    assert rs.iloc[:89].isna().all()
    window = noisy.iloc[100 - 89 : 101].to_numpy()
    expected = window.mean() / window.std(ddof=1) * math.sqrt(365)
    assert rs.iloc[100] == pytest.approx(expected, rel=1e-9)
    assert rolling_sharpe(noisy, window=90, periods_per_year=252).iloc[100] == pytest.approx(
        expected * math.sqrt(252 / 365), rel=1e-9
    )


def test_rolling_sharpe_constant_window_is_nan_and_bad_window_raises():
    rs = rolling_sharpe(_series([0.01] * 10 + [0.02, -0.01, 0.03]), window=5)
    assert rs.iloc[4:10].isna().all()
    assert np.isfinite(rs.iloc[-1])
    with pytest.raises(ValueError, match="window"):
        rolling_sharpe(_series(RETURNS), window=1)


@pytest.mark.parametrize(
    "values",
    [[], [np.nan, np.nan, np.nan]],
    ids=["empty", "all_nan"],
)
def test_empty_and_all_nan_give_nan_and_zero_days(values):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = performance_metrics(_series(values), turnover=_series([0.0] * len(values)))
    assert m["n_days"] == 0
    assert m["start"] == "" and m["end"] == ""
    for key in FLOAT_KEYS:
        assert math.isnan(m[key]), key


def test_constant_input_gives_nan_ratios_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = performance_metrics(_series([0.01] * 30))
    assert m["n_days"] == 30
    assert m["annual_volatility"] == 0.0
    assert m["max_drawdown"] == 0.0
    for key in ("sharpe", "sortino", "calmar", "skewness", "kurtosis"):
        assert math.isnan(m[key]), key
    assert m["total_return"] == pytest.approx(1.01**30 - 1)
    assert m["win_rate"] == 1.0


def test_length_one_input_does_not_raise():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = performance_metrics(_series([0.05]))
    assert m["n_days"] == 1
    assert m["total_return"] == pytest.approx(0.05)
    for key in ("annual_volatility", "sharpe", "sortino", "calmar", "skewness", "kurtosis"):
        assert math.isnan(m[key]), key


def test_nan_returns_are_dropped():
    with_nan = performance_metrics(_series([0.1, np.nan, -0.05, 0.02, -0.03, 0.04]))
    clean = performance_metrics(pd.Series(RETURNS))
    assert with_nan["n_days"] == 5
    for key in ("total_return", "sharpe", "sortino", "max_drawdown", "var"):
        assert with_nan[key] == pytest.approx(clean[key], rel=1e-12)


@pytest.mark.parametrize("level", [0.0, 1.0, 1.5])
def test_bad_var_level_raises(level):
    with pytest.raises(ValueError, match="var_level"):
        performance_metrics(_series(RETURNS), var_level=level)


_returns = st.lists(
    st.floats(min_value=-0.99, max_value=3.0, allow_nan=False, allow_infinity=False), min_size=1, max_size=60
)

# returns on a 0.001 grid: no rounding-level variance that would make ratios ill-conditioned
_grid_returns = st.lists(st.integers(-990, 3000).map(lambda k: k / 1000), min_size=2, max_size=60)


@settings(max_examples=60, deadline=None)
@given(_returns)
def test_drawdown_is_between_minus_one_and_zero(values):
    dd = drawdown(pd.Series(values))
    assert (dd <= 0.0).all()
    assert (dd >= -1.0).all()
    m = performance_metrics(pd.Series(values))
    assert m["max_drawdown"] == pytest.approx(float(dd.min()), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(_grid_returns, st.floats(min_value=0.1, max_value=10.0))
def test_sharpe_is_scale_invariant(values, scale):
    base = performance_metrics(pd.Series(values))["sharpe"]
    scaled = performance_metrics(pd.Series(values) * scale)["sharpe"]
    if math.isnan(base):
        assert math.isnan(scaled)
    else:
        assert scaled == pytest.approx(base, rel=1e-9, abs=1e-12)


def test_agrees_with_quantstats_at_365_and_differs_at_its_252_default(noisy):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantstats warns on newer pandas
        import quantstats as qs

        ours = performance_metrics(noisy)
        assert ours["sharpe"] == pytest.approx(qs.stats.sharpe(noisy, periods=365), rel=1e-10)
        assert ours["sortino"] == pytest.approx(qs.stats.sortino(noisy, periods=365), rel=1e-10)
        assert ours["annual_volatility"] == pytest.approx(qs.stats.volatility(noisy, periods=365), rel=1e-10)
        assert ours["max_drawdown"] == pytest.approx(qs.stats.max_drawdown(noisy), rel=1e-10)
        assert ours["cagr"] == pytest.approx(qs.stats.cagr(noisy, periods=365), rel=1e-10)
        # quantstats annualises with 252 trading days by default; crypto trades 365 days a year
        assert ours["sharpe"] == pytest.approx(qs.stats.sharpe(noisy) * math.sqrt(365 / 252), rel=1e-10)
        assert ours["annual_volatility"] == pytest.approx(
            qs.stats.volatility(noisy) * math.sqrt(365 / 252), rel=1e-10
        )
