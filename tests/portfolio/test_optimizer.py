"""Tests of kallos.portfolio.optimizer: PyPortfolioOpt agreement, cardinality, turnover, cash, fallbacks.

``min_cvar`` has its own module of tests (test_min_cvar.py); the back-end equivalence of every
registered objective is tested here.
"""

from __future__ import annotations

import itertools
import math
import pickle

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypfopt import EfficientFrontier, objective_functions
from scipy.optimize import minimize

from kallos.exceptions import ConfigError, OptimizationError
from kallos.portfolio import optimizer as opt_module
from kallos.portfolio import problem as problem_module
from kallos.portfolio.backends import ClarabelProgram, solve_cvxpy
from kallos.portfolio.constraints import formulate
from kallos.portfolio.objectives import Objective
from kallos.portfolio.optimizer import (
    FALLBACK_OBJECTIVE,
    OBJECTIVES,
    Attempt,
    MeanVariance,
    PortfolioConstraints,
    max_attainable_return,
    to_annual_expected_returns,
)
from kallos.portfolio.problem import ProblemData, perspective_split, sqrt_factor
from kallos.types import OptimizationResult

COINS = [f"c{i}" for i in range(6)]
CAP = 0.35
DELTA = 3.0  # risk aversion of max_quadratic_utility
GAMMA = 0.5  # L2 penalty of max_return
TARGET_VOL = 0.5  # efficient_risk, annual
TARGET_RET = 0.2  # efficient_return, annual
MU = pd.Series([0.40, 0.25, 0.10, -0.05, 0.30, 0.15], index=COINS)
PYPFOPT_OBJECTIVES = [
    "max_sharpe",
    "min_volatility",
    "efficient_risk",
    "efficient_return",
    "max_quadratic_utility",
]
#: Objectives on expected returns and a covariance alone (min_cvar also needs scenarios).
MEAN_VARIANCE = sorted(o for o in OBJECTIVES if not OBJECTIVES[o].needs_scenarios)


def _cov(seed: int = 7, n: int = 6, days: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(n, n)) * 0.02
    daily = rng.normal(size=(days, n)) @ mix + 0.001
    names = [f"c{i}" for i in range(n)]
    return pd.DataFrame(np.cov(daily, rowvar=False) * 365, index=names, columns=names)


@pytest.fixture(scope="module")
def cov() -> pd.DataFrame:
    """Annualised covariance of 400 seeded correlated daily returns (6 assets)."""
    return _cov()


def _pypfopt(objective: str, mu: pd.Series, cov: pd.DataFrame, rf: float = 0.0, bounds=(0, CAP), **kw):
    """The same problem solved directly with PyPortfolioOpt (its own formulation and solver defaults)."""
    ef = EfficientFrontier(mu, cov, weight_bounds=bounds)
    for constraint in kw.get("constraints", []):
        ef.add_constraint(constraint)
    calls = {
        "max_sharpe": lambda: ef.max_sharpe(risk_free_rate=rf),
        "min_volatility": ef.min_volatility,
        "efficient_risk": lambda: ef.efficient_risk(TARGET_VOL),
        "efficient_return": lambda: ef.efficient_return(TARGET_RET),
        "max_quadratic_utility": lambda: ef.max_quadratic_utility(risk_aversion=DELTA),
    }
    if objective == "max_return":
        ef.add_objective(objective_functions.L2_reg, gamma=GAMMA)
        ef.convex_objective(lambda w, m: -(w @ m), m=mu.to_numpy())
    else:
        calls[objective]()
    return pd.Series(ef.weights, index=mu.index)


def _fit(objective: str, mu: pd.Series, cov: pd.DataFrame, current=None, **kw) -> MeanVariance:
    params = {
        "max_weight": CAP,
        "risk_aversion": DELTA,
        "l2_gamma": GAMMA,
        "target_volatility": TARGET_VOL,
        "target_return": TARGET_RET,
    } | kw
    return MeanVariance(objective=objective, **params).fit(mu, cov, current)


def _no_direct(monkeypatch) -> None:
    """Make the direct CLARABEL back-end report failure, so every solve goes through cvxpy."""
    monkeypatch.setattr(ClarabelProgram, "solve", lambda self, problem: (None, "disabled"))


