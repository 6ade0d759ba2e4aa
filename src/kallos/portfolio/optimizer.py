"""Long-only mean-variance optimisation on cvxpy Parameters (DPP), with a recorded fallback chain.

Inputs are annualised: ``expected_returns`` (simple, per year) and ``cov_matrix`` (of daily
simple returns × 365). Each problem is built once per (objective, number of assets,
mixed-integer or not) and re-solved with new parameter values - expected excess returns
``mu - rf``, a square-root factor ``F`` of the covariance (``F'F = cov``: Cholesky, or the eigen
decomposition so a singular matrix works too), the drifted current weights and the
objective's scalars - so cvxpy compiles it only once (Disciplined Parametrized Programming).

Continuous problems take a faster route first: :mod:`kallos.portfolio.direct` assembles the
same problem in CLARABEL's standard form once and re-solves it by updating the solver's data in
place (attempt solver ``"CLARABEL(direct)"``, ~10-20x faster than a fresh PyPortfolioOpt solve at
n = 20, see ``benchmarks/portfolio.py``); when it does not report an optimum the cvxpy problem is
solved (solver ``"CLARABEL"``, the hand-over noted in the attempt's reason). Both are built from
one description per objective (:meth:`Objective.terms`, :attr:`Objective.extra`). Mixed-integer
problems always go through cvxpy (SCIP).

Objectives (:data:`OBJECTIVES`, a registry; all on excess returns ``mu - rf``):

* ``max_sharpe``: ``max (mu - rf)'w / sqrt(w' cov w)``, made convex by the homogenisation
  ``y = kappa w`` of Cornuejols & Tütüncü (2006, §8.2), exactly as PyPortfolioOpt's
  ``EfficientFrontier.max_sharpe``: ``min y' cov y`` s.t. ``(mu - rf)'y = 1``, ``sum y = kappa``;
* ``min_volatility``: ``min w' cov w``;
* ``efficient_risk``: ``max mu'w`` s.t. ``w' cov w <= target_volatility^2`` (annual);
* ``efficient_return``: ``min w' cov w`` s.t. ``mu'w >= target_return`` (annual);
* ``max_quadratic_utility``: ``max mu'w - delta/2 w' cov w``;
* ``max_return``: ``max mu'w - gamma ||w||^2`` (L2 penalty).

Constraints: per-asset bounds ``lower_i <= w_i <= min(upper_i, max_weight)``; fully invested
(``sum w = 1``), or ``sum w <= 1`` with the rest in cash earning ``rf`` when ``allow_cash``
(not for ``max_sharpe``/``min_volatility``: cash adds nothing to the tangency Sharpe ratio and
would make the minimum-variance portfolio all cash); a turnover limit
``sum |w - w_drift| <= turnover_limit`` against the drifted current weights; and
**cardinality**: at least ``min_names`` names held, each held name at ``>= min_weight_held``.
Cardinality is enforced exactly: the continuous problem is solved first (CLARABEL); when its
optimum already holds ``>= min_names`` names and no weight in ``(0, min_weight_held)`` it is
also the optimum of the mixed-integer problem; otherwise the mixed-integer problem with
binaries ``z_i`` (``w_i <= max_weight z_i``, ``w_i >= min_weight_held z_i``, ``sum z >= k``) is
solved with SCIP (``mip_time_limit`` seconds per solve; at the limit the best portfolio found
is used and its attempt says so). The mixed-integer risk term is written for the solver's linear
outer approximation: ``||F w||^2`` disaggregated into one 3-d cone per row (Vielma et al. 2017)
and, except for the homogenised ``max_sharpe`` (measured slower there), ``cov = G'G + diag(d)``
(:func:`perspective_split`) with the perspective cones ``d_i w_i^2 <= t_i z_i`` (Frangioni &
Gentile 2006); the optimum is unchanged, SCIP proves it sooner (``benchmarks/portfolio.py`` (c)).
Outside ``max_sharpe`` the per-asset big-M is the asset's own upper bound.
For ``max_sharpe`` the homogenised variables need a big-M ``K >= kappa*``;
it is ``sigma(w_f) / ((mu - rf)'w_f sigma_mv)`` for the feasible maximum-excess-return
portfolio ``w_f`` (a MILP) and ``sigma_mv`` the minimum volatility of the continuous relaxation:
``(mu - rf)'w* = SR(w*) sigma(w*) >= SR(w_f) sigma_mv``. A mixed-integer solution is polished
by re-solving the continuous problem on its support (exact there, free of SCIP's tolerances).

Fallbacks (documented, counted and reported; never a crash): when the requested objective
fails (infeasible, solver failure), ``min_volatility`` is tried under the same constraints,
and finally the equal-weight portfolio. Every attempt is an :class:`Attempt`
``(objective, solver, status, reason)`` in :class:`OptimizationOutcome.attempts`.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import cvxpy as cp
import numpy as np
import pandas as pd

from kallos.exceptions import ConfigError, OptimizationError
from kallos.portfolio.direct import DIRECT_SOLVER, TOLERANCES, DirectProblem
from kallos.types import OptimizationResult

__all__ = [
    "EQUAL_WEIGHT",
    "FALLBACK_OBJECTIVE",
    "OBJECTIVES",
    "Attempt",
    "MeanVariance",
    "OptimizationOutcome",
    "PortfolioConstraints",
    "max_attainable_return",
    "perspective_split",
    "sqrt_factor",
    "to_annual_expected_returns",
]

FALLBACK_OBJECTIVE = "min_volatility"
SOLVER = "CLARABEL"  # interior point: accurate on these small QPs and SOCPs
MIP_SOLVER = "SCIP"  # the only installed solver that handles mixed-integer QPs/SOCPs
EQUAL_WEIGHT = "equal_weight"
ZERO_TOL = 1e-7  # a solver weight below this is noise and set to 0
OK_STATUSES = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
USE_DIRECT = True  # continuous problems go to CLARABEL directly first (kallos.portfolio.direct)


@dataclass(frozen=True)
class Attempt:
    """One try of the fallback chain: ``(objective, solver, status, reason)``."""

    objective: str
    solver: str
    status: str
    reason: str = ""

    def __str__(self) -> str:
        head = f"{self.objective} ({self.solver} {self.status})"
        return f"{head}: {self.reason}" if self.reason else head


@dataclass(frozen=True)
class OptimizationOutcome(OptimizationResult):
    """:class:`~kallos.types.OptimizationResult` plus the solver and every attempt.

    ``fallback_chain`` holds ``str(attempt)`` of the failed attempts (empty when the requested
    objective succeeded); ``attempts`` also holds the successful last one.
    """

    solver: str = ""
    attempts: tuple[Attempt, ...] = field(default=(), repr=False)

    def describe(self) -> str:
        """The chain as one line, e.g.

        ``max_sharpe (precheck infeasible): no portfolio ... → min_volatility (CLARABEL optimal)``.
        """
        return " → ".join(str(a) for a in self.attempts)


@dataclass(frozen=True)
class PortfolioConstraints:
    """Constraint set shared by every objective.

    Attributes
    ----------
    max_weight : upper bound per asset (fraction of portfolio value).
    min_names : names that must be held, each at ``>= min_weight_held`` (true cardinality).
    min_weight_held : minimum weight of a held name; smaller weights are not allowed (0 or this).
    turnover_limit : ``sum |w - w_drift| <= turnover_limit`` (one-way traded fraction) against the
        drifted weights, when given; None = off.
    allow_cash : weights may sum below 1, the rest earning the risk-free rate.
    bounds : per-asset ``(lower, upper)`` overriding ``(0, max_weight)`` for the named assets.

    Raises
    ------
    ConfigError
        If the set is infeasible whatever the data (messages name the keys).
    """

    max_weight: float = 0.35
    min_names: int = 3
    min_weight_held: float = 1e-4
    turnover_limit: float | None = None
    allow_cash: bool = False
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.max_weight <= 1:
            raise ConfigError(f"portfolio.max_weight={self.max_weight} must be in (0, 1]")
        if self.min_names < 1:
            raise ConfigError(f"portfolio.min_names={self.min_names} must be >= 1")
        if not 0 <= self.min_weight_held <= self.max_weight:
            raise ConfigError(
                f"portfolio.min_weight_held={self.min_weight_held} "
                f"must be in [0, max_weight={self.max_weight}]"
            )
        if self.min_weight_held * self.min_names > 1 + 1e-12:
            raise ConfigError(
                f"portfolio.min_weight_held={self.min_weight_held} x min_names={self.min_names} > 1: "
                "the held names cannot fit in the portfolio"
            )
        if self.turnover_limit is not None and self.turnover_limit <= 0:
            raise ConfigError(f"portfolio.turnover_limit={self.turnover_limit} must be > 0 (or unset)")
        for name, (lo, hi) in self.bounds.items():
            if not 0 <= lo <= hi:
                raise ConfigError(f"portfolio bounds for {name!r}: need 0 <= lower <= upper, got {(lo, hi)}")

    @property
    def held_floor(self) -> float:
        """The minimum weight of a held name used in the mixed-integer problem (> 0)."""
        return max(self.min_weight_held, 1e-5)

    def bound_arrays(self, assets: pd.Index) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` per asset, shape (n,) each."""
        if not self.bounds:
            return np.zeros(len(assets)), np.full(len(assets), float(self.max_weight))
        lower = np.array([self.bounds.get(a, (0.0, self.max_weight))[0] for a in assets], dtype=float)
        upper = np.array([self.bounds.get(a, (0.0, self.max_weight))[1] for a in assets], dtype=float)
        return lower, np.minimum(upper, self.max_weight)


