"""``max_quadratic_utility``: ``max (mu - rf)'w - delta/2 w' cov w``.

PyPortfolioOpt ``EfficientFrontier.max_quadratic_utility``.
"""

from __future__ import annotations

from kallos.portfolio.objectives.base import Objective
from kallos.portfolio.problem import Problem

__all__ = ["MaxQuadraticUtility"]


class MaxQuadraticUtility(Objective):
    name = "max_quadratic_utility"
    setting = "risk_aversion"

    def build(self, p: Problem) -> None:
        p.add_risk(0.5 * p.data.scalar)
        p.add_expected_excess(1.0)