def test_registry():
    assert set(OBJECTIVES) == {*PYPFOPT_OBJECTIVES, "max_return", "min_cvar"}
    assert all(name == o.name and isinstance(o, Objective) for name, o in OBJECTIVES.items())
    assert [o for o in OBJECTIVES if OBJECTIVES[o].needs_scenarios] == ["min_cvar"]
    assert FALLBACK_OBJECTIVE == "min_volatility"


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "cvxpy"])
@pytest.mark.parametrize("objective", MEAN_VARIANCE)
def test_agrees_with_pypfopt(objective, direct, cov, monkeypatch):
    """Both back-ends (CLARABEL direct, cvxpy) compile the one description to PyPortfolioOpt's answer."""
    if not direct:
        _no_direct(monkeypatch)
    m = _fit(objective, MU, cov)
    assert m.objective_used_ == objective
    assert m.fallback_chain_ == ()
    assert m.result_.solver == ("CLARABEL(direct)" if direct else "CLARABEL")
    ref = _pypfopt(objective, MU, cov)
    np.testing.assert_allclose(m.weights_.to_numpy(), ref.to_numpy(), rtol=0, atol=1e-5)
    assert list(m.weights_.index) == COINS


@pytest.mark.parametrize("objective", ["max_sharpe", "efficient_return", "max_quadratic_utility"])
def test_risk_free_rate_agrees_with_pypfopt(objective, cov):
    # Fully invested, (mu - rf)'w = mu'w - rf: only max_sharpe moves; efficient_return's target is total.
    m = _fit(objective, MU, cov, risk_free_rate=0.05)
    np.testing.assert_allclose(m.weights_, _pypfopt(objective, MU, cov, rf=0.05), atol=1e-5)


def test_pattern_is_compiled_once_and_resolved(cov):
    """One CLARABEL pattern per (objective, layout); re-solves (a fresh solver on the compiled
    pattern) equal fresh solves and PyPortfolioOpt."""
    m = MeanVariance("max_sharpe", max_weight=CAP)
    rng = np.random.default_rng(3)
    for seed in range(4):
        mu = pd.Series(rng.normal(0.2, 0.2, 6), index=COINS)
        c = _cov(seed + 20)
        m.fit(mu, c)
        fresh = MeanVariance("max_sharpe", max_weight=CAP).fit(mu, c)
        np.testing.assert_allclose(m.weights_, fresh.weights_, atol=1e-7)
        np.testing.assert_allclose(m.weights_, _pypfopt("max_sharpe", mu, c), atol=1e-5)
        assert m.result_.solver == "CLARABEL(direct)"
    assert [key[0] for key in m._direct] == ["max_sharpe"]


@pytest.mark.parametrize("objective", MEAN_VARIANCE)
def test_weights_do_not_depend_on_earlier_solves(objective):
    """A decision is a pure function of its inputs: after other problems were solved with the same
    optimiser, the weights equal a fresh optimiser's bit for bit (an updated CLARABEL solver kept
    state and drifted by ~1e-11; the trading cycle's parity with the backtest relies on this)."""
    kwargs = {"max_weight": CAP, "target_volatility": TARGET_VOL, "target_return": TARGET_RET}
    rng = np.random.default_rng(11)
    problems = [(pd.Series(rng.normal(0.3, 0.2, 6), index=COINS), _cov(seed)) for seed in range(5)]
    used = MeanVariance(objective, **kwargs)
    for mu, c in problems:
        used.fit(mu, c)
    fresh = MeanVariance(objective, **kwargs).fit(*problems[-1])
    assert used.result_.solver == fresh.result_.solver
    np.testing.assert_array_equal(used.weights_.to_numpy(), fresh.weights_.to_numpy())


