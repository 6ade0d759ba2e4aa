"""Tests of kallos.portfolio.optimizer: PyPortfolioOpt agreement, known answers, invariants, fallbacks."""

from __future__ import annotations

import math

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypfopt import EfficientFrontier, objective_functions
from scipy.optimize import minimize

from kallos.exceptions import OptimizationError
from kallos.portfolio import optimizer as opt_module
from kallos.portfolio.optimizer import (
    FALLBACK_OBJECTIVE,
    OBJECTIVES,
    MeanVariance,
    max_attainable_return,
    to_annual_expected_returns,
)
from kallos.types import OptimizationResult

COINS = [f"c{i}" for i in range(6)]
CAP = 0.35
DELTA = 3.0  # risk aversion of max_quadratic_utility
GAMMA = 0.5  # L2 penalty of max_return
MU = pd.Series([0.40, 0.25, 0.10, -0.05, 0.30, 0.15], index=COINS)


@pytest.fixture(scope="module")
def cov() -> pd.DataFrame:
    """Annualised covariance of 400 seeded correlated daily returns (6 assets)."""
    rng = np.random.default_rng(7)
    mix = rng.normal(size=(6, 6)) * 0.02
    daily = rng.normal(size=(400, 6)) @ mix + 0.001
    return pd.DataFrame(np.cov(daily, rowvar=False) * 365, index=COINS, columns=COINS)


def _pypfopt_weights(objective: str, mu: pd.Series, cov: pd.DataFrame) -> pd.Series:
    """The same problem solved directly with PyPortfolioOpt."""
    ef = EfficientFrontier(mu, cov, weight_bounds=(0, CAP))
    if objective == "max_sharpe":
        ef.max_sharpe(risk_free_rate=0.0)
    elif objective == "min_volatility":
        ef.min_volatility()
    elif objective == "max_quadratic_utility":
        ef.max_quadratic_utility(risk_aversion=DELTA)
    else:
        ef.add_objective(objective_functions.L2_reg, gamma=GAMMA)
        ef.convex_objective(lambda w, m: -(w @ m), m=mu.to_numpy())
    return pd.Series(ef.weights, index=mu.index)


def _fit(objective: str, mu: pd.Series, cov: pd.DataFrame, **kw) -> MeanVariance:
    params = {"max_weight": CAP, "risk_aversion": DELTA, "l2_gamma": GAMMA} | kw
    return MeanVariance(objective=objective, **params).fit(mu, cov)


def test_registry():
    assert set(OBJECTIVES) == {"max_sharpe", "min_volatility", "max_quadratic_utility", "max_return"}
    assert FALLBACK_OBJECTIVE == "min_volatility"


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_agrees_with_pypfopt(objective, cov):
    m = _fit(objective, MU, cov)
    assert m.objective_used_ == objective
    assert m.fallback_chain_ == ()
    ref = _pypfopt_weights(objective, MU, cov)
    np.testing.assert_allclose(m.weights_.to_numpy(), ref.to_numpy(), rtol=0, atol=1e-5)
    assert list(m.weights_.index) == COINS


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_invariants(objective, cov):
    w = _fit(objective, MU, cov, min_names=3).weights_
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert (w >= 0).all()
    assert (w <= CAP + 1e-12).all()
    assert (w >= 1e-4).sum() >= 3


def test_max_return_l2_known_answer(cov):
    # max mu'w − γ‖w‖² s.t. Σw = 1, 0 ≤ w ≤ 0.35. KKT: w_i = clip((mu_i − λ) / (2γ), 0, 0.35);
    # with γ = 0.5, w_i = clip(mu_i − λ, 0, 0.35). λ = 0.0375 gives
    #   c0: 0.4 − 0.0375 = 0.3625 → 0.35, c1: 0.2125, c2: 0.0625, c3: −0.0875 → 0, c4: 0.2625, c5: 0.1125,
    # summing to 0.35 + 0.2125 + 0.0625 + 0.2625 + 0.1125 = 1. (The covariance plays no part.)
    w = _fit("max_return", MU, cov).weights_
    np.testing.assert_allclose(w.to_numpy(), [0.35, 0.2125, 0.0625, 0.0, 0.2625, 0.1125], atol=1e-6)


def test_max_sharpe_and_min_volatility_match_scipy(cov):
    # An independent solver (SLSQP) on the untransformed problems: ours is at least as good.
    s, mu = cov.to_numpy(), MU.to_numpy()
    bounds = [(0.0, CAP)] * 6
    budget = {"type": "eq", "fun": lambda w: w.sum() - 1.0}
    x0 = np.full(6, 1 / 6)

    def sharpe(w):
        return (w @ mu) / math.sqrt(w @ s @ w)

    ref = minimize(lambda w: -sharpe(w), x0, bounds=bounds, constraints=[budget], method="SLSQP", tol=1e-12)
    w = _fit("max_sharpe", MU, cov).weights_.to_numpy()
    assert sharpe(w) >= -ref.fun - 1e-6
    np.testing.assert_allclose(w, ref.x, atol=1e-3)

    ref = minimize(lambda w: w @ s @ w, x0, bounds=bounds, constraints=[budget], method="SLSQP", tol=1e-14)
    w = _fit("min_volatility", MU, cov).weights_.to_numpy()
    assert w @ s @ w <= ref.fun * (1 + 1e-6)
    np.testing.assert_allclose(w, ref.x, atol=1e-3)