def sqrt_factor(cov: np.ndarray) -> np.ndarray:
    """``F`` (n, n) with ``F'F = cov`` (n, n).

    The upper Cholesky factor when ``cov`` is positive definite (fast); otherwise (singular or
    slightly indefinite from rounding) from the eigen decomposition with negative eigenvalues
    clipped to 0.
    """
    sym = (cov + cov.T) / 2
    try:
        return np.linalg.cholesky(sym).T
    except np.linalg.LinAlgError:
        vals, vecs = np.linalg.eigh(sym)
        return np.sqrt(np.clip(vals, 0.0, None))[:, None] * vecs.T


def perspective_split(factor: np.ndarray, shrink: float = 0.999) -> tuple[np.ndarray, np.ndarray]:
    """Split ``cov = F'F`` (n, n) into ``G'G + diag(d)``, ``d >= 0``; returns ``(G (n, n), sqrt(d) (n,))``.

    ``d = shrink * lambda_min(C) * diag(cov)`` with ``C`` the correlation matrix, so
    ``cov - diag(d) = S^(1/2) (C - shrink lambda_min I) S^(1/2)`` stays positive semidefinite
    (``S = diag(cov)``). The diagonal part feeds the perspective cuts of the mixed-integer problem
    (Frangioni & Gentile 2006, "Perspective cuts for a class of convex 0-1 mixed integer programs";
    the scaled-eigenvalue choice of ``d`` is the cheap one of Günlük & Linderoth 2010, §4).
    """
    cov = factor.T @ factor
    var = np.clip(np.diag(cov), 0.0, None)
    scale = np.where(var > 0, np.sqrt(np.where(var > 0, var, 1.0)), 1.0)
    corr = cov / np.outer(scale, scale)
    lam = float(np.linalg.eigvalsh((corr + corr.T) / 2)[0])
    d = shrink * max(lam, 0.0) * var
    return sqrt_factor(cov - np.diag(d)), np.sqrt(d)