_PARAMETERS = {"max_quadratic_utility": DELTA, "max_return": GAMMA, "min_cvar": 0.9}


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    objective=st.sampled_from(sorted(OBJECTIVES)),
    turnover=st.booleans(),
    cash=st.booleans(),
)
def test_both_back_ends_compile_the_same_problem(seed, objective, turnover, cash):
    """Every registered objective, with every constraint, is one Problem: the direct CLARABEL
    compilation and the cvxpy one reach the same optimum (or both report no solution)."""
    rng = np.random.default_rng(seed)
    n = 6
    cons = PortfolioConstraints(CAP, 1, 0.0, 0.3 if turnover else None, cash)
    objective_ = OBJECTIVES[objective]
    parameter = {"efficient_risk": 0.6**2, "efficient_return": 0.15}.get(
        objective, _PARAMETERS.get(objective)
    )
    scenarios = rng.standard_t(4, size=(120, n)) * 0.03 + 0.001
    data = ProblemData(
        excess=rng.normal(0.2, 0.3, n),
        factor=sqrt_factor(_cov(seed % 50).to_numpy()),
        lower=np.zeros(n),
        upper=np.full(n, CAP),
        w_drift=rng.dirichlet(np.ones(n)),
        budget=0.3,
        scalar=0.0 if parameter is None else parameter,
        scenarios=scenarios,
    )
    if objective_.homogeneous and not (data.excess > 0).any():
        data = ProblemData(**(vars(data) | {"excess": np.abs(data.excess)}))
    problem = formulate(objective_, data, cons)
    direct, status = ClarabelProgram(formulate(objective_, data.probe(), cons)).solve(problem)
    ref, ref_status = solve_cvxpy(problem, "CLARABEL")
    assert (direct is None) == (ref is None), (status, ref_status)
    if direct is not None:
        w, w_ref = direct["x"] / direct["s"][0], ref["x"] / ref["s"][0]
        np.testing.assert_allclose(w, w_ref, atol=1e-5)


def test_a_new_objective_is_one_class(cov, monkeypatch):
    """Adding an objective needs a subclass and a registry line: both back-ends, cardinality and the
    fallback chain come with it. Here min ||w||^2 (equal weight under the cap) is added."""

    class MinConcentration(Objective):
        name = "min_concentration"

        def build(self, p):
            p.add_l2(1.0)

    monkeypatch.setitem(OBJECTIVES, "min_concentration", MinConcentration())
    m = MeanVariance("min_concentration", max_weight=CAP).fit(MU, cov)
    np.testing.assert_allclose(m.weights_.to_numpy(), np.full(6, 1 / 6), atol=1e-8)
    assert m.result_.solver == "CLARABEL(direct)"
    _no_direct(monkeypatch)
    m = MeanVariance("min_concentration", max_weight=CAP, min_names=3).fit(MU, cov)
    np.testing.assert_allclose(m.weights_.to_numpy(), np.full(6, 1 / 6), atol=1e-6)
    assert m.result_.solver == "CLARABEL"


def test_fitted_optimizer_pickles_and_resolves(cov):
    """The in-place CLARABEL solver is dropped on pickling and rebuilt; results are unchanged."""
    m = _fit("max_sharpe", MU, cov)
    clone = pickle.loads(pickle.dumps(m))
    np.testing.assert_allclose(clone.fit(MU * 1.1, cov).weights_, m.fit(MU * 1.1, cov).weights_, atol=1e-9)


def test_direct_path_failure_hands_over_to_cvxpy(cov, monkeypatch):
    monkeypatch.setattr(ClarabelProgram, "solve", lambda self, problem: (None, "solver_error"))
    m = _fit("max_sharpe", MU, cov)
    assert m.objective_used_ == "max_sharpe" and m.fallback_chain_ == ()
    assert m.result_.attempts == (
        Attempt("max_sharpe", "CLARABEL", "optimal", "CLARABEL(direct) solver_error; re-solved with cvxpy"),
    )
    np.testing.assert_allclose(m.weights_, _pypfopt("max_sharpe", MU, cov), atol=1e-5)


