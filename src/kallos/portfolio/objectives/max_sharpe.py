"""``max_sharpe``: the tangency portfolio, made convex by homogenisation.

``max (mu - rf)'w / sqrt(w' cov w)`` becomes, with ``y = kappa w`` (Cornuejols & Tütüncü 2006,
*Optimization Methods in Finance*, §8.2), ``min y' cov y`` s.t. ``(mu - rf)'y = 1``,
``sum y = kappa``, exactly as PyPortfolioOpt's ``EfficientFrontier.max_sharpe``. Cash adds nothing
to the tangency Sharpe ratio, so the portfolio stays fully invested.
"""

from __future__ import annotations

import numpy as np

from kallos.portfolio.objectives.base import Objective
from kallos.portfolio.problem import Problem

__all__ = ["MaxExcess", "MaxSharpe"]


class MaxSharpe(Objective):
    name = "max_sharpe"
    homogeneous = True
    cash_ok = False

    def build(self, p: Problem) -> None:
        p.add_risk(1.0)
        p.constrain("zero", {"x": -p.data.excess[None, :]}, np.ones(1))  # (mu - rf)'y = 1

    def infeasible_reason(self, constraints: str, value: float | None) -> str:
        return f"no portfolio with positive expected excess return under {constraints}"


class MaxExcess(Objective):
    """Linear: the highest expected excess return (not registered; it bounds max_sharpe's big-M)."""

    name = "_max_excess"

    def build(self, p: Problem) -> None:
        p.add_expected_excess(1.0)
