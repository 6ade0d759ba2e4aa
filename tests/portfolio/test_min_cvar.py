"""Tests of the min_cvar objective (kallos.portfolio.objectives.min_cvar) on real daily returns.

Reference: PyPortfolioOpt's ``EfficientCVaR(expected_returns, returns, beta, weight_bounds).min_cvar()``
(the Rockafellar-Uryasev linear programme), and the empirical CVaR computed by sorting losses.
"""

from __future__ import annotations

import itertools
import warnings

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from pypfopt import EfficientCVaR

from kallos.config import PortfolioConfig
from kallos.exceptions import ConfigError, OptimizationError
from kallos.portfolio import MeanVariance, historical_cvar
from kallos.portfolio.strategies import ForecastStrategy, RebalanceContext

BETA = 0.95
CAP = 0.35
COINS = ["btc", "eth", "xrp", "ltc", "doge"]
WIDE = ["btc", "eth", "xrp", "ltc", "doge", "ada", "xlm", "bnb"]


@pytest.fixture(scope="module")
def closes(data_dir) -> pd.DataFrame:
    """Daily CoinGecko closes of the larger coins (date × coin_id), from ../shared/data."""
    long = pd.read_parquet(
        data_dir / "coingecko_daily_top50" / "long.parquet", columns=["date", "coin_id", "close"]
    )
    return long[long["coin_id"].isin(WIDE)].pivot(index="date", columns="coin_id", values="close")


def _window(closes: pd.DataFrame, coins: list[str], end: str, days: int = 365) -> pd.DataFrame:
    """``days`` daily simple returns ending at ``end`` (the study's covariance lookback)."""
    returns = closes[coins].pct_change().loc[:end].iloc[-days:]
    assert returns.notna().all().all() and len(returns) == days
    return returns


def _fit(returns: pd.DataFrame, current=None, **kw) -> MeanVariance:
    mu = pd.Series(0.1, index=returns.columns)  # min_cvar ignores expected returns
    return MeanVariance("min_cvar", **({"max_weight": CAP} | kw)).fit(
        mu, returns.cov() * 365, current, returns=returns
    )