def test_sqrt_factor_reproduces_a_singular_cov():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 5))
    cov = x.T @ x  # rank 3 of 5
    f = sqrt_factor(cov)
    np.testing.assert_allclose(f.T @ f, cov, atol=1e-12)
    full = _cov().to_numpy()  # positive definite: the Cholesky branch
    np.testing.assert_allclose(sqrt_factor(full).T @ sqrt_factor(full), full, rtol=1e-12, atol=1e-15)
    indefinite = np.diag([1.0, 0.5, -1e-9])  # rounding-level negative eigenvalue: clipped to 0
    np.testing.assert_allclose(sqrt_factor(indefinite).T @ sqrt_factor(indefinite), np.diag([1, 0.5, 0]))


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
    reason = "no portfolio with positive expected excess return under max_weight 0.35, min_names 3"
    assert m.fallback_chain_ == (f"max_sharpe (precheck infeasible): {reason}",)
    res = m.result_
    assert type(res) is OptimizationResult  # one result type for every strategy
    assert res.attempts == (
        Attempt("max_sharpe", "precheck", "infeasible", reason),
        Attempt("min_volatility", "CLARABEL(direct)", "optimal"),
    )
    assert res.describe() == (
        f"max_sharpe (precheck infeasible): {reason} → min_volatility (CLARABEL(direct) optimal)"
    )
    assert (res.objective_requested, res.objective_used, res.used_fallback, res.solver) == (
        "max_sharpe",
        "min_volatility",
        True,
        "CLARABEL(direct)",
    )
    pd.testing.assert_series_equal(m.weights_, _fit("min_volatility", mu, cov).weights_)


def test_max_sharpe_infeasible_under_the_cap(cov):
    # Only c0 beats the risk-free rate, but the best capped portfolio is
    # 0.35 × 0.10 + 0.35 × (−0.50) + 0.30 × (−0.50) = −0.29 < 0: infeasible → min_volatility.
    mu = pd.Series([0.10, -0.50, -0.50, -0.50, -0.50, -0.50], index=COINS)
    assert max_attainable_return(mu, CAP) == pytest.approx(-0.29)
    m = _fit("max_sharpe", mu, cov)
    assert m.objective_used_ == "min_volatility"
    assert "no portfolio with positive expected excess return" in m.fallback_chain_[0]


def test_max_sharpe_feasible_with_one_positive_asset(cov):
    # Best capped return 0.35 × 1.0 + 0.65 × (−0.1) = 0.285 > 0, so max_sharpe succeeds.
    mu = pd.Series([1.0, -0.1, -0.1, -0.1, -0.1, -0.1], index=COINS)
    m = _fit("max_sharpe", mu, cov)
    assert m.objective_used_ == "max_sharpe"
    assert m.fallback_chain_ == ()
    assert m.weights_["c0"] == pytest.approx(CAP, abs=1e-6)
    assert m.weights_ @ mu > 0


def test_risk_free_rate_above_every_return_falls_back(cov):
    m = _fit("max_sharpe", pd.Series(0.02, index=COINS), cov, risk_free_rate=0.05)
    assert m.objective_used_ == "min_volatility"
    assert "positive expected excess return" in m.fallback_chain_[0]


def test_target_volatility_below_the_minimum_falls_back(cov):
    # The minimum volatility is ~0.38 a year, so 0.10 is out of reach fully invested.
    sigma_mv = math.sqrt(
        _fit("min_volatility", MU, cov).weights_ @ cov @ _fit("min_volatility", MU, cov).weights_
    )
    assert sigma_mv > 0.3
    m = _fit("efficient_risk", MU, cov, target_volatility=0.10)
    assert m.objective_used_ == "min_volatility"
    assert "no portfolio with volatility <= target_volatility 10.00%" in m.fallback_chain_[0]
    m = _fit("efficient_return", MU, cov, target_return=0.50)  # above the best capped 0.3225
    assert "no portfolio reaches target_return 50.00%" in m.fallback_chain_[0]


def test_every_solver_failing_ends_in_equal_weight(cov, monkeypatch):
    monkeypatch.setattr(opt_module, "SOLVER", "NO_SUCH_SOLVER")
    _no_direct(monkeypatch)
    m = _fit("max_quadratic_utility", MU, cov)
    assert m.objective_used_ == "equal_weight"
    assert [a.objective for a in m.result_.attempts] == [
        "max_quadratic_utility",
        "min_volatility",
        "equal_weight",
    ]
    assert all("solver error" in a.status for a in m.result_.attempts[:2])
    np.testing.assert_allclose(m.weights_.to_numpy(), np.full(6, 1 / 6))


def test_refit_resets_fitted_state(cov):
    m = MeanVariance(objective="max_sharpe", max_weight=CAP)
    assert not hasattr(m, "weights_")
    m.fit(pd.Series(-0.1, index=COINS), cov)
    assert m.fallback_chain_ != ()
    m.fit(MU, cov)
    assert m.fallback_chain_ == ()
    assert m.objective_used_ == "max_sharpe"


