"""Long-only portfolio optimisation: one description per objective and constraint, two back-ends.

Inputs are annualised: ``expected_returns`` (simple, per year) and ``cov_matrix`` (of daily
simple returns × 365); scenario objectives (``min_cvar``) also take ``returns``, the trailing daily
simple returns. Each objective is one module of :mod:`kallos.portfolio.objectives` whose
``build`` adds its terms and rows to a :class:`~kallos.portfolio.problem.Problem` that already
holds the shared constraints of :mod:`kallos.portfolio.constraints`; the problem is rebuilt from
the data at every solve (expected excess returns ``mu - rf``, a square-root factor ``F`` of the
covariance - ``F'F = cov``: Cholesky, or the eigen decomposition so a singular matrix works too -
the drifted current weights, the objective's parameter, the scenarios) and compiled by a back-end
(:mod:`kallos.portfolio.backends`):

* continuous problems go to CLARABEL directly (attempt solver ``"CLARABEL(direct)"``: the
  problem's standard form, its sparsity pattern compiled once per layout, a fresh solver per
  solve). At the default study's size (n = 5, ``universe.top_n``) a ``max_sharpe`` rebalance
  takes 1.4 ms, 11x faster than a fresh PyPortfolioOpt problem (15.4 ms) and 15x faster than the
  same problem through cvxpy; 8.4x PyPortfolioOpt at n = 20 (``benchmarks/portfolio.py`` (b));
  when it does not report an optimum the same problem is built in cvxpy and solved there
  (solver ``"CLARABEL"``, the hand-over noted in the attempt's reason);
* mixed-integer problems (cardinality) are built in cvxpy and solved with SCIP.

Adding an objective is one module plus one line in :data:`OBJECTIVES` plus its tests.

Objectives (:data:`OBJECTIVES`, a registry; all on excess returns ``mu - rf``):

* ``max_sharpe``: ``max (mu - rf)'w / sqrt(w' cov w)``, made convex by the homogenisation
  ``y = kappa w`` of Cornuejols & Tütüncü (2006, §8.2), exactly as PyPortfolioOpt's
  ``EfficientFrontier.max_sharpe``: ``min y' cov y`` s.t. ``(mu - rf)'y = 1``, ``sum y = kappa``;
* ``min_volatility``: ``min w' cov w``;
* ``efficient_risk``: ``max mu'w`` s.t. ``w' cov w <= target_volatility^2`` (annual);
* ``efficient_return``: ``min w' cov w`` s.t. ``mu'w >= target_return`` (annual);
* ``max_quadratic_utility``: ``max mu'w - delta/2 w' cov w``;
* ``max_return``: ``max mu'w - gamma ||w||^2`` (L2 penalty);
* ``min_cvar``: minimum CVaR at ``cvar_beta`` (0.95) of the daily scenario losses, the linear
  programme of Rockafellar & Uryasev (2000), as PyPortfolioOpt's ``EfficientCVaR.min_cvar``.

Constraints: per-asset bounds ``lower_i <= w_i <= min(upper_i, max_weight)``; fully invested
(``sum w = 1``), or ``sum w <= 1`` with the rest in cash earning ``rf`` when ``allow_cash``
(not for ``max_sharpe``/``min_volatility``/``min_cvar``: cash adds nothing to the tangency Sharpe
ratio and would make the minimum-risk portfolios all cash); a turnover limit
``sum |w - w_drift| <= turnover_limit`` against the drifted current weights; and
**cardinality**: at least ``min_names`` names held, each held name at ``>= min_weight_held``.
Cardinality is enforced exactly: the continuous problem is solved first; when its
optimum already holds ``>= min_names`` names and no weight in ``(0, min_weight_held)`` it is
also the optimum of the mixed-integer problem; otherwise the mixed-integer problem with
binaries ``z_i`` (``w_i <= upper_i z_i``, ``w_i >= min_weight_held z_i``, ``sum z >= k``) is
solved with SCIP (``mip_time_limit`` seconds per solve; at the limit the best portfolio found
is used and its attempt says so) - for ``min_cvar`` a mixed-integer linear programme. The
mixed-integer risk term is written for the solver's linear outer approximation (disaggregated
cones, perspective cuts: :mod:`kallos.portfolio.problem`); the optimum is unchanged, SCIP proves
it sooner (``benchmarks/portfolio.py`` (c)).
For ``max_sharpe`` the homogenised variables need a big-M ``K >= kappa*``;
it is ``sigma(w_f) / ((mu - rf)'w_f sigma_mv)`` for the feasible maximum-excess-return
portfolio ``w_f`` (a MILP) and ``sigma_mv`` the minimum volatility of the continuous relaxation:
``(mu - rf)'w* = SR(w*) sigma(w*) >= SR(w_f) sigma_mv``. A mixed-integer solution is polished
by re-solving the continuous problem on its support (exact there, free of SCIP's tolerances).

Fallbacks (documented, counted and reported; never a crash): when the requested objective
fails (infeasible, solver failure), ``min_volatility`` is tried under the same constraints,
and finally the equal-weight portfolio. Every attempt is an :class:`~kallos.types.Attempt`
``(objective, solver, status, reason)`` in :attr:`OptimizationResult.attempts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Self

import cvxpy as cp
import numpy as np
import pandas as pd

from kallos.exceptions import ConfigError, OptimizationError
from kallos.portfolio.backends import DIRECT_SOLVER, ClarabelProgram, Solution, solve_cvxpy
from kallos.portfolio.constraints import PortfolioConstraints, formulate
from kallos.portfolio.objectives import OBJECTIVES, MaxExcess, Objective
from kallos.portfolio.problem import ProblemData, sqrt_factor
from kallos.types import Attempt, OptimizationResult

if TYPE_CHECKING:
    from kallos.config import PortfolioConfig

__all__ = [
    "EQUAL_WEIGHT",
    "FALLBACK_OBJECTIVE",
    "OBJECTIVES",
    "Attempt",
    "MeanVariance",
    "OptimizationResult",
    "PortfolioConstraints",
    "max_attainable_return",
    "to_annual_expected_returns",
]

FALLBACK_OBJECTIVE = "min_volatility"
SOLVER = "CLARABEL"  # interior point, through cvxpy: the hand-over when the direct path fails
MIP_SOLVER = "SCIP"  # the only installed solver that handles mixed-integer QPs/SOCPs
EQUAL_WEIGHT = "equal_weight"
ZERO_TOL = 1e-7  # a solver weight below this is noise and set to 0
INFEASIBLE = (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE)
_MAX_EXCESS = MaxExcess()


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


def to_annual_expected_returns(
    log_forecast: pd.Series, horizon: int, periods_per_year: int = 365
) -> pd.Series:
    """Convert ``horizon``-day forward log-return forecasts to annualised simple expected returns.

    ``mu = (exp(f / horizon) - 1) * periods_per_year``: the implied daily simple return,
    annualised arithmetically like PyPortfolioOpt's ``mean_historical_return(compounding=False)``,
    so it matches the annualised covariance of daily simple returns.
    """
    return (np.exp(log_forecast / horizon) - 1.0) * periods_per_year


class MeanVariance:
    """Long-only optimiser (mean-variance and CVaR) with exact cardinality, turnover limit and fallbacks.

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
    cvar_beta : confidence level of ``min_cvar``, in (0, 1).

    Attributes
    ----------
    weights_ : pd.Series, the weights (sum to 1, or to ``<= 1`` with cash).
    objective_used_ : str, the objective that produced them.
    fallback_chain_ : tuple of str, one per failed attempt.
    result_ : :class:`~kallos.types.OptimizationResult`, with the solver and every attempt.

    Raises
    ------
    ConfigError
        At construction, for an unknown objective, a missing target or an infeasible constraint set.
    OptimizationError
        From :meth:`fit` only for malformed inputs (misaligned, non-finite, too few assets for the
        cap, scenarios missing for a scenario objective).

    References
    ----------
    Cornuejols & Tütüncü (2006), *Optimization Methods in Finance*, §8.2 (max Sharpe as a convex
    QP); PyPortfolioOpt ``EfficientFrontier`` and ``EfficientCVaR`` (same formulations);
    Rockafellar & Uryasev (2000), "Optimization of conditional value-at-risk".
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
        cvar_beta: float = 0.95,
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
        self.cvar_beta = cvar_beta
        for o in OBJECTIVES.values():  # every setting given, and the one the objective needs
            if o.setting is not None and (o.name == objective or getattr(self, o.setting) is not None):
                o.check(getattr(self, o.setting))
        self._direct: dict[tuple, ClarabelProgram] = {}

    @classmethod
    def from_config(
        cls,
        config: PortfolioConfig,
        objective: str,
        bounds: Mapping[str, tuple[float, float]] | None = None,
    ) -> MeanVariance:
        """The optimiser of ``objective`` under the study's ``[portfolio]`` settings.

        Raises
        ------
        ConfigError
            As the constructor.
        """
        return cls(
            objective=objective,
            max_weight=config.max_weight,
            min_names=config.min_names,
            min_weight_held=config.min_weight_held,
            risk_aversion=config.risk_aversion,
            l2_gamma=config.l2_gamma,
            risk_free_rate=config.risk_free_rate,
            target_volatility=config.target_volatility,
            target_return=config.target_return,
            turnover_limit=config.turnover_limit,
            allow_cash=config.allow_cash,
            bounds=bounds,
            mip_time_limit=config.mip_time_limit,
            cvar_beta=config.cvar_beta,
        )

    # Public conveniences mirroring the constraint set.
    max_weight = property(lambda self: self.constraints.max_weight)
    min_names = property(lambda self: self.constraints.min_names)
    min_weight_held = property(lambda self: self.constraints.min_weight_held)

    @property
    def needs_scenarios(self) -> bool:
        """Whether :meth:`fit` needs ``returns`` (the objective is a scenario objective)."""
        return OBJECTIVES[self.objective].needs_scenarios

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
        returns: pd.DataFrame | None = None,
    ) -> Self:
        """Solve for the weights, falling back as documented in the module docstring.

        Parameters
        ----------
        expected_returns : shape (n_assets,), annualised simple returns, index = coin ids.
        cov_matrix : shape (n_assets, n_assets), annualised, same labels.
        current_weights : drifted current weights (index = coin ids; missing = 0) for the
            turnover limit. Names outside ``expected_returns`` are sold and use up that much of the
            limit first. None = opening the portfolio: the limit does not apply.
        returns : shape (T, >= n_assets), daily simple returns (not percent), columns = coin ids:
            the scenarios of a scenario objective (``min_cvar``), e.g. the covariance's lookback
            window. Rows with a NaN among the assets are dropped. Ignored by the other objectives.

        Raises
        ------
        OptimizationError
            For malformed inputs, or ``returns`` missing (or without a complete row) when the
            objective needs scenarios.
        """
        assets, mu, cov = self._check(expected_returns, cov_matrix)
        lower, upper = self.constraints.bound_arrays(assets)
        w_drift, budget = self._turnover(assets, current_weights)
        data = ProblemData(
            excess=mu - self.risk_free_rate,
            factor=sqrt_factor(cov),
            lower=lower,
            upper=upper,
            w_drift=w_drift,
            budget=budget,
            scenarios=self._scenarios(assets, returns),
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

    @property
    def result_(self) -> OptimizationResult:
        return self._result

    def _scenarios(self, assets: pd.Index, returns: pd.DataFrame | None) -> np.ndarray | None:
        """The scenario matrix (T, n) of the assets, for a scenario objective; None otherwise."""
        if not self.needs_scenarios:
            return None
        if returns is None:
            raise OptimizationError(
                f"objective {self.objective!r} needs scenario returns: "
                "fit(..., returns=<daily simple returns, T x n_assets>)"
            )
        missing = assets.difference(returns.columns)
        if len(missing):
            raise OptimizationError(f"objective {self.objective!r}: no scenario returns for {list(missing)}")
        values = returns.reindex(columns=assets).to_numpy(dtype=float)
        clean = values[~np.isnan(values).any(axis=1)]
        if len(clean) == 0 or not np.isfinite(clean).all():
            raise OptimizationError(
                f"objective {self.objective!r}: scenario returns need a complete row and finite values"
            )
        return clean

    def _turnover(self, assets: pd.Index, current: pd.Series | None) -> tuple[np.ndarray, float]:
        """Drifted weights of ``assets`` and the turnover budget left after selling the other names."""
        limit = self.constraints.turnover_limit
        if current is None or limit is None:  # opening trade (or no limit): unconstrained
            return np.zeros(len(assets)), 2.0  # sum |w - 0| <= 1 < 2 always holds
        current = current.fillna(0.0).clip(lower=0.0)
        inside = current.reindex(assets).fillna(0.0).to_numpy(dtype=float)
        forced = float(current.drop(assets, errors="ignore").sum())
        return inside, max(limit - forced, 0.0)

    def _set(self, weights: pd.Series, objective: str, solver: str, attempts: list[Attempt]) -> None:
        self.weights_ = weights
        self.objective_used_ = objective
        self.fallback_chain_ = tuple(str(a) for a in attempts[:-1])
        self._result = OptimizationResult(
            weights, self.objective, objective, self.fallback_chain_, solver, tuple(attempts)
        )

    def _setting(self, objective: Objective) -> float | None:
        return None if objective.setting is None else getattr(self, objective.setting)

    def _solve_continuous(
        self, objective: Objective, d: ProblemData
    ) -> tuple[np.ndarray | None, str, str, str]:
        """The continuous problem: the direct CLARABEL path, and cvxpy when that is not optimal.

        Returns ``(weights or None, status, solver, note)``; the note records a hand-over to cvxpy.
        """
        problem = formulate(objective, d, self.constraints)
        key = (objective.name, problem.layout())
        if key not in self._direct:
            self._direct[key] = ClarabelProgram(formulate(objective, d.probe(), self.constraints))
        w, status = _weights(self._direct[key].solve(problem))
        if w is not None:
            return w, status, DIRECT_SOLVER, ""
        note = f"{DIRECT_SOLVER} {status}; re-solved with cvxpy"
        w, status = _weights(solve_cvxpy(problem, SOLVER))
        return w, status, SOLVER, note

    def _solve_exact(self, objective: Objective, d: ProblemData) -> tuple[np.ndarray | None, Attempt]:
        """Continuous relaxation first; the mixed-integer problem only when it violates cardinality."""
        setting = self._setting(objective)
        d = replace(d, scalar=0.0 if setting is None else objective.parameter(setting, self.risk_free_rate))
        if objective.homogeneous and not np.any(d.excess > 0):
            # long-only weights cannot reach (mu - rf)'x = 1: infeasible without a solve (e.g. the
            # zero forecast, whose max_sharpe is undefined and falls back every time)
            return None, Attempt(
                objective.name, "precheck", "infeasible", self._reason(objective, "infeasible")
            )
        w, status, solver, note = self._solve_continuous(objective, d)
        if w is None:
            return None, Attempt(objective.name, solver, status, self._reason(objective, status))
        w = np.where(w < ZERO_TOL, 0.0, w)
        if self._satisfies_cardinality(w):
            return self._tidy(w, objective, d.lower, d.upper), Attempt(objective.name, solver, status, note)
        if objective.homogeneous:
            big_m, why = self._sharpe_big_m(d)
            if big_m is None:
                return None, Attempt(objective.name, MIP_SOLVER, "infeasible", why)
            d = replace(d, big_m=big_m)
        values, status = solve_cvxpy(
            formulate(objective, d, self.constraints, mip=True), MIP_SOLVER, self.mip_time_limit
        )
        w, status = _weights((values, status))
        if w is None:
            return None, Attempt(objective.name, MIP_SOLVER, status, self._reason(objective, status))
        # the support is the MIP's choice of names (z), not its weights: within SCIP's tolerances a
        # chosen name can come back at 0 when the held floor is tiny (min_weight_held = 0)
        chosen = values["z"] > 0.5
        note = (
            ""
            if status == cp.OPTIMAL
            else f"SCIP time limit {self.mip_time_limit:g} s: best found, not proven"
        )
        return self._polish(objective, d, w, chosen), Attempt(objective.name, MIP_SOLVER, status, note)

    def _polish(self, objective: Objective, d: ProblemData, w: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        """Re-solve the continuous problem on the MIP's support (exact there, unlike SCIP's tolerances)."""
        floor = self.constraints.held_floor
        support = chosen | (w >= floor / 2)
        lower = np.where(support, np.maximum(d.lower, floor), 0.0)
        upper = np.where(support, d.upper, 0.0)
        polished, *_ = self._solve_continuous(objective, replace(d, lower=lower, upper=upper, big_m=None))
        w = np.where(support, w, 0.0) if polished is None else polished
        return self._tidy(np.where(support, w, 0.0), objective, lower, upper)

    def _sharpe_big_m(self, d: ProblemData) -> tuple[float | None, str]:
        """An upper bound on kappa* = 1 / (mu - rf)'w* for the homogenised max_sharpe MIP.

        ``(mu - rf)'w* = SR(w*) sigma(w*) >= SR(w_f) sigma_mv`` for any feasible ``w_f``: here the
        maximum-excess-return MIP portfolio (a MILP, fast), and ``sigma_mv`` the minimum volatility
        of the continuous relaxation (a lower bound on every feasible volatility).
        """
        plain = replace(d, scalar=0.0, big_m=None)
        problem = formulate(_MAX_EXCESS, plain, self.constraints, mip=True)
        w_f, _ = _weights(solve_cvxpy(problem, MIP_SOLVER, self.mip_time_limit))
        if w_f is None or d.excess @ w_f <= 1e-12:
            return None, self._reason(OBJECTIVES["max_sharpe"], "infeasible")
        w_mv, status, *_ = self._solve_continuous(OBJECTIVES["min_volatility"], plain)
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

    def _tidy(self, w: np.ndarray, objective: Objective, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        """Clip solver noise into the bounds; a fully invested solution is then made to sum exactly 1
        by spreading the residual over the names strictly inside their bounds (pro rata)."""
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
        if status in INFEASIBLE:
            return objective.infeasible_reason(self.describe_constraints(), self._setting(objective))
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


def _weights(solution: Solution) -> tuple[np.ndarray | None, str]:
    """``(x / s, status)`` from a back-end's solution; ``(None, reason)`` when there is none."""
    values, status = solution
    if values is None:
        return None, status
    scale = float(values["s"][0])
    if not scale > 0:
        return None, "degenerate scale"
    return values["x"] / scale, status
