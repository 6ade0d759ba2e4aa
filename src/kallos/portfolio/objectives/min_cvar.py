"""``min_cvar``: the minimum conditional value-at-risk portfolio over historical scenarios.

CVaR at confidence ``beta`` is the expected loss in the worst ``1 - beta`` of the scenarios.
Rockafellar & Uryasev (2000), "Optimization of conditional value-at-risk", Journal of Risk 2(3),
Theorem 2 and eq. (9), make it a linear programme over ``T`` scenario returns ``r_t`` (rows of the
scenario matrix ``R``, shape (T, n)):

    min_{w, alpha, u}  alpha + 1 / ((1 - beta) T) * sum_t u_t
    s.t.               u_t >= -r_t'w - alpha,  u_t >= 0,

whose optimal ``alpha`` is the value-at-risk and whose value is the CVaR of ``w``. This is
PyPortfolioOpt's ``EfficientCVaR.min_cvar`` (which ignores the expected returns, as this does),
here under the shared constraint set (bounds, cardinality, turnover). Scenarios are daily simple
returns (not percent), so the CVaR is a daily loss fraction. Fully invested even with
``allow_cash`` (cash has zero loss and would take everything).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import sparse

from kallos.exceptions import ConfigError, OptimizationError
from kallos.portfolio.objectives.base import Objective
from kallos.portfolio.problem import Problem

__all__ = ["MinCVaR", "historical_cvar"]


class MinCVaR(Objective):
    name = "min_cvar"
    cash_ok = False
    needs_scenarios = True
    setting = "cvar_beta"

    def check(self, value: float | None) -> None:
        if value is None or not 0 < value < 1:
            raise ConfigError(f"portfolio.cvar_beta={value} must be in (0, 1)")

    def build(self, p: Problem) -> None:
        scenarios = p.data.scenarios
        if scenarios is None:
            raise OptimizationError("min_cvar needs scenario returns (MeanVariance.fit(..., returns=...))")
        t, beta = len(scenarios), p.data.scalar
        eye = sparse.identity(t, format="csr")
        p.variable("alpha", 1)
        p.variable("tail", t)  # u_t, the loss beyond alpha in scenario t
        p.minimise("alpha", np.ones(1))
        p.minimise("tail", np.full(t, 1.0 / ((1.0 - beta) * t)))
        p.constrain("nonneg", {"tail": eye}, np.zeros(t))  # u >= 0
        p.constrain(
            "nonneg", {"tail": eye, "x": scenarios, "alpha": np.ones(t)}, np.zeros(t)
        )  # u >= -Rw - alpha


def historical_cvar(weights: pd.Series, returns: pd.DataFrame, beta: float = 0.95) -> float:
    """Historical CVaR of a portfolio: the mean loss over the worst ``(1 - beta) T`` scenarios.

    Parameters
    ----------
    weights : shape (n_assets,), index = coin ids.
    returns : shape (T, n_assets), daily simple returns (not percent); rows with a NaN are dropped.
    beta : confidence level in (0, 1).

    Returns
    -------
    float, a daily loss fraction (positive = loss): ``(sum of the k worst losses +
    ((1 - beta) T - k) * the (k+1)-th worst) / ((1 - beta) T)`` with ``k = floor((1 - beta) T)``,
    which is ``min_alpha alpha + E[(loss - alpha)^+] / (1 - beta)`` (Rockafellar & Uryasev 2000,
    eq. (9)) for the empirical distribution.

    Raises
    ------
    ConfigError
        If ``beta`` is not in (0, 1).
    OptimizationError
        If no complete scenario remains or ``weights`` names assets outside ``returns``.
    """
    if not 0 < beta < 1:
        raise ConfigError(f"portfolio.cvar_beta={beta} must be in (0, 1)")
    missing = weights.index.difference(returns.columns)
    if len(missing):
        raise OptimizationError(f"no scenario returns for {list(missing)}")
    clean = returns[weights.index].dropna(how="any")
    if clean.empty:
        raise OptimizationError("no complete scenario returns")
    losses = np.sort(-(clean.to_numpy(dtype=float) @ weights.to_numpy(dtype=float)))[::-1]
    tail = (1.0 - beta) * len(losses)
    k = min(math.floor(tail), len(losses) - 1)
    return float((losses[:k].sum() + (tail - k) * losses[k]) / tail)
