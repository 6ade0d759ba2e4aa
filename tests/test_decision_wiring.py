"""The study's wiring, checked fast on one small `decide()` over real data (issue 10.13-10.16).

A recording strategy captures every :class:`RebalanceContext` the pipeline builds and a recording
recurrent forecaster captures every training problem the stacked path prepares, so these tests
compare what the pipeline actually did with what the time discipline says it must do:

* each rebalance's covariance is ``cov_matrix`` of the trailing ``cov_lookback`` daily simple
  returns ending at t (not price levels, not a window ending at t + 1);
* each rebalance's expected returns are the forecasts made at t (not t + 1);
* the market-cap benchmark is capped;
* a member whose prices end (delisted) is neither forecast nor held after its last close;
* no model trains on history past its fold's cutoff, or on a label that ends after it.

Before these, the first four were caught only by slow end-to-end tests, and the last by none.
"""

from __future__ import annotations

from typing import ClassVar

import pandas as pd
import pytest

import kallos.pipeline.study as study
from kallos.config import load_config
from kallos.data import build_panel, capped_weights
from kallos.forecast import ForecasterSpec, NeuralForecaster, register, unregister
from kallos.forecast.models.recurrent import RecurrentSettings
from kallos.portfolio import RebalanceContext, Strategy, cov_matrix, to_annual_expected_returns
from kallos.types import OptimizationResult

DELISTED, LAST_CLOSE = "eth", pd.Timestamp("2023-04-15")  # a top-3 member whose prices end mid-month


class RecordingStrategy(Strategy):
    """Equal weight at every rebalance; keeps every context it is given."""

    name = "recorder"
    contexts: ClassVar[list[RebalanceContext]] = []

    def target(self, ctx: RebalanceContext, current_weights: pd.Series | None = None) -> OptimizationResult:
        type(self).contexts.append(ctx)
        return OptimizationResult(pd.Series(1.0 / len(ctx.universe), index=ctx.universe), "ew", "ew")


class RecordingRecurrent(NeuralForecaster):
    """A tiny GRU that records what each stacked training problem was built from."""

    prepared: ClassVar[list[dict]] = []

    def prepare(self, history, fold, refit=False):
        data = super().prepare(history, fold, refit)
        horizon = pd.Timedelta(days=self.horizon)
        sample_dates = data.train_dates.union(data.validation_dates)
        type(self).prepared.append(
            {
                "coin": history.coin_id,
                "cutoff": fold.cutoff,
                "history_end": history.last_date,
                "label_end": sample_dates.max() + horizon,
            }
        )
        return data


@pytest.fixture(scope="module")
def wiring(real_market):
    market, coins = real_market
    gone = (market["coin_id"] == DELISTED) & (market["date"] > LAST_CLOSE)
    market = market[~gone]
    RecordingStrategy.contexts.clear()
    RecordingRecurrent.prepared.clear()

    def build(settings, cfg, seed, device):
        return RecordingRecurrent(
            "recording_gru", settings, cfg.training, cfg.horizon, seed, device, cfg.min_train_samples
        )

    register(ForecasterSpec("recording_gru", RecurrentSettings, build))
    with pytest.MonkeyPatch.context() as mp:
        original = study.build_strategies
        mp.setattr(study, "build_strategies", lambda config: [*original(config), RecordingStrategy()])
        config = load_config(
            None,
            {
                "n_jobs": 1,
                "universe.top_n": 3,
                "backtest.start": "2023-03-01",
                "backtest.end": "2023-05-31",
                "forecast.forecasters": ["recording_gru", "historical_mean"],
                "forecast.training": {"lookback": 5, "max_epochs": 1},
                "forecast.models.recording_gru": {"hidden_size": 4, "num_layers": 1},
                "portfolio.objectives": ["max_sharpe"],
            },
        )
        panel = build_panel(market, coins, config.quality)
        try:
            decided = study.decide(panel, config)
        finally:
            unregister("recording_gru")
    return panel, config, decided, list(RecordingStrategy.contexts), list(RecordingRecurrent.prepared)


def test_every_rebalance_was_recorded(wiring):
    _, _, decided, contexts, _ = wiring
    assert [c.date for c in contexts] == list(decided.decision_dates) and len(contexts) > 12