def _reference(returns: pd.DataFrame, bounds=(0, CAP), constraints=()) -> pd.Series:
    mu = pd.Series(0.1, index=returns.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ef = EfficientCVaR(mu, returns, beta=BETA, weight_bounds=bounds, solver="CLARABEL")
        for c in constraints:
            ef.add_constraint(c)
        ef.min_cvar()
    return pd.Series(ef.weights, index=returns.columns)


def _empirical_cvar(w: np.ndarray, returns: np.ndarray, beta: float) -> float:
    """min over alpha of alpha + E[(loss - alpha)^+] / (1 - beta), alpha over the sample losses
    (the minimum of this piecewise-linear convex function is at a sample point)."""
    losses = -(returns @ w)
    return min(a + np.maximum(losses - a, 0).mean() / (1 - beta) for a in losses)


@pytest.mark.parametrize(
    ("coins", "end", "cap"),
    [(COINS, "2024-12-31", CAP), (WIDE, "2023-06-30", CAP), (COINS, "2022-06-30", 0.5)],
)
def test_min_cvar_matches_pypfopt_efficient_cvar(closes, coins, end, cap):
    returns = _window(closes, coins, end)
    m = _fit(returns, max_weight=cap)  # default min_names 3, min_weight_held 1e-4: not binding here
    assert m.objective_used_ == "min_cvar" and m.fallback_chain_ == ()
    assert m.result_.solver == "CLARABEL(direct)"  # the continuous optimum already holds >= 3 names
    ref = _reference(returns, bounds=(0, cap))
    assert (ref > 1e-4).sum() >= 3
    assert float(np.abs(m.weights_ - ref).max()) <= 1e-4
    assert list(m.weights_.index) == coins and m.weights_.sum() == pytest.approx(1.0, abs=1e-12)


def test_cvar_value_equals_the_empirical_computation(closes):
    returns = _window(closes, COINS, "2024-12-31")
    w = _fit(returns).weights_
    r = returns.to_numpy()
    ours = historical_cvar(w, returns, BETA)
    # 1. Rockafellar-Uryasev's auxiliary function minimised over alpha by enumeration.
    assert ours == pytest.approx(_empirical_cvar(w.to_numpy(), r, BETA), rel=1e-12)
    # 2. PyPortfolioOpt's optimal objective value (alpha + sum u / ((1 - beta) T)).
    ref_w = _reference(returns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ef = EfficientCVaR(
            pd.Series(0.1, index=COINS), returns, beta=BETA, weight_bounds=(0, CAP), solver="CLARABEL"
        )
        ef.min_cvar()
        _, ref_cvar = ef.portfolio_performance()
    assert ours == pytest.approx(ref_cvar, abs=1e-7)
    assert ours == pytest.approx(historical_cvar(ref_w, returns, BETA), abs=1e-8)
    # 3. An integer tail, (1 - beta) T = 18 of 360 days: the mean of the 18 worst losses.
    tail = returns.iloc[-360:]
    losses = np.sort(-(tail.to_numpy() @ w.to_numpy()))[::-1]
    assert historical_cvar(w, tail, BETA) == pytest.approx(losses[:18].mean(), rel=1e-12)
    # 4. Optimality: no random feasible portfolio (capped Dirichlet draws) has a lower CVaR.
    rng = np.random.default_rng(0)
    draws = [d for d in rng.dirichlet(np.ones(5), 4000) if d.max() <= CAP]
    assert len(draws) > 100
    assert min(_empirical_cvar(d, r, BETA) for d in draws[:300]) >= ours - 1e-12


def test_historical_cvar_edge_cases():
    returns = pd.DataFrame({"a": [0.01, -0.02, 0.03, np.nan], "b": [0.0, 0.0, 0.0, 0.5]})
    w = pd.Series([1.0, 0.0], index=["a", "b"])
    # The NaN row is dropped; 3 scenarios at beta 0.5: tail 1.5 = the worst loss 0.02 plus half of
    # the next (-0.01): (0.02 + 0.5 * -0.01) / 1.5 = 0.01.
    assert historical_cvar(w, returns, 0.5) == pytest.approx(0.01, abs=1e-15)
    constant = pd.DataFrame({"a": [0.01] * 5})
    assert historical_cvar(pd.Series([1.0], index=["a"]), constant, 0.9) == pytest.approx(-0.01)
    with pytest.raises(ConfigError, match=r"cvar_beta=1\.0"):
        historical_cvar(w, returns, 1.0)
    with pytest.raises(OptimizationError, match="no scenario returns for"):
        historical_cvar(pd.Series([1.0], index=["zz"]), returns)
    with pytest.raises(OptimizationError, match="no complete"):
        historical_cvar(w, pd.DataFrame({"a": [np.nan], "b": [0.1]}))


def test_min_cvar_needs_scenarios(closes):
    returns = _window(closes, COINS, "2024-12-31")
    mu, cov = pd.Series(0.1, index=COINS), returns.cov() * 365
    opt = MeanVariance("min_cvar")
    assert opt.needs_scenarios and not MeanVariance("max_sharpe").needs_scenarios
    with pytest.raises(OptimizationError, match="'min_cvar' needs scenario returns"):
        opt.fit(mu, cov)
    with pytest.raises(OptimizationError, match=r"no scenario returns for \['doge'\]"):
        opt.fit(mu, cov, returns=returns.drop(columns="doge"))
    with pytest.raises(OptimizationError, match="complete row"):
        opt.fit(mu, cov, returns=returns * np.nan)
    # Other objectives ignore the scenarios.
    free = MeanVariance("min_volatility").fit(mu, cov)
    with_scenarios = MeanVariance("min_volatility").fit(mu, cov, returns=returns)
    pd.testing.assert_series_equal(free.weights_, with_scenarios.weights_)


def test_scenario_rows_with_a_gap_are_dropped(closes):
    returns = _window(closes, COINS, "2024-12-31")
    gappy = returns.copy()
    gappy.iloc[10, 2] = np.nan
    expected = _fit(returns.drop(index=returns.index[10])).weights_
    pd.testing.assert_series_equal(_fit(gappy).weights_, expected)


@pytest.mark.parametrize(("beta", "match"), [(1.0, r"cvar_beta=1\.0"), (0.0, r"cvar_beta=0\.0")])
def test_cvar_beta_must_be_a_probability(beta, match):
    with pytest.raises(ConfigError, match=match):
        MeanVariance("min_cvar", cvar_beta=beta)
    with pytest.raises(ConfigError, match=match):
        MeanVariance("max_sharpe", cvar_beta=beta)  # a setting given is checked whatever the objective


def test_cvar_beta_changes_the_tail(closes):
    returns = _window(closes, COINS, "2024-12-31")
    w90 = _fit(returns, cvar_beta=0.90).weights_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ef = EfficientCVaR(pd.Series(0.1, index=COINS), returns, beta=0.90, weight_bounds=(0, CAP))
        ef.min_cvar()
    assert float(np.abs(w90 - pd.Series(ef.weights, index=COINS)).max()) <= 1e-4
    assert (
        historical_cvar(w90, returns, 0.90) <= historical_cvar(_fit(returns).weights_, returns, 0.90) + 1e-12
    )


def test_min_cvar_turnover_limit_matches_pypfopt(closes):
    returns = _window(closes, COINS, "2024-12-31")
    current = pd.Series([0.1, 0.1, 0.1, 0.35, 0.35], index=COINS)
    tau = 0.4
    free = _fit(returns).weights_
    assert np.abs(free - current).sum() > tau  # the limit binds
    m = _fit(returns, current, turnover_limit=tau, min_names=1, min_weight_held=0)
    assert np.abs(m.weights_ - current).sum() <= tau + 1e-7
    ref = _reference(returns, constraints=[lambda w: cp.norm1(w - current.to_numpy()) <= tau])
    assert float(np.abs(m.weights_ - ref).max()) <= 1e-4


def test_min_cvar_cardinality_equals_brute_force(closes):
    # The continuous optimum holds 4 of 6 names; at least 5 names at >= 0.05 each binds (a MILP).
    coins = ["btc", "eth", "xrp", "ltc", "doge", "bnb"]
    returns = _window(closes, coins, "2024-12-31")
    relaxed = _fit(returns, min_names=1, min_weight_held=0).weights_
    assert (relaxed > 1e-6).sum() < 5
    m = _fit(returns, min_names=5, min_weight_held=0.05)
    assert m.result_.solver == "SCIP" and m.objective_used_ == "min_cvar"
    held = m.weights_[m.weights_ > 0]
    assert len(held) >= 5 and (held >= 0.05 - 1e-9).all()
    best, best_w = np.inf, None
    for size in (5, 6):
        for support in itertools.combinations(coins, size):
            w = _reference(returns[list(support)], bounds=(0.05, CAP)).reindex(coins, fill_value=0.0)
            value = historical_cvar(w, returns, BETA)
            if value < best:
                best, best_w = value, w
    assert historical_cvar(m.weights_, returns, BETA) <= best + 1e-9
    assert float(np.abs(m.weights_ - best_w).max()) <= 1e-4


def test_min_cvar_stays_fully_invested_with_cash(closes):
    returns = _window(closes, COINS, "2024-12-31")
    m = _fit(returns, allow_cash=True)
    assert m.weights_.sum() == pytest.approx(1.0, abs=1e-12)


def test_forecast_strategy_passes_the_scenarios(closes):
    returns = _window(closes, COINS, "2024-12-31")
    ctx = RebalanceContext(
        date=returns.index[-1],
        universe=COINS,
        cov_matrix=returns.cov() * 365,
        market_caps=pd.Series(1.0, index=COINS),
        expected_returns={"gru": pd.Series(0.2, index=COINS)},
        returns=returns,
    )
    opt = MeanVariance.from_config(PortfolioConfig(objectives=("min_cvar",)), "min_cvar")
    res = ForecastStrategy("gru", opt).target(ctx)
    assert (res.objective_used, res.solver) == ("min_cvar", "CLARABEL(direct)")
    np.testing.assert_array_equal(res.weights.to_numpy(), _fit(returns).weights_.to_numpy())


def test_from_config_carries_every_portfolio_setting():
    config = PortfolioConfig(
        objectives=("min_cvar", "efficient_risk"),
        max_weight=0.4,
        min_names=2,
        min_weight_held=0.01,
        risk_aversion=2.0,
        l2_gamma=0.3,
        risk_free_rate=0.04,
        target_volatility=0.5,
        turnover_limit=0.6,
        allow_cash=True,
        mip_time_limit=3.0,
        cvar_beta=0.9,
    )
    opt = MeanVariance.from_config(config, "efficient_risk")
    assert opt.objective == "efficient_risk"
    assert (opt.max_weight, opt.min_names, opt.min_weight_held) == (0.4, 2, 0.01)
    assert (opt.risk_aversion, opt.l2_gamma, opt.risk_free_rate) == (2.0, 0.3, 0.04)
    assert (opt.target_volatility, opt.target_return, opt.cvar_beta) == (0.5, None, 0.9)
    assert (opt.constraints.turnover_limit, opt.constraints.allow_cash, opt.mip_time_limit) == (
        0.6,
        True,
        3.0,
    )
    with pytest.raises(ValueError, match="cvar_beta"):
        PortfolioConfig(cvar_beta=1.0)


def test_the_study_decides_min_cvar_on_the_covariance_window(real_panel):
    """The pipeline passes the portfolio config as one object and the lookback window as scenarios:
    each decision equals min_cvar on the trailing ``cov_lookback`` daily returns ending at t."""
    from kallos.config import load_config
    from kallos.pipeline.study import decide

    config = load_config(
        None,
        {
            "n_jobs": 1,
            "universe.top_n": 5,
            "backtest.start": "2023-03-20",
            "backtest.end": "2023-04-24",
            "forecast.forecasters": ["historical_mean"],
            "portfolio.objectives": ["min_cvar"],
            "portfolio.cvar_beta": 0.9,
        },
    )
    full = decide(real_panel, config)
    key = "historical_mean/min_cvar"
    decisions = full.decisions[full.decisions["key"] == key]
    assert len(decisions) == len(full.decision_dates) >= 5
    assert (decisions["objective_used"] == "min_cvar").all() and not decisions["fallback"].any()
    lookback = config.portfolio.cov_lookback
    for date in full.decision_dates:
        month = (date + pd.Timedelta(days=1)).to_period("M").to_timestamp()
        coins = list(full.universe.loc[full.universe["month"] == month, "coin_id"])
        window = real_panel.returns.loc[date - pd.Timedelta(days=lookback - 1) : date, coins]
        expected = MeanVariance.from_config(config.portfolio, "min_cvar").fit(
            pd.Series(0.1, index=coins), window.cov() * 365, returns=window
        )
        got = full.weights[(full.weights["key"] == key) & (full.weights["date"] == date)]
        got = got.set_index("coin_id")["weight"].reindex(coins, fill_value=0.0)
        np.testing.assert_allclose(got.to_numpy(), expected.weights_.to_numpy(), atol=1e-8)