def max_attainable_return(expected_returns: pd.Series, max_weight: float) -> float:
    """Highest expected return of a fully invested long-only portfolio with ``w_i <= max_weight``.

    Greedy: fill the assets with the highest expected return up to the cap.
    """
    remaining, total = 1.0, 0.0
    for mu in expected_returns.sort_values(ascending=False):
        w = min(max_weight, remaining)
        total += w * mu
        remaining -= w
        if remaining <= 1e-12:
            break
    return total


# ----------------------------------------------------------------------------- the problem


class _Problem:
    """One cvxpy problem, built once for an (objective, n, mixed-integer) and re-solved.

    Decision vector ``x`` with scale ``s``: ``x = w`` and ``s = 1`` for ordinary objectives,
    ``x = y = kappa w`` and ``s = kappa`` for the homogenised ``max_sharpe``; every constraint
    is written homogeneously in ``(x, s)``.
    """

    def __init__(
        self, objective: Objective, n: int, cons: PortfolioConstraints, mip: bool, time_limit: float = 10.0
    ) -> None:
        self.objective, self.mip, self.time_limit = objective, mip, time_limit
        self.excess = cp.Parameter(n, name="excess")  # mu - rf, annual
        self.factor = cp.Parameter((n, n), name="factor")  # F'F = cov, annual
        self.lower = cp.Parameter(n, nonneg=True, name="lower")
        self.upper = cp.Parameter(n, nonneg=True, name="upper")
        self.scalar = cp.Parameter(nonneg=objective.scalar_nonneg, name="scalar")  # delta, gamma, target
        self.x = cp.Variable(n, nonneg=True, name="x")
        self.u = cp.Variable(n, name="u")  # u = F x, so risk = ||u||^2 is parameter-free
        self.s = cp.Variable(nonneg=True, name="kappa") if objective.homogeneous else cp.Constant(1.0)
        x, s = self.x, self.s
        cash = cons.allow_cash and objective.cash_ok
        constraints = [
            self.u == self.factor @ x,
            (cp.sum(x) <= s) if cash else (cp.sum(x) == s),
            x >= cp.multiply(self.lower, s) if objective.homogeneous else x >= self.lower,
            x <= cp.multiply(self.upper, s) if objective.homogeneous else x <= self.upper,
        ]
        self.w_drift = None
        if cons.turnover_limit is not None:
            self.w_drift = cp.Parameter(n, nonneg=True, name="w_drift")
            self.budget = cp.Parameter(nonneg=True, name="turnover_budget")
            constraints.append(cp.norm1(x - s * self.w_drift) <= self.budget * s)
        self.big_m = None
        self.z = None
        self.risk = cp.sum_squares(self.u)  # x' cov x (continuous: F'F = cov)
        if mip:
            z = self.z = cp.Variable(n, boolean=True, name="z")
            floor = cons.held_floor
            if objective.homogeneous:
                self.big_m = cp.Parameter(nonneg=True, name="big_m")
                constraints += [
                    s <= self.big_m,
                    x <= cons.max_weight * self.big_m * z,
                    x >= floor * s - floor * self.big_m * (1 - z),
                ]
            else:
                constraints += [x <= cp.multiply(self.upper, z), x >= floor * z]
            constraints.append(cp.sum(z) >= cons.min_names)
        self.sqrt_diag = None
        if mip and objective.uses_risk(self.scalar):
            # Disaggregated ("extended") form of ||F x||^2: u_j^2 <= r_j, one 3-d cone per row
            # (Vielma, Dunning, Huchette & Lubin 2017): SCIP's linear outer approximation of many
            # small cones is far tighter than of one n-dimensional cone.
            r = cp.Variable(n, nonneg=True, name="r")
            constraints.append(cp.SOC(r + 1, cp.vstack([2 * self.u, r - 1]), axis=0))
            self.risk = cp.sum(r)
            if not objective.homogeneous:  # measured: it slows the big-M-homogenised max_sharpe down
                # Perspective reformulation (Frangioni & Gentile 2006): cov = G'G + diag(d), d >= 0
                # (perspective_split; ``factor`` then holds G), and d_i x_i^2 <= t_i z_i (rotated
                # cones): x' cov x = ||G x||^2 + sum t at the optimum, and a tighter relaxation.
                self.sqrt_diag = cp.Parameter(n, nonneg=True, name="sqrt_diag")  # sqrt(d)
                t = cp.Variable(n, nonneg=True, name="t")
                v = cp.multiply(self.sqrt_diag, x)
                constraints.append(cp.SOC(t + z, cp.vstack([2 * v, t - z]), axis=0))
                self.risk = self.risk + cp.sum(t)
        expr, extra = objective.build(self)
        self.problem = cp.Problem(cp.Minimize(expr), constraints + extra)
        if not self.problem.is_dpp():  # pragma: no cover - a coding error, not a data error
            raise OptimizationError(f"{objective.name} problem is not DPP")

    def solve(
        self,
        excess: np.ndarray,
        factor: np.ndarray,
        bounds: tuple[np.ndarray, np.ndarray],
        scalar: float,
        turnover: tuple[np.ndarray, float],
        big_m: float | None = None,
    ) -> tuple[np.ndarray | None, str]:
        self.excess.value, self.factor.value = excess, factor
        self.lower.value, self.upper.value = bounds
        self.scalar.value = scalar
        if self.w_drift is not None:
            self.w_drift.value, self.budget.value = turnover
        if self.big_m is not None:
            self.big_m.value = big_m
        if self.sqrt_diag is not None:
            self.factor.value, self.sqrt_diag.value = perspective_split(factor)
        opts = {"scip_params": {"limits/time": self.time_limit}} if self.mip else dict(TOLERANCES)
        try:
            self.problem.solve(solver=MIP_SOLVER if self.mip else SOLVER, **opts)
        except cp.error.SolverError as err:
            return None, f"solver error ({_short(err)})"
        status = self.problem.status
        if status not in OK_STATUSES or self.x.value is None:
            return None, status
        x = np.asarray(self.x.value, dtype=float)
        s = float(self.s.value)
        if not s > 0:
            return None, "degenerate scale"
        return x / s, status


