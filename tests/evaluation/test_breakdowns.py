"""Tests of kallos.evaluation.breakdowns: causal regimes, regime metrics and quarters."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from kallos.evaluation.breakdowns import market_regimes, quarter_breakdown, regime_metrics
from kallos.evaluation.metrics import performance_metrics
from kallos.exceptions import ConfigError


def _series(values, start="2023-01-01") -> pd.Series:
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq="D"), dtype=float)


def test_regimes_known_answer():
    # 100 days of +0.2 %, then 100 days of -0.3 %
    bench = _series([0.002] * 100 + [-0.003] * 100)
    regimes = market_regimes(bench, lookback=90, bull=0.15, bear=-0.15)
    assert (regimes.iloc[:90] == "warmup").all()
    assert regimes.iloc[90] == "bull"  # days 0..89: 1.002^90 - 1 = 19.7 %
    # day 130 looks at days 40..129: 60 up days and 30 down days: 1.002^60 * 0.997^30 - 1 = 3.0 %
    assert 1.002**60 * 0.997**30 - 1 == pytest.approx(0.0302, abs=1e-4)
    assert regimes.iloc[130] == "sideways"
    assert regimes.iloc[199] == "bear"  # days 109..198 all down: 0.997^90 - 1 = -23.7 %


def test_regime_of_a_day_does_not_depend_on_that_day_or_later():
    rng = np.random.default_rng(0)
    bench = _series(rng.normal(0.001, 0.03, 300))
    base = market_regimes(bench, lookback=30)
    for t in (40, 120, 250):
        shocked = bench.copy()
        shocked.iloc[t:] = 0.5  # a huge move from day t on
        np.testing.assert_array_equal(market_regimes(shocked, lookback=30).iloc[: t + 1], base.iloc[: t + 1])


def test_regime_settings_are_validated():
    with pytest.raises(ConfigError, match="lookback"):
        market_regimes(_series([0.0] * 10), lookback=0)
    with pytest.raises(ConfigError, match="exceed"):
        market_regimes(_series([0.0] * 10), bull=-0.2, bear=0.1)


def test_regime_metrics_are_performance_metrics_of_the_regime_days():
    rng = np.random.default_rng(1)
    returns = pd.DataFrame(
        rng.normal(0.001, 0.02, (200, 2)), columns=["a", "b"], index=pd.date_range("2023-01-01", periods=200)
    )
    regimes = pd.Series(np.where(np.arange(200) % 3 == 0, "bull", "bear"), index=returns.index)
    table = regime_metrics(returns, regimes)
    assert list(table["regime"].unique()) == ["bull", "bear"]  # REGIMES order, sideways absent
    row = table[(table["regime"] == "bear") & (table["key"] == "b")].iloc[0]
    expected = performance_metrics(returns.loc[regimes == "bear", "b"])
    assert row["n_days"] == expected["n_days"] == 133
    for ours, theirs in (
        ("cagr", "cagr"),
        ("sharpe", "sharpe"),
        ("volatility", "annual_volatility"),
        ("max_drawdown", "max_drawdown"),
    ):
        assert row[ours] == pytest.approx(expected[theirs], rel=1e-12)


def test_quarter_breakdown_known_answer():
    index = pd.date_range("2023-03-30", periods=4, freq="D")  # 30, 31 Mar; 1, 2 Apr
    returns = pd.DataFrame({"a": [0.01, 0.02, -0.01, 0.03]}, index=index)
    table = quarter_breakdown(returns)
    assert list(table["quarter"]) == ["2023Q1", "2023Q2"]
    q1, q2 = table.iloc[0], table.iloc[1]
    assert q1["return"] == pytest.approx(1.01 * 1.02 - 1)
    assert q2["return"] == pytest.approx(0.99 * 1.03 - 1)
    r = np.array([-0.01, 0.03])
    assert q2["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(365))
    assert q2["volatility"] == pytest.approx(r.std(ddof=1) * math.sqrt(365))
    assert quarter_breakdown(returns.iloc[:0]).empty