def test_all_negative_expected_returns_fall_back_to_min_volatility(cov):
    mu = pd.Series(-0.10, index=COINS)
    m = _fit("max_sharpe", mu, cov)
    assert m.objective_used_ == "min_volatility"
    assert len(m.fallback_chain_) == 1
    assert m.fallback_chain_[0].startswith("max_sharpe:")
    assert "risk-free rate" in m.fallback_chain_[0]
    pd.testing.assert_series_equal(m.weights_, _fit("min_volatility", mu, cov).weights_)
    res = m.result_
    assert isinstance(res, OptimizationResult)
    assert (res.objective_requested, res.objective_used, res.used_fallback) == (
        "max_sharpe",
        "min_volatility",
        True,
    )


def test_max_sharpe_infeasible_under_the_cap(cov):
    # Only c0 beats the risk-free rate, but the best capped portfolio is
    # 0.35 × 0.10 + 0.35 × (−0.50) + 0.30 × (−0.50) = −0.29 < 0: no capped portfolio has a positive
    # excess return, so the max-Sharpe problem is infeasible and min_volatility is used.
    mu = pd.Series([0.10, -0.50, -0.50, -0.50, -0.50, -0.50], index=COINS)
    m = _fit("max_sharpe", mu, cov)
    assert m.objective_used_ == "min_volatility"
    assert len(m.fallback_chain_) == 1
    assert "no capped portfolio beats the risk-free rate" in m.fallback_chain_[0]
    assert "-29.00%" in m.fallback_chain_[0]


def test_max_sharpe_feasible_with_one_positive_asset(cov):
    # Best capped return 0.35 × 1.0 + 0.65 × (−0.1) = 0.285 > 0, so max_sharpe succeeds.
    mu = pd.Series([1.0, -0.1, -0.1, -0.1, -0.1, -0.1], index=COINS)
    m = _fit("max_sharpe", mu, cov)
    assert m.objective_used_ == "max_sharpe"
    assert m.fallback_chain_ == ()
    assert m.weights_["c0"] == pytest.approx(CAP, abs=1e-6)
    assert m.weights_ @ mu > 0


def test_risk_free_rate_above_every_return_falls_back(cov):
    mu = pd.Series(0.02, index=COINS)
    m = _fit("max_sharpe", mu, cov, risk_free_rate=0.05)
    assert m.objective_used_ == "min_volatility"
    assert "no capped portfolio beats the risk-free rate" in m.fallback_chain_[0]


def test_too_few_names_falls_back_to_equal_weight(cov):
    # max_sharpe holds 3 names and min_volatility 4 (see test_min_weight_held_*); neither reaches 6.
    m = _fit("max_sharpe", MU, cov, min_names=6)
    assert m.objective_used_ == "equal_weight"
    assert m.fallback_chain_ == (
        "max_sharpe: holds 3 < min_names=6 names",
        "min_volatility: holds 4 < min_names=6 names",
    )
    np.testing.assert_allclose(m.weights_.to_numpy(), np.full(6, 1 / 6))


def test_solver_failure_is_recorded(cov, monkeypatch):
    def broken(ef, opt):
        raise cp.error.SolverError("solver exploded")

    monkeypatch.setitem(OBJECTIVES, "max_quadratic_utility", broken)
    m = _fit("max_quadratic_utility", MU, cov)
    assert m.objective_used_ == "min_volatility"
    assert m.fallback_chain_ == ("max_quadratic_utility: solver exploded",)


def test_min_weight_held_zeroes_small_weights_and_redistributes(cov):
    # min_volatility gives about [0, 0.0574, 0, 0.35, 0.2517, 0.3410]. With min_weight_held 0.08,
    # c1 is dropped; the rest (sum 0.9426) is re-normalised under the cap: c3 and c5 are capped at
    # 0.35 and c4 receives the remaining 1 − 0.70 = 0.30.
    raw = _pypfopt_weights("min_volatility", MU, cov)
    assert 0.0 < raw["c1"] < 0.08 and raw[["c3", "c4", "c5"]].min() > 0.08
    m = _fit("min_volatility", MU, cov, min_weight_held=0.08)
    np.testing.assert_allclose(m.weights_.to_numpy(), [0, 0, 0, 0.35, 0.30, 0.35], atol=1e-9)
    assert m.fallback_chain_ == ()


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_min_weight_held_zero_keeps_the_optimum(objective, cov):
    # A threshold of 0 (allowed by the config) must not turn corner solutions into failures.
    m = _fit(objective, MU, cov, min_weight_held=0.0)
    assert m.objective_used_ == objective
    assert m.fallback_chain_ == ()
    np.testing.assert_allclose(m.weights_.to_numpy(), _pypfopt_weights(objective, MU, cov), atol=1e-5)


