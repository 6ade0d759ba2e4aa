"""Long-only mean-variance optimisation (PyPortfolioOpt on cvxpy) with a recorded fallback chain.

Inputs are annualised: ``expected_returns`` (simple, per year) and ``cov_matrix`` (of daily
simple returns × 365). Constraints: fully invested, ``0 <= w_i <= max_weight``, and at least
``min_names`` names with weight ``>= min_weight_held``.

Fallbacks (documented, counted and reported; never cash, never a crash): when the requested
objective fails (e.g. ``max_sharpe`` when every expected return is at or below the risk-free
rate, a solver failure, or a solution holding fewer than ``min_names`` names), the optimiser
tries ``min_volatility`` under the same constraints, and finally the equal-weight portfolio
of the assets. Every failed attempt is recorded in ``fallback_chain_``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

import cvxpy as cp
import numpy as np
import pandas as pd
from pypfopt import EfficientFrontier, objective_functions
from pypfopt.exceptions import OptimizationError as PypfoptError

from kallos.data.universe import capped_weights
from kallos.exceptions import OptimizationError
from kallos.types import OptimizationResult

__all__ = [
    "FALLBACK_OBJECTIVE",
    "OBJECTIVES",
    "MeanVariance",
    "max_attainable_return",
    "to_annual_expected_returns",
]

FALLBACK_OBJECTIVE = "min_volatility"
SOLVER = "CLARABEL"  # interior point: accurate on these small QPs and SOCPs
EQUAL_WEIGHT = "equal_weight"


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


def _max_sharpe(ef: EfficientFrontier, opt: MeanVariance) -> None:
    best = max_attainable_return(pd.Series(ef.expected_returns, index=ef.tickers), opt.max_weight)
    if best <= opt.risk_free_rate:
        raise ValueError(
            f"no capped portfolio beats the risk-free rate (best expected return {best:+.2%} "
            f"<= {opt.risk_free_rate:+.2%})"
        )
    ef.max_sharpe(risk_free_rate=opt.risk_free_rate)


def _max_return_l2(ef: EfficientFrontier, opt: MeanVariance) -> None:
    ef.add_objective(objective_functions.L2_reg, gamma=opt.l2_gamma)
    ef.convex_objective(lambda w, mu: -(w @ mu), mu=ef.expected_returns)


OBJECTIVES: dict[str, Callable[[EfficientFrontier, MeanVariance], object]] = {
    "max_sharpe": _max_sharpe,
    "min_volatility": lambda ef, opt: ef.min_volatility(),
    "max_quadratic_utility": lambda ef, opt: ef.max_quadratic_utility(risk_aversion=opt.risk_aversion),
    "max_return": _max_return_l2,
}
"""Objectives by name. ``max_return`` maximises ``mu'w - gamma * ||w||^2`` (L2 regularised)."""


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
    """Long-only mean-variance optimiser.

    Parameters
    ----------
    objective : a key of :data:`OBJECTIVES`.
    max_weight : upper bound per asset.
    min_names : names that must be held (weight ``>= min_weight_held``).
    min_weight_held : weights below this are set to zero and their mass redistributed.
    risk_aversion : δ of ``max_quadratic_utility``.
    l2_gamma : γ of ``max_return``.
    risk_free_rate : annualised rate for ``max_sharpe``.

    Attributes
    ----------
    weights_ : pd.Series, the weights (sum to 1).
    objective_used_ : str, the objective that produced them.
    fallback_chain_ : tuple of str, ``"<objective>: <reason>"`` for each failed attempt.

    Raises
    ------
    OptimizationError
        From :meth:`fit` only for malformed inputs (misaligned or non-finite).

    References
    ----------
    PyPortfolioOpt ``EfficientFrontier`` (max_sharpe via the Cornuejols & Tütüncü 2006
    variable transformation, which keeps it convex).
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
    ) -> None:
        self.objective = objective
        self.max_weight = max_weight
        self.min_names = min_names
        self.min_weight_held = min_weight_held
        self.risk_aversion = risk_aversion
        self.l2_gamma = l2_gamma
        self.risk_free_rate = risk_free_rate

    def fit(self, expected_returns: pd.Series, cov_matrix: pd.DataFrame) -> Self:
        """Solve for the weights, falling back as documented in the module docstring.

        Parameters
        ----------
        expected_returns : shape (n_assets,), annualised simple returns, index = coin ids.
        cov_matrix : shape (n_assets, n_assets), annualised, same labels.
        """
        mu, cov = self._check(expected_returns, cov_matrix)
        chain: list[str] = []
        for objective in dict.fromkeys([self.objective, FALLBACK_OBJECTIVE]):
            try:
                weights = self._solve(objective, mu, cov)
            except (PypfoptError, ValueError, cp.error.SolverError) as err:
                chain.append(f"{objective}: {_reason(err)}")
                continue
            held = int(((weights > 0) & (weights >= self.min_weight_held)).sum())
            if held < min(self.min_names, len(mu)):
                chain.append(f"{objective}: holds {held} < min_names={self.min_names} names")
                continue
            self._set(weights, objective, chain)
            return self
        self._set(self._equal_weight(mu.index), EQUAL_WEIGHT, chain)
        return self

    @property
    def result_(self) -> OptimizationResult:
        return OptimizationResult(self.weights_, self.objective, self.objective_used_, self.fallback_chain_)

    def _set(self, weights: pd.Series, objective: str, chain: list[str]) -> None:
        self.weights_ = weights
        self.objective_used_ = objective
        self.fallback_chain_ = tuple(chain)

    def _check(self, mu: pd.Series, cov: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame]:
        if list(cov.index) != list(mu.index) or list(cov.columns) != list(mu.index):
            raise OptimizationError(
                f"expected_returns {list(mu.index)} and cov_matrix {list(cov.index)} are not aligned"
            )
        if not np.isfinite(mu.to_numpy()).all() or not np.isfinite(cov.to_numpy()).all():
            raise OptimizationError(f"non-finite expected returns or covariance for {list(mu.index)}")
        if self.max_weight * len(mu) < 1 - 1e-12:
            raise OptimizationError(
                f"max_weight={self.max_weight} x {len(mu)} assets < 1: no fully invested portfolio"
            )
        return mu.astype(float), cov.astype(float)

    def _solve(self, objective: str, mu: pd.Series, cov: pd.DataFrame) -> pd.Series:
        ef = EfficientFrontier(mu, cov, weight_bounds=(0.0, self.max_weight), solver=SOLVER)
        OBJECTIVES[objective](ef, self)
        raw = pd.Series(ef.weights, index=mu.index, dtype=float)
        return self._clean(raw)

    def _clean(self, raw: pd.Series) -> pd.Series:
        """Clip solver noise, zero weights below ``min_weight_held``, keep the cap, sum to 1."""
        w = raw.clip(lower=0.0, upper=self.max_weight)
        if w.sum() <= 0:
            raise ValueError("solver returned no positive weight")
        held = w[(w > 0) & (w >= self.min_weight_held)]
        if held.empty or self.max_weight * len(held) < 1 - 1e-12:
            held = w[w > 0].nlargest(max(int(np.ceil(1 / self.max_weight - 1e-12)), 1))
        out = capped_weights(held, self.max_weight).reindex(w.index, fill_value=0.0)
        return out

    def _equal_weight(self, index: pd.Index) -> pd.Series:
        return pd.Series(1.0 / len(index), index=index)


def _reason(err: Exception) -> str:
    parts = [str(a).strip() for a in err.args if str(a).strip()] or [type(err).__name__]
    return "; ".join(parts)[:200]
