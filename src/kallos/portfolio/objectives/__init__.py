"""Portfolio objectives, one module each, and the registry that names them.

Adding an objective: a module here with an :class:`~kallos.portfolio.objectives.base.Objective`
subclass (its :meth:`~Objective.build` is its only definition; both back-ends compile it), one
line in :data:`OBJECTIVES`, and its tests in ``tests/portfolio``.
"""

from kallos.portfolio.objectives.base import Objective
from kallos.portfolio.objectives.efficient_return import EfficientReturn
from kallos.portfolio.objectives.efficient_risk import EfficientRisk
from kallos.portfolio.objectives.max_quadratic_utility import MaxQuadraticUtility
from kallos.portfolio.objectives.max_return import MaxReturn
from kallos.portfolio.objectives.max_sharpe import MaxExcess, MaxSharpe
from kallos.portfolio.objectives.min_cvar import MinCVaR, historical_cvar
from kallos.portfolio.objectives.min_volatility import MinVolatility

__all__ = [
    "OBJECTIVES",
    "EfficientReturn",
    "EfficientRisk",
    "MaxExcess",
    "MaxQuadraticUtility",
    "MaxReturn",
    "MaxSharpe",
    "MinCVaR",
    "MinVolatility",
    "Objective",
    "historical_cvar",
]

OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        MaxSharpe(),
        MinVolatility(),
        EfficientRisk(),
        EfficientReturn(),
        MaxQuadraticUtility(),
        MaxReturn(),
        MinCVaR(),
    )
}
"""Objectives by name (the keys ``portfolio.objectives`` accepts)."""
