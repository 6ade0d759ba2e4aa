"""``max_return``: ``max (mu - rf)'w - gamma ||w||^2``.

The L2 penalty is PyPortfolioOpt's ``objective_functions.L2_reg``.
"""

from __future__ import annotations

from kallos.exceptions import ConfigError
from kallos.portfolio.objectives.base import Objective
from kallos.portfolio.problem import Problem

__all__ = ["MaxReturn"]


class MaxReturn(Objective):
    name = "max_return"
    setting = "l2_gamma"

    def check(self, value: float | None) -> None:
        if value is None or not value >= 0:
            raise ConfigError(f"portfolio.l2_gamma={value} must be >= 0")

    def build(self, p: Problem) -> None:
        p.add_l2(p.data.scalar)
        p.add_expected_excess(1.0)
