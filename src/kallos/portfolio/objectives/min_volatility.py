"""``min_volatility``: ``min w' cov w`` (PyPortfolioOpt ``EfficientFrontier.min_volatility``).

Fully invested even with ``allow_cash``, which would otherwise make it all cash.
"""

from __future__ import annotations

from kallos.portfolio.objectives.base import Objective
from kallos.portfolio.problem import Problem

__all__ = ["MinVolatility"]


class MinVolatility(Objective):
    name = "min_volatility"
    cash_ok = False

    def build(self, p: Problem) -> None:
        p.add_risk(1.0)