def test_refit_resets_fitted_state(cov):
    m = MeanVariance(objective="max_sharpe", max_weight=CAP)
    assert not hasattr(m, "weights_")
    m.fit(pd.Series(-0.1, index=COINS), cov)
    assert m.fallback_chain_ != ()
    m.fit(MU, cov)
    assert m.fallback_chain_ == ()
    assert m.objective_used_ == "max_sharpe"


@pytest.mark.parametrize(
    "make",
    [
        lambda mu, cov: (mu, cov.loc[COINS[::-1], COINS[::-1]]),  # same labels, other order
        lambda mu, cov: (mu.iloc[:5], cov),  # mu shorter
        lambda mu, cov: (mu.rename({"c0": "x"}), cov),  # a label differs
        lambda mu, cov: (mu, cov.loc[:, COINS[::-1]]),  # columns in another order
        lambda mu, cov: (mu.where(mu.index != "c2"), cov),  # NaN expected return
    ],
)
def test_malformed_inputs_raise(make, cov):
    mu, c = make(MU, cov)
    with pytest.raises(OptimizationError):
        MeanVariance().fit(mu, c)


def test_cap_too_small_for_full_investment_raises(cov):
    with pytest.raises(OptimizationError, match=r"max_weight=0\.15 x 6"):
        MeanVariance(max_weight=0.15).fit(MU, cov)  # 0.15 × 6 = 0.9 < 1


def test_max_attainable_return_known_answer():
    # Greedy fill under a 0.35 cap: 0.35 × 0.5 + 0.35 × 0.2 + 0.30 × 0.1 = 0.175 + 0.07 + 0.03 = 0.275.
    mu = pd.Series([0.1, -0.1, 0.5, 0.2], index=list("abcd"))
    assert max_attainable_return(mu, 0.35) == pytest.approx(0.275, abs=1e-15)
    # No binding cap: everything in the best asset.
    assert max_attainable_return(mu, 1.0) == pytest.approx(0.5, abs=1e-15)
    # Cap 0.25 × 4 = 1: the equal-weight mean (0.1 − 0.1 + 0.5 + 0.2) / 4 = 0.175.
    assert max_attainable_return(mu, 0.25) == pytest.approx(0.175, abs=1e-15)


def test_to_annual_expected_returns_known_answer():
    # 7-day log forecast 0.07 → daily log 0.01 → daily simple e^0.01 − 1 = 0.010050167...
    #   → × 365 = 3.668311...; a forecast of 0 stays 0;
    # −0.07 → (e^−0.01 − 1) × 365 = −0.009950166 × 365 = −3.631811...
    f = pd.Series([0.07, 0.0, -0.07], index=["a", "b", "c"])
    got = to_annual_expected_returns(f, horizon=7)
    np.testing.assert_allclose(got.to_numpy(), [3.66831096, 0.0, -3.63181068], rtol=1e-8)
    assert list(got.index) == ["a", "b", "c"]
    np.testing.assert_allclose(
        to_annual_expected_returns(f, horizon=7, periods_per_year=252).to_numpy(),
        got.to_numpy() * 252 / 365,
    )
    assert opt_module.to_annual_expected_returns is to_annual_expected_returns


@settings(max_examples=30, deadline=None)
@given(
    mu=st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=6, max_size=6),
    objective=st.sampled_from(sorted(OBJECTIVES)),
    cap=st.sampled_from([0.2, 0.35, 0.5, 1.0]),
)
def test_property_weights_always_valid(mu, objective, cap):
    rng = np.random.default_rng(11)
    mix = rng.normal(size=(6, 6)) * 0.02
    daily = rng.normal(size=(200, 6)) @ mix
    cov = pd.DataFrame(np.cov(daily, rowvar=False) * 365, index=COINS, columns=COINS)
    m = MeanVariance(objective=objective, max_weight=cap, min_names=3).fit(pd.Series(mu, index=COINS), cov)
    w = m.weights_
    assert list(w.index) == COINS
    assert w.sum() == pytest.approx(1.0, abs=1e-9)
    assert (w >= 0).all() and (w <= cap + 1e-9).all()
    assert (w >= 1e-4).sum() >= 3
    assert m.objective_used_ in {objective, "min_volatility", "equal_weight"}
    assert (m.objective_used_ == objective) == (m.fallback_chain_ == ())
