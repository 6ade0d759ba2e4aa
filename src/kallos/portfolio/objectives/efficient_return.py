"""``efficient_return``: ``min w' cov w`` s.t. ``mu'w >= target_return`` (annual simple).

PyPortfolioOpt ``EfficientFrontier.efficient_return``; on excess returns the floor is
``(mu - rf)'w >= (target_return - rf) s``.
"""

from __future__ import annotations

import numpy as np

from kallos.portfolio.objectives.base import Objective
from kallos.portfolio.problem import Problem

__all__ = ["EfficientReturn"]


class EfficientReturn(Objective):
    name = "efficient_return"
    setting = "target_return"

    def parameter(self, value: float, risk_free_rate: float) -> float:
        return value - risk_free_rate

    def build(self, p: Problem) -> None:
        p.add_risk(1.0)
        p.constrain("nonneg", {"x": p.data.excess[None, :], "s": np.array([-p.data.scalar])}, np.zeros(1))

    def infeasible_reason(self, constraints: str, value: float | None) -> str:
        return f"no portfolio reaches target_return {value:.2%} under {constraints}"