# ----------------------------------------------------------------------------- cardinality


def _score(objective: str, w: np.ndarray, mu: np.ndarray, s: np.ndarray) -> float:
    """The objective value to minimise, in the untransformed weights."""
    return {
        "max_sharpe": lambda: -(w @ mu) / math.sqrt(w @ s @ w),
        "min_volatility": lambda: w @ s @ w,
        "max_quadratic_utility": lambda: -(w @ mu) + DELTA / 2 * (w @ s @ w),
    }[objective]()


def _brute_force(objective: str, mu: pd.Series, cov: pd.DataFrame, k: int, floor: float) -> np.ndarray:
    """Enumerate every support of >= k names; on each, PyPortfolioOpt with bounds (floor, CAP)."""
    best, best_w = np.inf, None
    n = len(mu)
    for size in range(k, n + 1):
        for support in itertools.combinations(range(n), size):
            if size * CAP < 1 or size * floor > 1:
                continue
            idx = mu.index[list(support)]
            try:
                sub = _pypfopt(objective, mu[idx], cov.loc[idx, idx], bounds=(floor, CAP))
            except Exception:
                continue
            w = sub.reindex(mu.index, fill_value=0.0).to_numpy()
            value = _score(objective, w, mu.to_numpy(), cov.to_numpy())
            if value < best:
                best, best_w = value, w
    return best_w


@pytest.mark.parametrize(
    ("objective", "k"),
    [("min_volatility", 5), ("max_sharpe", 4), ("max_sharpe", 5), ("max_quadratic_utility", 5)],
)
def test_cardinality_equals_brute_force(objective, k, cov):
    # The continuous optima hold 3 (max_sharpe, mqu) and 4 (min_volatility) names, so k binds.
    floor = 0.05
    relaxed = _fit(objective, MU, cov, min_names=1, min_weight_held=0).weights_
    assert (relaxed > 1e-6).sum() < k
    m = _fit(objective, MU, cov, min_names=k, min_weight_held=floor)
    assert m.objective_used_ == objective and m.result_.solver == "SCIP"
    w = m.weights_.to_numpy()
    held = w > 0
    assert held.sum() >= k and (w[held] >= floor - 1e-7).all()
    ref = _brute_force(objective, MU, cov, k, floor)
    s = cov.to_numpy()
    assert _score(objective, w, MU.to_numpy(), s) <= _score(objective, ref, MU.to_numpy(), s) + 1e-6
    np.testing.assert_allclose(w, ref, atol=2e-4)


def test_small_weights_are_not_held(cov):
    # min_volatility holds c1 at ~0.057; with min_weight_held 0.08 c1 must be 0 or >= 0.08.
    raw = _pypfopt("min_volatility", MU, cov)
    assert 0.0 < raw["c1"] < 0.08
    m = _fit("min_volatility", MU, cov, min_weight_held=0.08)
    w = m.weights_
    assert w["c1"] == 0 or w["c1"] >= 0.08 - 1e-7
    assert m.result_.solver == "SCIP"
    ref = _brute_force("min_volatility", MU, cov, 3, 0.08)
    np.testing.assert_allclose(w.to_numpy(), ref, atol=2e-4)


# ----------------------------------------------------------------------------- turnover and cash


@pytest.mark.parametrize("objective", ["min_volatility", "max_quadratic_utility", "efficient_return"])
def test_turnover_limit_agrees_with_pypfopt(objective, cov):
    current = pd.Series([0.3, 0.3, 0.2, 0.2, 0.0, 0.0], index=COINS)
    tau = 0.3
    m = _fit(objective, MU, cov, current, turnover_limit=tau, min_names=1, min_weight_held=0)
    w = m.weights_
    assert np.abs(w - current).sum() <= tau + 1e-7
    assert np.abs(_fit(objective, MU, cov).weights_ - current).sum() > tau  # the limit binds
    ref = _pypfopt(objective, MU, cov, constraints=[lambda x: cp.norm1(x - current.to_numpy()) <= tau])
    np.testing.assert_allclose(w.to_numpy(), ref.to_numpy(), atol=1e-5)


