"""``efficient_risk``: ``max (mu - rf)'w`` s.t. ``w' cov w <= target_volatility^2`` (annual).

PyPortfolioOpt ``EfficientFrontier.efficient_risk``.
"""

from __future__ import annotations

from kallos.portfolio.objectives.base import Objective
from kallos.portfolio.problem import Problem

__all__ = ["EfficientRisk"]


class EfficientRisk(Objective):
    name = "efficient_risk"
    setting = "target_volatility"

    def parameter(self, value: float, risk_free_rate: float) -> float:
        return value**2  # the annual variance cap

    def build(self, p: Problem) -> None:
        p.add_expected_excess(1.0)
        p.cap_risk(p.data.scalar)

    def infeasible_reason(self, constraints: str, value: float | None) -> str:
        return f"no portfolio with volatility <= target_volatility {value:.2%} under {constraints}"