# ----------------------------------------------------------------------------- objectives


class Objective:
    """An objective as data: ``min risk x'cov x + l2 ||x||^2 - ret (mu - rf)'x`` plus one extra constraint.

    ``terms(scalar)`` gives ``(risk, l2, ret)`` (``scalar`` is a float or the cvxpy Parameter);
    ``extra`` names a constraint of :data:`kallos.portfolio.direct.EXTRA_CONSTRAINTS`
    (the cvxpy form is in :data:`_CVXPY_EXTRA`). Both solver paths are built from this data.
    """

    name: ClassVar[str]
    homogeneous: ClassVar[bool] = False
    cash_ok: ClassVar[bool] = True
    extra: ClassVar[str | None] = None
    #: MeanVariance attribute holding the objective's scalar parameter (None: unused).
    scalar_attr: ClassVar[str | None] = None
    scalar_nonneg: ClassVar[bool] = True

    def terms(self, scalar: float | cp.Parameter) -> tuple[Any, Any, Any]:
        """``(risk, l2, ret)`` weights (floats, or cvxpy expressions of the scalar Parameter)."""
        return 1.0, 0.0, 0.0

    def uses_risk(self, scalar: float | cp.Parameter) -> bool:
        """Whether ``x' cov x`` appears in the objective or the extra constraint."""
        risk = self.terms(scalar)[0]
        return self.extra == "risk_cap" or not (isinstance(risk, float) and risk == 0.0)

    def build(self, p: _Problem) -> tuple[cp.Expression, list[cp.Constraint]]:
        risk, l2, ret = self.terms(p.scalar)
        parts = [
            coef * term
            for coef, term in (
                (risk, p.risk),
                (l2, cp.sum_squares(p.x)),
                (-ret, p.excess @ p.x),
            )
            if not (isinstance(coef, float) and coef == 0.0)
        ]
        extra = [] if self.extra is None else [_CVXPY_EXTRA[self.extra](p)]
        return functools.reduce(operator.add, parts), extra

    def infeasible_reason(self, opt: MeanVariance) -> str:
        return f"no portfolio satisfies {opt.describe_constraints()}"