def test_turnover_limit_on_max_sharpe_is_homogenised(cov):
    current = pd.Series([0.3, 0.3, 0.2, 0.2, 0.0, 0.0], index=COINS)
    free = _fit("max_sharpe", MU, cov).weights_
    tight = _fit("max_sharpe", MU, cov, current, turnover_limit=0.3)
    w = tight.weights_
    assert tight.objective_used_ == "max_sharpe"
    assert np.abs(w - current).sum() == pytest.approx(0.3, abs=1e-6)  # binding
    s = cov.to_numpy()

    def sharpe(x):
        return (x @ MU.to_numpy()) / math.sqrt(x @ s @ x)

    # Best Sharpe on the turnover ball: no feasible point found by SLSQP beats it.
    cons = [
        {"type": "eq", "fun": lambda x: x.sum() - 1.0},
        {"type": "ineq", "fun": lambda x: 0.3 - np.abs(x - current.to_numpy()).sum()},
    ]
    ref = minimize(
        lambda x: -sharpe(x), current.to_numpy(), bounds=[(0, CAP)] * 6, constraints=cons, method="SLSQP"
    )
    assert sharpe(w.to_numpy()) >= -ref.fun - 1e-5
    assert sharpe(w.to_numpy()) < sharpe(free.to_numpy())


def test_cash_when_nothing_is_worth_holding(cov):
    # Every excess return negative: quadratic utility wants no risky asset, but min_names 3 still
    # binds, so exactly three names are held at the minimum weight 1e-4 and the rest is cash.
    m = _fit("max_quadratic_utility", pd.Series(-0.1, index=COINS), cov, allow_cash=True)
    assert m.objective_used_ == "max_quadratic_utility"
    np.testing.assert_allclose(np.sort(m.weights_.to_numpy()), [0, 0, 0, 1e-4, 1e-4, 1e-4], atol=1e-9)
    m = _fit("max_quadratic_utility", pd.Series(-0.1, index=COINS), cov, allow_cash=True, min_names=1)
    np.testing.assert_allclose(np.sort(m.weights_.to_numpy()), [0, 0, 0, 0, 0, 1e-4], atol=1e-9)


def test_cash_reaches_a_low_target_volatility(cov):
    # Fully invested, 10% volatility is infeasible; with cash the optimum scales the risky sleeve
    # down until the volatility constraint binds at exactly 10%.
    m = _fit("efficient_risk", MU, cov, target_volatility=0.10, allow_cash=True)
    w = m.weights_
    assert m.objective_used_ == "efficient_risk"
    assert math.sqrt(w @ cov @ w) == pytest.approx(0.10, rel=1e-5)
    assert 0 < w.sum() < 1
    # max_sharpe and min_volatility stay fully invested even with allow_cash.
    assert _fit("max_sharpe", MU, cov, allow_cash=True).weights_.sum() == pytest.approx(1.0, abs=1e-9)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_weight_held": 0.3, "min_names": 4}, r"min_weight_held=0\.3 x min_names=4 > 1"),
        ({"min_weight_held": 0.5}, r"min_weight_held=0\.5 must be in \[0, max_weight=0\.35\]"),
        ({"turnover_limit": 0.0}, r"turnover_limit=0\.0 must be > 0"),
        ({"min_names": 0}, r"min_names=0"),
        ({"max_weight": 0.0}, r"max_weight=0\.0"),
    ],
)
def test_infeasible_constraint_sets_raise_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        PortfolioConstraints(**({"max_weight": 0.35} | kwargs))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"objective": "nope"}, r"unknown 'nope'"),
        ({"objective": "efficient_risk"}, r"target_volatility=None must be > 0"),
        ({"objective": "efficient_risk", "target_volatility": -0.1}, r"target_volatility=-0\.1"),
        ({"objective": "efficient_return", "target_return": 0.0}, r"target_return=0\.0 must be > 0"),
        ({"risk_aversion": 0.0}, r"risk_aversion=0\.0 must be > 0"),
        ({"l2_gamma": -1.0}, r"l2_gamma=-1\.0 must be >= 0"),
    ],
)
def test_bad_settings_raise_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MeanVariance(**kwargs)


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


