"""One period's decision (``decide_period``) equals the backtest's (``decide``) bit for bit.

The trading cycle takes each week's decision alone; the backtest takes them all in one pass. Both
go through the same universe, walk-forward jobs, covariance, optimiser and fallback chain, so the
target weights must be identical, with recurrent forecasts served by the model registry and with
a turnover limit (the current weights are the previous target drifted to the date).
"""

from __future__ import annotations

import pandas as pd
import pytest

from kallos.backtest import drift_weights
from kallos.config import load_config
from kallos.exceptions import ConfigError, DataValidationError
from kallos.forecast.model_store import ModelRegistry
from kallos.pipeline.study import decide, decide_period

TINY_GRU = {"hidden_size": 8, "num_layers": 1}


@pytest.fixture(scope="module")
def config():
    return load_config(
        None,
        {
            "n_jobs": 1,
            "universe.top_n": 5,
            "backtest.start": "2023-03-20",  # mid-quarter: the first fold serves dates before it
            "backtest.end": "2023-04-24",
            "forecast.forecasters": ["gru", "historical_mean"],
            "forecast.training": {"lookback": 10, "max_epochs": 2},
            "forecast.models": {"gru": TINY_GRU},
            "portfolio.turnover_limit": 0.6,
        },
    )


def _weights(frame: pd.DataFrame) -> pd.Series:
    return frame.set_index(["date", "coin_id"])["weight"].sort_index()


@pytest.mark.parametrize("key", ["historical_mean/max_sharpe", "gru/max_sharpe", "market_cap"])
def test_each_period_alone_equals_the_backtest_decisions(real_panel, real_store, tmp_path, config, key):
    registry = ModelRegistry(real_store, tmp_path / "models")
    full = decide(real_panel, config, registry=registry)
    first = full.decision_dates[0]
    assert first == pd.Timestamp("2023-03-19") and pd.Timestamp("2023-03-31") in full.decision_dates
    rows, previous, held = [], None, []
    for date in full.decision_dates:
        current = None
        if previous is not None:
            since, weights = previous
            current = drift_weights(weights, real_panel.returns.loc[since + pd.Timedelta(days=1) : date])
        one = decide_period(
            real_panel.truncate(date), config, date, key, first, current_weights=current, registry=registry
        )
        held.append(one.trades)
        if one.trades:
            previous = (date, one.weights)
            rows.append(one.weights.rename_axis("coin_id").reset_index().assign(date=date))
            assert one.decision["key"] == key and one.decision["date"] == date
            assert abs(one.weights.sum() - 1) < 1e-9
    expected = _weights(full.weights[full.weights["key"] == key])
    pd.testing.assert_series_equal(_weights(pd.concat(rows)), expected, check_exact=True)
    if key == "market_cap":  # rebalanced at the start and the month end only
        assert held.count(True) == 2
    else:
        assert all(held)
    if key.startswith("gru"):  # the registry served the recurrent models (nothing retrained)
        assert one.registry_stats is not None and one.registry_stats.trained == 0


def test_forecasts_of_the_period(real_panel, config):
    date = pd.Timestamp("2023-04-02")
    one = decide_period(real_panel, config, date, "historical_mean/max_sharpe", pd.Timestamp("2023-03-19"))
    assert set(one.forecasts["as_of"]) == {date}
    assert set(one.forecasts["coin_id"]) == set(one.universe)
    assert one.fold.key == "2023-03-31" and not one.is_reconstitution


def test_refuses_a_date_off_the_calendar_or_beyond_the_data(real_panel, config):
    first = pd.Timestamp("2023-03-19")
    with pytest.raises(DataValidationError, match="not a decision date"):
        decide_period(real_panel, config, pd.Timestamp("2023-04-05"), "market_cap", first)
    with pytest.raises(DataValidationError, match="data end"):
        panel = real_panel.truncate("2023-04-01")
        decide_period(panel, config, pd.Timestamp("2023-04-02"), "market_cap", first)
    with pytest.raises(ConfigError, match="strategy 'gru/nope'"):
        decide_period(real_panel, config, pd.Timestamp("2023-04-02"), "gru/nope", first)