def test_covariance_is_of_trailing_daily_returns_ending_at_t(wiring):
    """Issue 10.13 and 10.16: a covariance of price levels, or of a window ending at t + 1, passed."""
    panel, config, _, contexts, _ = wiring
    p = config.portfolio
    for ctx in contexts:
        window = panel.returns.loc[ctx.date - pd.Timedelta(days=p.cov_lookback - 1) : ctx.date, ctx.universe]
        assert window.index[-1] == ctx.date and len(window) == p.cov_lookback
        expected = cov_matrix(window, p.covariance, halflife=p.cov_halflife, return_cap=p.cov_return_cap)
        pd.testing.assert_frame_equal(ctx.cov_matrix, expected, check_exact=True)


def test_expected_returns_are_the_forecasts_made_at_t(wiring):
    """Issue 10.16: decisions using the forecasts of t + 1 passed the fast suite."""
    _, config, decided, contexts, _ = wiring
    forecasts = decided.forecasts
    checked = 0
    for ctx in contexts:
        for name in config.forecast.forecasters:
            made = forecasts[(forecasts["as_of"] == ctx.date) & (forecasts["forecaster"] == name)]
            expected = to_annual_expected_returns(
                made.set_index("coin_id")["forecast"].reindex(ctx.universe), config.forecast.horizon
            )
            got = ctx.expected_returns.get(name, pd.Series(dtype=float)).reindex(ctx.universe)
            pd.testing.assert_series_equal(got, expected, check_names=False, check_exact=True)
            checked += int(expected.notna().sum())
    assert checked > 2 * 3 * 12  # two forecasters, three coins, most rebalances


def test_market_cap_benchmark_is_capped(wiring):
    """Issue 10.16: an uncapped market-cap benchmark passed the fast suite (BTC alone is ~60 %)."""
    _, config, decided, contexts, _ = wiring
    cap = config.universe.benchmark_max_weight
    bench = decided.weights[decided.weights["key"] == "market_cap"]
    assert bench["weight"].max() <= cap + 1e-12 and bench["date"].nunique() == 3  # three month ends
    for ctx in (c for c in contexts if c.is_reconstitution):
        want = capped_weights(ctx.market_caps.reindex(ctx.universe), cap)
        got = bench[bench["date"] == ctx.date].set_index("coin_id")["weight"]
        pd.testing.assert_series_equal(got.sort_index(), want[want > 0].sort_index(), check_names=False)
        assert (
            ctx.market_caps.reindex(ctx.universe) / ctx.market_caps.reindex(ctx.universe).sum()
        ).max() > cap
    weights = decided.universe["benchmark_weight"]
    assert weights.max() <= cap + 1e-12


def test_a_member_whose_prices_end_is_not_investable_after_its_last_close(wiring):
    """Issue 10.16: delisted members staying investable passed the fast suite."""
    panel, _, decided, contexts, _ = wiring
    last = panel.close[DELISTED].last_valid_index()  # the raw end plus at most max_ffill_days
    assert LAST_CLOSE <= last < pd.Timestamp("2023-04-23")
    april = decided.universe[decided.universe["month"] == pd.Timestamp("2023-04-01")]
    assert DELISTED in set(april["coin_id"])  # a member of the month its prices end in
    before = [c for c in contexts if c.date <= last]
    after = [c for c in contexts if c.date > last]
    assert after and all(DELISTED not in c.universe for c in after)
    assert any(DELISTED in c.universe for c in before)
    w, f = decided.weights, decided.forecasts
    assert not ((w["coin_id"] == DELISTED) & (w["date"] > last)).any()
    assert not ((f["coin_id"] == DELISTED) & (f["as_of"] > last)).any()
    assert ((f["coin_id"] == DELISTED) & (f["as_of"] <= last)).any()


def test_no_model_trains_on_history_or_labels_past_its_fold_cutoff(wiring):
    """Issue 10.15: a removed purge with post-cutoff history in the stacked path leaked labels into
    the test quarter, and the no-look-ahead test did not see it."""
    _, _, decided, _, prepared = wiring
    cutoffs = {f.cutoff for f in decided.folds}
    assert {p["cutoff"] for p in prepared} == cutoffs and len(cutoffs) == 2
    per_fold = pd.Series([p["cutoff"] for p in prepared]).value_counts()
    assert (per_fold >= 2).all()  # the stacked path (two or more models per fold) was exercised
    for p in prepared:
        assert p["history_end"] <= p["cutoff"], p
        assert p["label_end"] <= p["cutoff"], p
    # The purge is tight: the last label ends exactly at the cutoff for a coin with full history.
    assert any(p["label_end"] == p["cutoff"] for p in prepared)