@settings(max_examples=25, deadline=None)
@given(
    mu=st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=6, max_size=6),
    objective=st.sampled_from(MEAN_VARIANCE),
    cap=st.sampled_from([0.2, 0.35, 0.5, 1.0]),
    min_names=st.integers(1, 6),
    floor=st.sampled_from([0.0, 1e-4, 0.05]),
    turnover=st.sampled_from([None, 0.4, 1.0]),
    drift_seed=st.integers(0, 3),
)
def test_property_weights_satisfy_every_constraint(
    mu, objective, cap, min_names, floor, turnover, drift_seed
):
    cov = _cov(11, days=200)
    current = pd.Series(np.random.default_rng(drift_seed).dirichlet(np.ones(6)), index=COINS)
    m = _fit(
        objective,
        pd.Series(mu, index=COINS),
        cov,
        current,
        max_weight=cap,
        min_names=min_names,
        min_weight_held=floor,
        turnover_limit=turnover,
        target_volatility=0.6,
        target_return=0.1,
    )
    w = m.weights_
    assert list(w.index) == COINS
    assert w.sum() == pytest.approx(1.0, abs=1e-9)
    assert (w >= 0).all()
    assert m.objective_used_ in {objective, "min_volatility", "equal_weight"}
    assert (m.objective_used_ == objective) == (m.fallback_chain_ == ())
    assert len(m.result_.attempts) == len(m.fallback_chain_) + 1
    if m.objective_used_ != "equal_weight":
        assert (w <= cap + 1e-7).all()
        held = w > 0
        assert held.sum() >= min_names
        assert (w[held] >= max(floor, 1e-5) * (1 - 1e-6) - 1e-9).all()
        if turnover is not None:
            assert np.abs(w - current).sum() <= turnover + 1e-6


def test_turnover_budget_is_spent_on_forced_sales_first(cov):
    # 0.1 of the drifted portfolio sits in a name that left the universe: selling it uses 0.1 of the
    # 0.3 limit, so the names that stay may move by 0.2 in total.
    current = pd.Series([0.3, 0.3, 0.2, 0.1, 0.0, 0.0, 0.1], index=[*COINS, "gone"])
    m = _fit("min_volatility", MU, cov, current, turnover_limit=0.3, min_names=1, min_weight_held=0)
    inside = current.reindex(COINS)
    assert np.abs(m.weights_ - inside).sum() == pytest.approx(0.2, abs=1e-6)
    ref = _fit("min_volatility", MU, cov, inside / 1.0, turnover_limit=0.2, min_names=1, min_weight_held=0)
    np.testing.assert_allclose(m.weights_, ref.weights_, atol=1e-7)
    # Opening the portfolio (no current weights): the limit does not apply.
    opening = _fit("min_volatility", MU, cov, None, turnover_limit=0.3)
    np.testing.assert_allclose(opening.weights_, _fit("min_volatility", MU, cov).weights_, atol=1e-9)


