"""No look-ahead, end to end: decisions at or before t do not depend on any data after t.

The whole decision pipeline (cleaning, universe, features, walk-forward GRU and baseline
forecasts, covariance, optimisation) runs three times on the real data:

* with all data;
* with every row after t deleted;
* with every row after t replaced by noise (prices, volumes and market caps).

Every forecast and every target weight dated on or before t must be identical. t is cut twice:
mid-quarter, and two days after a fold cutoff, where a label crossing the cutoff (a missing
purge) would still be inside the data the truncated run keeps out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kallos.config import load_config
from kallos.data import build_panel
from kallos.pipeline.study import decide

MID_QUARTER = pd.Timestamp("2023-05-14")  # a Sunday (a rebalance), mid-quarter: two folds lie before it
AFTER_CUTOFF = pd.Timestamp("2023-04-02")  # a Sunday two days after the 2023-03-31 fold cutoff


@pytest.fixture(scope="module")
def config():
    return load_config(
        None,
        {
            "n_jobs": 1,
            "universe.top_n": 4,
            "backtest.start": "2023-01-01",
            "backtest.end": "2023-06-30",
            "forecast.training": {"lookback": 10, "max_epochs": 2},
            "forecast.models": {n: {"hidden_size": 8, "num_layers": 1} for n in ("gru", "lstm")},
        },
    )


def _noise_after(market: pd.DataFrame, t: pd.Timestamp, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = market.copy()
    after = out["date"] > t
    n = int(after.sum())
    scale = rng.lognormal(0.0, 1.0, n)
    for col in ("open", "high", "low", "close"):
        out.loc[after, col] = out.loc[after, col] * scale
    out.loc[after, "high"] = out.loc[after, ["open", "high", "low", "close"]].max(axis=1)
    out.loc[after, "low"] = out.loc[after, ["open", "high", "low", "close"]].min(axis=1)
    out.loc[after, "volume"] = rng.uniform(1, 1e12, n)
    out.loc[after, "market_cap"] = rng.uniform(1, 1e13, n)  # reshuffles later universes
    return out


def _upto(frame: pd.DataFrame, column: str, t: pd.Timestamp) -> pd.DataFrame:
    keys = [c for c in ("forecaster", "strategy", "objective", "coin_id", column) if c in frame]
    part = frame[frame[column] <= t].sort_values(keys, ignore_index=True)
    return part.drop(columns=[c for c in ("fold_cutoff",) if c in part])


@pytest.fixture(scope="module")
def full_run(real_market, config):
    market, coins = real_market
    return decide(build_panel(market, coins, config.quality), config)


@pytest.mark.slow
@pytest.mark.parametrize("T", [MID_QUARTER, AFTER_CUTOFF], ids=["mid_quarter", "after_cutoff"])
def test_decisions_up_to_t_ignore_all_later_data(real_market, config, full_run, T):
    market, coins = real_market
    variants = {"truncated": market[market["date"] <= T], "noise": _noise_after(market, T)}
    runs = {
        name: decide(
            build_panel(rows, coins, config.quality), config, through=None if name != "truncated" else T
        )
        for name, rows in variants.items()
    }
    full = full_run
    assert full.forecasts["as_of"].max() > T  # the full run does see later data
    assert set(config.forecast.forecasters) == set(full.forecasts["forecaster"])  # gru and lstm included
    assert len(full.folds) == 2 and T in set(full.decision_dates)
    reference_f, reference_w = _upto(full.forecasts, "as_of", T), _upto(full.weights, "date", T)
    assert len(reference_f) > 100 and reference_w["date"].max() == T
    for name in ("truncated", "noise"):
        pd.testing.assert_frame_equal(_upto(runs[name].forecasts, "as_of", T), reference_f, check_exact=True)
        pd.testing.assert_frame_equal(_upto(runs[name].weights, "date", T), reference_w, check_exact=True)
    # The noise did change what came after t, so the comparison above is not vacuous.
    later = runs["noise"].universe.set_index(["month", "rank"])["coin_id"]
    assert not later.equals(full.universe.set_index(["month", "rank"])["coin_id"])