_CVXPY_EXTRA = {
    "excess_eq_one": lambda p: p.excess @ p.x == 1,
    "excess_floor": lambda p: p.excess @ p.x >= p.scalar,
    "risk_cap": lambda p: p.risk <= p.scalar,
}


class MaxSharpe(Objective):
    name = "max_sharpe"
    homogeneous = True
    cash_ok = False
    extra = "excess_eq_one"

    def infeasible_reason(self, opt):
        return f"no portfolio with positive expected excess return under {opt.describe_constraints()}"


class MinVolatility(Objective):
    name = "min_volatility"
    cash_ok = False


class EfficientRisk(Objective):
    name = "efficient_risk"
    scalar_attr = "target_volatility"
    extra = "risk_cap"

    def terms(self, scalar):
        return 0.0, 0.0, 1.0

    def infeasible_reason(self, opt):
        return (
            f"no portfolio with volatility <= target_volatility {opt.target_volatility:.2%} "
            f"under {opt.describe_constraints()}"
        )


class EfficientReturn(Objective):
    name = "efficient_return"
    scalar_attr = "target_return"
    scalar_nonneg = False
    extra = "excess_floor"

    def infeasible_reason(self, opt):
        return (
            f"no portfolio reaches target_return {opt.target_return:.2%} under {opt.describe_constraints()}"
        )


class MaxQuadraticUtility(Objective):
    name = "max_quadratic_utility"
    scalar_attr = "risk_aversion"

    def terms(self, scalar):
        return 0.5 * scalar, 0.0, 1.0


class MaxReturn(Objective):
    name = "max_return"
    scalar_attr = "l2_gamma"

    def terms(self, scalar):
        return 0.0, scalar, 1.0


class _MaxExcess(Objective):
    """Linear: the highest expected excess return (internal, for the max_sharpe big-M)."""

    name = "_max_excess"

    def terms(self, scalar):
        return 0.0, 0.0, 1.0


_MAX_EXCESS = _MaxExcess()

OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        MaxSharpe(),
        MinVolatility(),
        EfficientRisk(),
        EfficientReturn(),
        MaxQuadraticUtility(),
        MaxReturn(),
    )
}
"""Objectives by name (see the module docstring)."""


def to_annual_expected_returns(
    log_forecast: pd.Series, horizon: int, periods_per_year: int = 365
) -> pd.Series:
    """Convert ``horizon``-day forward log-return forecasts to annualised simple expected returns.

    ``mu = (exp(f / horizon) - 1) * periods_per_year``: the implied daily simple return,
    annualised arithmetically like PyPortfolioOpt's ``mean_historical_return(compounding=False)``,
    so it matches the annualised covariance of daily simple returns.
    """
    return (np.exp(log_forecast / horizon) - 1.0) * periods_per_year


# ----------------------------------------------------------------------------- the optimiser


