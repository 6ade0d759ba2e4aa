"""Tests of kallos.portfolio.strategies: forecast, market-cap and equal-weight targets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kallos.data.universe import capped_weights
from kallos.portfolio.optimizer import MeanVariance
from kallos.portfolio.strategies import (
    BENCHMARKS,
    EqualWeightStrategy,
    ForecastStrategy,
    MarketCapStrategy,
    RebalanceContext,
    Strategy,
)
from kallos.types import OptimizationResult

UNIVERSE = ["bitcoin", "ethereum", "solana", "cardano", "dogecoin", "ripple"]
CAPS = pd.Series([50.0, 30.0, 10.0, 5.0, 3.0, 2.0], index=UNIVERSE)
MU = pd.Series([0.40, 0.25, 0.10, -0.05, 0.30, 0.15], index=UNIVERSE)


@pytest.fixture(scope="module")
def cov() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    mix = rng.normal(size=(6, 6)) * 0.02
    daily = rng.normal(size=(400, 6)) @ mix + 0.001
    return pd.DataFrame(np.cov(daily, rowvar=False) * 365, index=UNIVERSE, columns=UNIVERSE)


def _ctx(cov, expected=None, recon=False, caps=CAPS) -> RebalanceContext:
    return RebalanceContext(
        date=pd.Timestamp("2024-03-31"),
        universe=UNIVERSE,
        cov_matrix=cov,
        market_caps=caps,
        expected_returns=expected or {},
        is_reconstitution=recon,
    )


def _check_weights(w: pd.Series, cap: float = 1.0) -> None:
    assert list(w.index) == UNIVERSE
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert (w >= 0).all() and (w <= cap + 1e-12).all()


def test_keys():
    assert ForecastStrategy("gru", MeanVariance("max_sharpe")).key == "gru/max_sharpe"
    assert ForecastStrategy("historical_mean", MeanVariance("min_volatility")).key == (
        "historical_mean/min_volatility"
    )
    assert MarketCapStrategy().key == "market_cap"
    assert EqualWeightStrategy().key == "equal_weight"
    assert BENCHMARKS == {"market_cap": MarketCapStrategy, "equal_weight": EqualWeightStrategy}
    assert all(issubclass(cls, Strategy) for cls in BENCHMARKS.values())


def test_forecast_strategy_full_universe_matches_optimizer(cov):
    strat = ForecastStrategy("gru", MeanVariance("max_sharpe", max_weight=0.35))
    res = strat.target(_ctx(cov, {"gru": MU, "naive_persistence": -MU}))
    assert isinstance(res, OptimizationResult)
    _check_weights(res.weights, 0.35)
    ref = MeanVariance("max_sharpe", max_weight=0.35).fit(MU, cov).weights_
    pd.testing.assert_series_equal(res.weights, ref)
    assert (res.objective_requested, res.objective_used, res.fallback_chain) == (
        "max_sharpe",
        "max_sharpe",
        (),
    )


def test_forecast_strategy_leaves_out_coins_without_forecast(cov):
    mu = MU.copy()
    mu["dogecoin"] = np.nan
    mu = mu.drop("ripple")  # not forecast at all
    res = ForecastStrategy("gru", MeanVariance("max_sharpe")).target(_ctx(cov, {"gru": mu}))
    _check_weights(res.weights, 0.35)
    assert res.weights["dogecoin"] == 0.0 and res.weights["ripple"] == 0.0
    assert res.fallback_chain[0] == "no forecast for ['dogecoin', 'ripple']: left out"
    assert res.used_fallback
    assert res.objective_used == "max_sharpe"
    # The remaining four coins are optimised on their own sub-covariance.
    kept = ["bitcoin", "ethereum", "solana", "cardano"]
    ref = MeanVariance("max_sharpe").fit(MU[kept], cov.loc[kept, kept]).weights_
    pd.testing.assert_series_equal(res.weights[kept], ref)


def test_forecast_strategy_chain_includes_optimizer_fallbacks(cov):
    mu = pd.Series(-0.1, index=UNIVERSE)
    mu["ripple"] = np.nan
    res = ForecastStrategy("gru", MeanVariance("max_sharpe")).target(_ctx(cov, {"gru": mu}))
    assert res.objective_used == "min_volatility"
    assert len(res.fallback_chain) == 2
    assert res.fallback_chain[0] == "no forecast for ['ripple']: left out"
    assert "positive expected excess return" in res.fallback_chain[1]


@pytest.mark.parametrize(
    "expected",
    [
        {"gru": MU[["bitcoin", "ethereum"]]},  # 2 × 0.35 = 0.7 < 1
        {"gru": MU.where(MU.index == "solana")},  # 1 forecast, the rest NaN
        {"historical_mean": MU},  # no gru forecast at all
        {},
    ],
)
def test_forecast_strategy_equal_weight_when_too_few_forecasts(cov, expected):
    res = ForecastStrategy("gru", MeanVariance("max_sharpe", max_weight=0.35)).target(_ctx(cov, expected))
    np.testing.assert_allclose(res.weights.to_numpy(), np.full(6, 1 / 6))
    assert list(res.weights.index) == UNIVERSE
    assert res.objective_used == "equal_weight"
    assert res.objective_requested == "max_sharpe"
    assert res.fallback_chain[-1] == "too few forecasts for the weight cap: equal weight"


def test_market_cap_strategy_capped_weights(cov):
    # caps [50, 30, 10, 5, 3, 2] (total 100), cap 0.35: bitcoin 0.50 → 0.35; the other 0.65 over
    # [30, 10, 5, 3, 2] (total 50) makes ethereum 0.39 → 0.35; the last 0.30 over [10, 5, 3, 2]
    # (total 20) gives [0.15, 0.075, 0.045, 0.03].
    res = MarketCapStrategy(max_weight=0.35).target(_ctx(cov, recon=True))
    np.testing.assert_allclose(res.weights.to_numpy(), [0.35, 0.35, 0.15, 0.075, 0.045, 0.03], atol=1e-12)
    _check_weights(res.weights, 0.35)
    pd.testing.assert_series_equal(res.weights, capped_weights(CAPS, 0.35))
    assert (res.objective_requested, res.objective_used, res.fallback_chain) == (
        "market_cap",
        "market_cap",
        (),
    )


def test_market_cap_strategy_follows_universe_order_and_ignores_other_caps(cov):
    caps = pd.concat([CAPS[::-1], pd.Series({"tether": 1e6})])  # other order, an extra coin
    res = MarketCapStrategy(max_weight=0.35).target(_ctx(cov, caps=caps))
    pd.testing.assert_series_equal(res.weights, capped_weights(CAPS, 0.35))


def test_trades_on(cov):
    plain, recon = _ctx(cov), _ctx(cov, recon=True)
    assert not MarketCapStrategy().trades_on(plain)
    assert MarketCapStrategy().trades_on(recon)
    for strat in (EqualWeightStrategy(), ForecastStrategy("gru", MeanVariance())):
        assert strat.trades_on(plain) and strat.trades_on(recon)


def test_equal_weight_strategy(cov):
    res = EqualWeightStrategy().target(_ctx(cov, {"gru": MU}))
    np.testing.assert_allclose(res.weights.to_numpy(), np.full(6, 1 / 6), rtol=0, atol=1e-15)
    _check_weights(res.weights)
    assert (res.objective_used, res.fallback_chain) == ("equal_weight", ())


def test_context_is_frozen(cov):
    ctx = _ctx(cov)
    with pytest.raises(AttributeError):
        ctx.is_reconstitution = True  # type: ignore[misc]


def test_forecast_strategy_passes_drifted_weights_to_the_turnover_limit(cov):
    current = pd.Series(1 / 6, index=UNIVERSE)
    opt = MeanVariance("max_sharpe", turnover_limit=0.2)
    ctx = _ctx(cov, {"gru": MU})
    free = ForecastStrategy("gru", MeanVariance("max_sharpe")).target(ctx)
    limited = ForecastStrategy("gru", opt).target(ctx, current)
    assert np.abs(free.weights - current).sum() > 0.2
    assert np.abs(limited.weights - current).sum() == pytest.approx(0.2, abs=1e-6)
    assert limited.objective_used == "max_sharpe" and limited.solver == "CLARABEL(direct)"
    # Benchmarks ignore the current weights.
    pd.testing.assert_series_equal(
        EqualWeightStrategy().target(ctx, current).weights, EqualWeightStrategy().target(ctx).weights
    )
