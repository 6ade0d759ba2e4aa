"""Typed results: Variant keys, PortfolioResult against results.json, Comparison verdicts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kallos
from kallos.config import load_config
from kallos.data import build_panel
from kallos.evaluation.primary import VERDICT_COLUMNS
from kallos.pipeline.results import jsonable, report_frames
from kallos.report.results import Comparison, portfolio_results
from kallos.types import Variant

NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)


@given(NAME, st.one_of(st.none(), NAME))
def test_variant_key_round_trips(strategy, objective) -> None:
    v = Variant(strategy, objective)
    assert Variant.parse(v.key) == v
    assert v.is_benchmark == (objective is None)
    assert str(v) == v.key


@pytest.mark.parametrize("bad", ["", "gru/", "/max_sharpe"])
def test_variant_rejects_malformed_keys(bad) -> None:
    with pytest.raises(ValueError, match="variant key"):
        Variant.parse(bad)


def verdict_rows() -> pd.DataFrame:
    row = dict.fromkeys(VERDICT_COLUMNS, None)
    rows = [
        {**row, "objective": "max_sharpe", "a": "gru/max_sharpe", "b": "zero/max_sharpe",
         "comparator": "baseline", "verdict": "a better", "reason": "StepM", "n_days": 400,
         "sharpe_a": 1.5, "sharpe_b": 0.5, "sharpe_diff": 1.0, "min_detectable_gap": 0.8},
        {**row, "objective": "max_sharpe", "a": "gru/max_sharpe", "b": "market_cap",
         "comparator": "benchmark", "verdict": "no detectable difference", "reason": "n.s.", "n_days": 400,
         "sharpe_a": 1.5, "sharpe_b": 1.2, "sharpe_diff": 0.3, "min_detectable_gap": 0.8},
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))


def test_verdict_is_restated_from_the_asked_side() -> None:
    comparison = Comparison(verdict_rows(), pd.DataFrame(), 0.05)
    forward = comparison.verdict("gru/max_sharpe", "zero/max_sharpe")
    assert forward.label == "a better" and forward.winner == Variant("gru", "max_sharpe")
    backward = comparison.verdict(Variant("zero", "max_sharpe"), "gru/max_sharpe")
    assert backward.label == "b better" and backward.winner == forward.winner
    assert (backward.sharpe_a, backward.sharpe_b, backward.sharpe_diff) == (0.5, 1.5, -1.0)
    quiet = comparison.verdict("market_cap", "gru/max_sharpe")
    assert quiet.label == "no detectable difference" and not quiet.significant
    assert "gap of 0.80" in quiet.sentence()
    assert comparison.counts()["a better"] == 1 and comparison.counts()["no detectable difference"] == 1


def test_unknown_pair_names_the_declared_ones() -> None:
    comparison = Comparison(verdict_rows(), pd.DataFrame(), 0.05)
    with pytest.raises(
        KeyError, match="declared: gru/max_sharpe vs zero/max_sharpe, gru/max_sharpe vs market_cap"
    ):
        comparison.verdict("gru/max_sharpe", "historical_mean/max_sharpe")
    with pytest.raises(ValueError, match=r"primary.*exploratory"):
        comparison.table("secondary")


def test_comparison_reads_a_results_document() -> None:
    doc = {"verdicts": verdict_rows().to_dict(orient="records"), "tests": {"alpha": 0.1, "pairwise": []},
           "primary": {"alpha": 0.05}}  # fmt: skip
    comparison = Comparison.from_results(json.loads(json.dumps(doc)))
    assert comparison.alpha == 0.05
    assert comparison.table()["verdict"].tolist() == ["a better", "no detectable difference"]
    assert "2 declared comparisons" in comparison._repr_html_()


@pytest.fixture(scope="module")
def small(real_market):
    market, coins = real_market
    cfg = load_config(
        None,
        {
            "universe.top_n": 3,
            "backtest.start": "2023-04-01",
            "backtest.end": "2023-05-31",
            "forecast.forecasters": ["historical_mean", "naive_persistence"],
            "portfolio.objectives": ["min_volatility"],
            "evaluation.calibration.size_reps": 0,
            "evaluation.calibration.power_reps": 0,
        },
    )
    return kallos.run_study(build_panel(market, coins, cfg.quality), cfg)


def test_portfolio_results_are_what_results_json_serialises(small, results_document) -> None:
    doc = results_document(small)
    assert list(doc["strategies"]) == list(small.portfolios)
    for key, portfolio in small.portfolios.items():
        block = doc["strategies"][key]
        assert block["metrics_net"]["sharpe"] == pytest.approx(portfolio.sharpe, nan_ok=True)
        assert block["period"]["n_days"] == len(portfolio.returns) == 61
        assert block["fallbacks"]["rebalances"] == portfolio.fallbacks.rebalances == len(portfolio.decisions)
    hm = small.portfolio("historical_mean/min_volatility")
    # weights: wide, one row per decision date, summing to 1 (fully invested)
    assert np.allclose(hm.weights.sum(axis=1), 1.0)
    assert len(hm.weights) == hm.fallbacks.rebalances
    # wealth index agrees with compounding the returns
    assert hm.cumulative().iloc[-1] == pytest.approx((1 + hm.returns).prod())
    assert hm.metrics["total_return"] == pytest.approx((1 + hm.returns).prod() - 1)
    with pytest.raises(KeyError, match="it ran"):
        small.portfolio("gru/min_volatility")


def test_portfolio_results_rebuild_from_a_run(small, results_document) -> None:
    """From results.json and the report frames (what a run directory holds), the same objects."""
    doc = results_document(small)
    frames = report_frames(small)
    rebuilt = portfolio_results(
        list(doc["strategies"]), doc["strategies"], frames.returns_net, frames.returns_gross,
        frames.turnover, frames.weights, small.decisions,
    )  # fmt: skip
    for key, original in small.portfolios.items():
        again = rebuilt[key]
        assert again.variant == original.variant
        pd.testing.assert_series_equal(again.returns, original.returns, check_freq=False, check_names=False)
        pd.testing.assert_frame_equal(again.weights, original.weights, check_freq=False)
        assert again.fallbacks == original.fallbacks
        assert json.loads(json.dumps(jsonable(original.to_results()))) == doc["strategies"][key]
        assert json.loads(json.dumps(jsonable(again.to_results()))) == doc["strategies"][key]


def test_plot_and_tearsheet(small, tmp_path) -> None:
    hm = small.portfolio("historical_mean/min_volatility")
    figure = hm.plot_cumulative(small.portfolio("market_cap"))
    metas = {trace.meta for trace in figure.data}
    assert {"historical_mean/min_volatility", "market_cap"} <= metas
    path = hm.tearsheet(tmp_path / "t.html", small.portfolio("market_cap"))
    assert path.stat().st_size > 10_000
    assert "historical_mean/min_volatility" in small._repr_html_()


def test_top_level_api_names() -> None:
    for name in (
        "load_config",
        "Store",
        "run_study",
        "evaluate",
        "MeanVariance",
        "forecasters",
        "load_panel",
    ):
        assert name in kallos.__all__ and getattr(kallos, name) is not None
    assert "gru" in kallos.forecasters.FORECASTERS
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = kallos.nope