class MeanVariance:
    """Long-only mean-variance optimiser with exact cardinality, turnover limit and fallbacks.

    Parameters
    ----------
    objective : a key of :data:`OBJECTIVES`.
    max_weight, min_names, min_weight_held, turnover_limit, allow_cash, bounds :
        see :class:`PortfolioConstraints`.
    risk_aversion : δ of ``max_quadratic_utility``.
    l2_gamma : γ of ``max_return``.
    risk_free_rate : annualised simple rate; objectives use excess returns ``mu - rf``.
    target_volatility : annual volatility of ``efficient_risk``.
    target_return : annual simple return of ``efficient_return``.
    mip_time_limit : seconds SCIP may spend on one mixed-integer solve; at the limit the best
        portfolio found is used (its attempt records ``optimal_inaccurate`` and the reason).

    Attributes
    ----------
    weights_ : pd.Series, the weights (sum to 1, or to ``<= 1`` with cash).
    objective_used_ : str, the objective that produced them.
    fallback_chain_ : tuple of str, one per failed attempt.
    result_ : :class:`OptimizationOutcome`.

    Raises
    ------
    ConfigError
        At construction, for an unknown objective, a missing target or an infeasible constraint set.
    OptimizationError
        From :meth:`fit` only for malformed inputs (misaligned, non-finite, too few assets for the cap).

    References
    ----------
    Cornuejols & Tütüncü (2006), *Optimization Methods in Finance*, §8.2 (max Sharpe as a convex
    QP); PyPortfolioOpt ``EfficientFrontier`` (same formulations); Agrawal et al. (2019),
    "Differentiable convex optimization layers" (DPP).
    """

    def __init__(
        self,
        objective: str = "max_sharpe",
        max_weight: float = 0.35,
        min_names: int = 3,
        min_weight_held: float = 1e-4,
        risk_aversion: float = 1.0,
        l2_gamma: float = 1.0,
        risk_free_rate: float = 0.0,
        target_volatility: float | None = None,
        target_return: float | None = None,
        turnover_limit: float | None = None,
        allow_cash: bool = False,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        mip_time_limit: float = 10.0,
    ) -> None:
        if objective not in OBJECTIVES:
            raise ConfigError(
                f"portfolio.objectives: unknown {objective!r}; choose from {sorted(OBJECTIVES)}"
            )
        self.objective = objective
        self.constraints = PortfolioConstraints(
            max_weight, min_names, min_weight_held, turnover_limit, allow_cash, dict(bounds or {})
        )
        self.risk_aversion = risk_aversion
        self.l2_gamma = l2_gamma
        self.risk_free_rate = risk_free_rate
        self.target_volatility = target_volatility
        self.target_return = target_return
        self.mip_time_limit = mip_time_limit
        for attr, value in _positive_settings(self).items():
            if value is None or value < 0 or (value == 0 and attr != "l2_gamma"):
                raise ConfigError(
                    f"portfolio.{attr}={value} must be {'>= 0' if attr == 'l2_gamma' else '> 0'}"
                )
        self._problems: dict[tuple[str, int, bool], _Problem] = {}
        self._direct: dict[tuple[str, int], DirectProblem] = {}

    # Public conveniences mirroring the constraint set.
    max_weight = property(lambda self: self.constraints.max_weight)
    min_names = property(lambda self: self.constraints.min_names)
    min_weight_held = property(lambda self: self.constraints.min_weight_held)

    def describe_constraints(self) -> str:
        c = self.constraints
        parts = [f"max_weight {c.max_weight:g}"]
        if c.min_names > 1:
            parts.append(f"min_names {c.min_names}")
        if c.turnover_limit is not None:
            parts.append(f"turnover_limit {c.turnover_limit:g}")
        return ", ".join(parts)

    def fit(
        self,
        expected_returns: pd.Series,
        cov_matrix: pd.DataFrame,
        current_weights: pd.Series | None = None,
    ) -> Self:
        """Solve for the weights, falling back as documented in the module docstring.

        Parameters
        ----------
        expected_returns : shape (n_assets,), annualised simple returns, index = coin ids.
        cov_matrix : shape (n_assets, n_assets), annualised, same labels.
        current_weights : drifted current weights (index = coin ids; missing = 0) for the
            turnover limit. Names outside ``expected_returns`` are sold and use up that much of the
            limit first. None = opening the portfolio: the limit does not apply.
        """
        assets, mu, cov = self._check(expected_returns, cov_matrix)
        data = _Data(
            assets,
            mu - self.risk_free_rate,
            sqrt_factor(cov),
            self.constraints.bound_arrays(assets),
            self._turnover(assets, current_weights),
        )
        attempts: list[Attempt] = []
        for objective in dict.fromkeys([self.objective, FALLBACK_OBJECTIVE]):
            weights, attempt = self._solve_exact(OBJECTIVES[objective], data)
            attempts.append(attempt)
            if weights is not None:
                self._set(pd.Series(weights, index=assets), objective, attempt.solver, attempts)
                return self
        attempts.append(Attempt(EQUAL_WEIGHT, "none", "used", "every objective failed"))
        equal = min(1.0 / len(mu), self.max_weight)
        self._set(pd.Series(equal, index=assets), EQUAL_WEIGHT, "none", attempts)
        return self

    def _turnover(self, assets: pd.Index, current: pd.Series | None) -> tuple[np.ndarray, float]:
        """Drifted weights of ``assets`` and the turnover budget left after selling the other names."""
        limit = self.constraints.turnover_limit
        if current is None or limit is None:  # opening trade (or no limit): unconstrained
            return np.zeros(len(assets)), 2.0  # sum |w - 0| <= 1 < 2 always holds
        current = current.fillna(0.0).clip(lower=0.0)
        inside = current.reindex(assets).fillna(0.0).to_numpy(dtype=float)
        forced = float(current.drop(assets, errors="ignore").sum())
        return inside, max(limit - forced, 0.0)

    @property
    def result_(self) -> OptimizationOutcome:
        return self._result

    def _set(self, weights: pd.Series, objective: str, solver: str, attempts: list[Attempt]) -> None:
        self.weights_ = weights
        self.objective_used_ = objective
        self.fallback_chain_ = tuple(str(a) for a in attempts[:-1])
        self._result = OptimizationOutcome(
            weights, self.objective, objective, self.fallback_chain_, solver, tuple(attempts)
        )

    def _problem(self, objective: Objective, n: int, mip: bool) -> _Problem:
        key = (objective.name, n, mip)
        if key not in self._problems:
            self._problems[key] = _Problem(objective, n, self.constraints, mip, self.mip_time_limit)
        return self._problems[key]

    def _scalar(self, objective: Objective) -> float:
        if objective.scalar_attr is None:
            return 0.0
        value = float(getattr(self, objective.scalar_attr))
        if objective.scalar_attr == "target_volatility":
            return value**2
        if objective.scalar_attr == "target_return":
            return value - self.risk_free_rate
        return value

    def _solve_continuous(
        self, objective: Objective, n: int, args: tuple
    ) -> tuple[np.ndarray | None, str, str, str]:
        """The continuous problem: the direct CLARABEL path, and cvxpy when that is not optimal.

        Returns ``(weights or None, status, solver, note)``; the note records a hand-over to cvxpy.
        """
        key = (objective.name, n)
        if USE_DIRECT:
            if key not in self._direct:
                c = self.constraints
                cash = c.allow_cash and objective.cash_ok
                self._direct[key] = DirectProblem(objective, n, cash, c.turnover_limit is not None)
            w, status = self._direct[key].solve(*args)
            if w is not None:
                return w, status, DIRECT_SOLVER, ""
            note = f"{DIRECT_SOLVER} {status}; re-solved with cvxpy"
        else:
            note = ""
        w, status = self._problem(objective, n, mip=False).solve(*args)
        return w, status, SOLVER, note

    def _solve_exact(self, objective: Objective, d: _Data) -> tuple[np.ndarray | None, Attempt]:
        """Continuous relaxation first; the mixed-integer problem only when it violates cardinality."""
        n = len(d.assets)
        if objective.homogeneous and not np.any(np.asarray(d.excess) > 0):
            # long-only weights cannot reach (mu - rf)'x = 1: infeasible without a solve (e.g. the
            # zero forecast, whose max_sharpe is undefined and falls back every time)
            return None, Attempt(
                objective.name, "precheck", "infeasible", self._reason(objective, "infeasible")
            )
        args = (d.excess, d.factor, d.bounds, self._scalar(objective), d.turnover)
        w, status, solver, note = self._solve_continuous(objective, n, args)
        if w is None:
            return None, Attempt(objective.name, solver, status, self._reason(objective, status))
        w = np.where(w < ZERO_TOL, 0.0, w)
        if self._satisfies_cardinality(w):
            return self._tidy(w, objective, d.bounds), Attempt(objective.name, solver, status, note)
        big_m = None
        if objective.homogeneous:
            big_m, why = self._sharpe_big_m(d)
            if big_m is None:
                return None, Attempt(objective.name, MIP_SOLVER, "infeasible", why)
        problem = self._problem(objective, n, mip=True)
        w, status = problem.solve(*args, big_m=big_m)
        if w is None:
            return None, Attempt(objective.name, MIP_SOLVER, status, self._reason(objective, status))
        # the support is the MIP's choice of names (z), not its weights: within SCIP's tolerances a
        # chosen name can come back at 0 when the held floor is tiny (min_weight_held = 0)
        chosen = np.asarray(problem.z.value, dtype=float) > 0.5
        note = (
            ""
            if status == cp.OPTIMAL
            else f"SCIP time limit {self.mip_time_limit:g} s: best found, not proven"
        )
        return self._polish(objective, d, w, chosen), Attempt(objective.name, MIP_SOLVER, status, note)

    def _polish(self, objective: Objective, d: _Data, w: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        """Re-solve the continuous problem on the MIP's support (exact there, unlike SCIP's tolerances)."""
        floor = self.constraints.held_floor
        support = chosen | (w >= floor / 2)
        lower, upper = d.bounds
        bounds = (np.where(support, np.maximum(lower, floor), 0.0), np.where(support, upper, 0.0))
        args = (d.excess, d.factor, bounds, self._scalar(objective), d.turnover)
        polished, *_ = self._solve_continuous(objective, len(w), args)
        w = np.where(support, w, 0.0) if polished is None else polished
        return self._tidy(np.where(support, w, 0.0), objective, bounds)

    def _sharpe_big_m(self, d: _Data) -> tuple[float | None, str]:
        """An upper bound on kappa* = 1 / (mu - rf)'w* for the homogenised max_sharpe MIP.

        ``(mu - rf)'w* = SR(w*) sigma(w*) >= SR(w_f) sigma_mv`` for any feasible ``w_f``: here the
        maximum-excess-return MIP portfolio (a MILP, fast), and ``sigma_mv`` the minimum volatility
        of the continuous relaxation (a lower bound on every feasible volatility).
        """
        n = len(d.assets)
        args = (d.excess, d.factor, d.bounds, 0.0, d.turnover)
        w_f, _ = self._problem(_MAX_EXCESS, n, mip=True).solve(*args)
        if w_f is None or d.excess @ w_f <= 1e-12:
            return None, OBJECTIVES["max_sharpe"].infeasible_reason(self)
        w_mv, status, *_ = self._solve_continuous(OBJECTIVES["min_volatility"], n, args)
        if w_mv is None:
            return None, f"min_volatility relaxation for the big-M: {status}"
        sigma_mv = max(float(np.linalg.norm(d.factor @ w_mv)), 1e-12)
        sigma_f = float(np.linalg.norm(d.factor @ w_f))
        return 1.01 * sigma_f / (float(d.excess @ w_f) * sigma_mv) + 1e-9, ""

    def _satisfies_cardinality(self, w: np.ndarray) -> bool:
        c = self.constraints
        # the same floor as the mixed-integer problem: a name below it is not held (with
        # min_weight_held = 0 a solver weight of 1e-7 would otherwise count, then be tidied away)
        floor = c.held_floor * (1 - 1e-6)
        held = w >= floor
        return bool(held.sum() >= min(c.min_names, len(w)) and not ((w > 0) & ~held).any())

    def _tidy(self, w: np.ndarray, objective: Objective, bounds: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Clip solver noise into the bounds; a fully invested solution is then made to sum exactly 1
        by spreading the residual over the names strictly inside their bounds (pro rata)."""
        lower, upper = bounds
        held = w > 0
        lo = np.where(held, np.maximum(lower, min(self.constraints.min_weight_held, upper.max())), 0.0)
        w = np.clip(w, lo, upper)
        if self.constraints.allow_cash and objective.cash_ok:
            return w
        for _ in range(20):
            residual = 1.0 - w.sum()
            if abs(residual) <= 1e-15:
                break
            free = held & (w > lo) & (w < upper) if residual > 0 else held & (w > lo)
            if not free.any():
                break
            w = np.where(free, w + residual * w / w[free].sum(), w)
            w = np.clip(w, lo, upper)
        return w / w.sum()

    def _reason(self, objective: Objective, status: str) -> str:
        if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            return objective.infeasible_reason(self)
        return f"solver returned {status}"

    def _check(self, mu: pd.Series, cov: pd.DataFrame) -> tuple[pd.Index, np.ndarray, np.ndarray]:
        """``(assets, expected returns (n,), cov (n, n))`` as float arrays, or OptimizationError."""
        if not (_same_labels(cov.index, mu.index) and _same_labels(cov.columns, mu.index)):
            raise OptimizationError(
                f"expected_returns {list(mu.index)} and cov_matrix {list(cov.index)} are not aligned"
            )
        mu_values, cov_values = mu.to_numpy(dtype=float), cov.to_numpy(dtype=float)
        if not np.isfinite(mu_values).all() or not np.isfinite(cov_values).all():
            raise OptimizationError(f"non-finite expected returns or covariance for {list(mu.index)}")
        if self.max_weight * len(mu) < 1 - 1e-12 and not self.constraints.allow_cash:
            raise OptimizationError(
                f"max_weight={self.max_weight} x {len(mu)} assets < 1: no fully invested portfolio"
            )
        return mu.index, mu_values, cov_values


def _same_labels(a: pd.Index, b: pd.Index) -> bool:
    return a.equals(b) or list(a) == list(b)


@dataclass(frozen=True)
class _Data:
    assets: pd.Index
    excess: np.ndarray
    factor: np.ndarray
    bounds: tuple[np.ndarray, np.ndarray]
    turnover: tuple[np.ndarray, float]  # drifted weights of these assets, turnover budget left for them


def _short(err: Exception) -> str:
    parts = [str(a).strip() for a in err.args if str(a).strip()] or [type(err).__name__]
    return "; ".join(parts)[:200]


def _positive_settings(opt: MeanVariance) -> dict[str, float | None]:
    """Scalars that must be positive: δ, γ, and the target the chosen objective needs."""
    out = {"risk_aversion": opt.risk_aversion, "l2_gamma": opt.l2_gamma}
    attr = OBJECTIVES[opt.objective].scalar_attr
    if attr is not None:
        out[attr] = getattr(opt, attr)
    return out