def _noisy_cov(seed: int, n: int) -> pd.DataFrame:
    """Factor model + idiosyncratic noise (like benchmarks/portfolio.py): a material diagonal part."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=(300, 2)) @ rng.normal(scale=0.02, size=(2, n))
    daily = common + rng.normal(scale=0.03, size=(300, n))
    names = [f"c{i}" for i in range(n)]
    return pd.DataFrame(np.cov(daily, rowvar=False) * 365, index=names, columns=names)


@pytest.mark.parametrize("seed", [0, 1])
def test_perspective_split_reproduces_cov(seed):
    cov = _noisy_cov(seed, 12).to_numpy()
    g, sqrt_d = perspective_split(sqrt_factor(cov))
    np.testing.assert_allclose(g.T @ g + np.diag(sqrt_d**2), cov, atol=1e-12)
    # a material diagonal part (the point of the split), leaving cov - D positive semidefinite
    assert (sqrt_d > 0).all() and (sqrt_d**2).sum() > 0.1 * np.trace(cov)
    assert np.linalg.eigvalsh(cov - np.diag(sqrt_d**2))[0] > -1e-12


def test_perspective_split_of_a_singular_cov_has_no_diagonal_part():
    b = np.array([[1.0, 2.0, 0.5], [0.3, -1.0, 2.0]])
    cov = b.T @ b  # rank 2: lambda_min(corr) = 0
    g, sqrt_d = perspective_split(sqrt_factor(cov))
    np.testing.assert_allclose(sqrt_d, 0.0, atol=1e-6)
    np.testing.assert_allclose(g.T @ g, cov, atol=1e-10)


@pytest.mark.parametrize("objective", ["min_volatility", "efficient_risk", "max_quadratic_utility"])
def test_perspective_formulation_keeps_the_mip_optimum(objective, monkeypatch):
    # The perspective + disaggregated formulation must give the same MIP optimum as the plain one
    # (D = 0 reduces it to sum_j (F x)_j^2), on a problem where min_weight_held binds.
    cov = _noisy_cov(3, 10)
    mu = pd.Series(np.random.default_rng(3).normal(0.3, 0.3, 10), index=cov.index)
    kw = {"min_names": 6, "min_weight_held": 0.12}
    relaxed = _fit(objective, mu, cov, min_names=1, min_weight_held=0).weights_
    assert ((relaxed > 1e-6) & (relaxed < 0.12)).any() or (relaxed > 1e-6).sum() < 6  # the MIP is needed
    ours = _fit(objective, mu, cov, **kw)
    assert ours.result_.solver == "SCIP" and ours.objective_used_ == objective
    monkeypatch.setattr(problem_module, "perspective_split", lambda f: (f, np.zeros(len(f))))
    plain = _fit(objective, mu, cov, **kw)
    assert plain.result_.solver == "SCIP"
    np.testing.assert_allclose(ours.weights_.to_numpy(), plain.weights_.to_numpy(), atol=1e-6)
    held = ours.weights_[ours.weights_ > 0]
    assert len(held) >= 6 and (held >= 0.12 - 1e-9).all()


def test_mixed_integer_risk_form():
    """With binaries the risk is disaggregated into 3-d cones, plus perspective cones except for
    the big-M-homogenised max_sharpe; continuous problems keep ||F x||^2 in the objective."""
    n = 4
    cons = PortfolioConstraints(0.5, 2, 0.01)
    data = ProblemData(np.ones(n), np.eye(n), np.zeros(n), np.full(n, 0.5), np.zeros(n), 2.0, big_m=3.0)
    mv = formulate(OBJECTIVES["min_volatility"], data, cons, mip=True)
    assert {"z", "u", "r", "persp"} <= set(mv.blocks) and mv.boolean == {"z"} and not mv.squares
    assert [r.cone_sizes for r in mv.rows if r.cone == "soc"] == [(3,) * n, (3,) * n]
    sharpe = formulate(OBJECTIVES["max_sharpe"], data, cons, mip=True)
    assert "persp" not in sharpe.blocks and "r" in sharpe.blocks
    continuous = formulate(OBJECTIVES["min_volatility"], data, cons)
    assert set(continuous.blocks) == {"x", "s"} and [sq.block for sq in continuous.squares] == ["x"]
    with pytest.raises(ValueError, match="binary"):
        ClarabelProgram(mv)


def test_clarabel_program_refuses_what_it_was_not_compiled_for():
    """A non-zero outside the compiled pattern, or another layout, is a reported failure (the
    optimiser then hands over to cvxpy), never a silently dropped coefficient."""
    n = 3
    cons = PortfolioConstraints(0.5, 1, 0.0)
    diagonal = ProblemData(np.ones(n), np.eye(n), np.zeros(n), np.full(n, 0.5), np.zeros(n), 2.0, 1.0)
    program = ClarabelProgram(formulate(OBJECTIVES["min_volatility"], diagonal, cons))  # not the probe
    values, status = program.solve(formulate(OBJECTIVES["min_volatility"], diagonal, cons))
    assert status == "optimal"
    np.testing.assert_allclose(values["x"], np.full(n, 1 / 3), atol=1e-8)
    dense = ProblemData(**(vars(diagonal) | {"factor": sqrt_factor(_cov(n=n).to_numpy())}))
    assert program.solve(formulate(OBJECTIVES["min_volatility"], dense, cons)) == (
        None,
        "a non-zero outside the compiled pattern",
    )
    other = formulate(OBJECTIVES["max_quadratic_utility"], diagonal, cons)
    assert program.solve(other) == (None, "layout differs from the compiled pattern")
