"""backtest.compare_cost_bps: every variant's net metrics also at a second cost, from the same weights."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from kallos.config import load_config
from kallos.data import build_panel
from kallos.pipeline.study import run_study

COMPARE_BPS = 10.0


@pytest.fixture(scope="module")
def pre_cost(real_market):
    """A short pre-cost study (cost_bps = 0) with its net metrics at 10 bps beside it."""
    market, coins = real_market
    cfg = load_config(
        None,
        {
            "n_jobs": 1,
            "universe.top_n": 3,
            "backtest.start": "2023-04-01",
            "backtest.end": "2023-05-31",
            "backtest.cost_bps": 0,
            "backtest.compare_cost_bps": COMPARE_BPS,
            "forecast.forecasters": ["historical_mean", "naive_persistence"],
            "portfolio.objectives": ["min_volatility"],
            "evaluation.calibration.size_reps": 0,
            "evaluation.calibration.power_reps": 0,
        },
    )
    panel = build_panel(market, coins, cfg.quality)
    return panel, cfg, run_study(panel, cfg)


def test_pre_cost_gross_equals_net_and_compare_costs_more(pre_cost) -> None:
    result = pre_cost[2]
    assert result.metrics_net_compare is not None
    assert set(result.metrics_net_compare) == set(result.metrics)
    traded = 0
    for key, m in result.metrics.items():
        assert m["net"] == m["gross"]  # cost_bps = 0: nothing is charged
        compare = result.metrics_net_compare[key]
        assert compare["n_days"] == m["net"]["n_days"] == 61
        if m["gross"]["turnover_annual"] > 0:
            traded += 1
            assert compare["sharpe"] < m["gross"]["sharpe"]
            assert compare["total_return"] < m["gross"]["total_return"]
    assert traded >= 3  # both forecast-driven variants and the benchmarks trade


def test_compare_metrics_recomputed_by_hand_from_turnover(pre_cost) -> None:
    """Net at 10 bps: the gross path less (1 - c_k) on each trade's first day, c_k = rate × turnover_k.

    The turnover of the zero-cost backtest is sum |w_target - w_drifted|; at 10 bps the engine solves
    c = rate × sum |w_target (1 - c) - w_drifted|, which differs from rate × turnover by at most
    rate × c ≈ 1e-6 per trade.
    """
    _, cfg, result = pre_cost
    key = "historical_mean/min_volatility"
    bt = result.backtests[key]
    start, end = pd.Timestamp(cfg.backtest.start), pd.Timestamp(cfg.backtest.end)
    rate = COMPARE_BPS / 1e4
    gross = bt.returns_gross.loc[start:end]
    net = gross.copy()
    for date, turnover in bt.turnover.items():
        first_day = date + pd.Timedelta(days=1)
        if first_day in net.index:
            net[first_day] = (1 - rate * turnover) * (1 + gross[first_day]) - 1
    r = net.to_numpy()
    sharpe = r.mean() / r.std(ddof=1) * np.sqrt(365)
    total = np.prod(1 + r) - 1
    compare = result.metrics_net_compare[key]
    n_trades = int((bt.turnover > 0).sum())
    assert compare["total_return"] == pytest.approx(total, abs=2e-6 * n_trades)
    assert compare["sharpe"] == pytest.approx(sharpe, abs=1e-4)
    assert np.prod(1 + gross.to_numpy()) - 1 - total > 50 * 2e-6 * n_trades  # the cost is material


def test_results_json_carries_the_compare_block(pre_cost, results_document) -> None:
    _, _, result = pre_cost
    doc = results_document(result)
    for key, entry in doc["strategies"].items():
        block = entry["metrics_net_compare"]
        assert block["cost_bps"] == COMPARE_BPS
        assert block["sharpe"] == pytest.approx(result.metrics_net_compare[key]["sharpe"])
    assert "published" not in doc  # no preset


def test_preset_original_gets_the_published_block(pre_cost, results_document) -> None:
    """build_results adds ``published`` for the preset only; variants it lacks leave our cells empty."""
    _, cfg, result = pre_cost
    preset = replace(result, config=cfg.model_copy(update={"preset": "original"}))
    doc = results_document(preset)
    block = doc["published"]
    assert block["net_cost_bps"] == COMPARE_BPS and block["tests_column"] == "pre_cost"
    rows = {r["id"]: r for r in block["rows"]}
    assert rows["sharpe.benchmark"]["ours"] == {
        "pre_cost": pytest.approx(result.metrics["market_cap"]["gross"]["sharpe"]),
        "net": pytest.approx(result.metrics_net_compare["market_cap"]["sharpe"]),
    }
    assert rows["sharpe.gru"]["ours"] == {"pre_cost": None, "net": None}  # no gru/max_return here
    costs = next(d for d in block["differences"] if d["topic"] == "costs")
    assert costs["ours"].endswith("the net column trades the same weights at 10 bps per side")
