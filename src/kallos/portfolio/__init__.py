"""Portfolio stage: covariance, optimisation (one module per objective, two back-ends), strategies."""

from kallos.portfolio.covariance import COVARIANCE_ESTIMATORS, cov_matrix
from kallos.portfolio.objectives import historical_cvar
from kallos.portfolio.optimizer import (
    OBJECTIVES,
    MeanVariance,
    PortfolioConstraints,
    to_annual_expected_returns,
)
from kallos.portfolio.strategies import (
    BENCHMARKS,
    EqualWeightStrategy,
    ForecastStrategy,
    MarketCapStrategy,
    RebalanceContext,
    Strategy,
)
from kallos.types import Attempt, OptimizationResult

__all__ = [
    "BENCHMARKS",
    "COVARIANCE_ESTIMATORS",
    "OBJECTIVES",
    "Attempt",
    "EqualWeightStrategy",
    "ForecastStrategy",
    "MarketCapStrategy",
    "MeanVariance",
    "OptimizationResult",
    "PortfolioConstraints",
    "RebalanceContext",
    "Strategy",
    "cov_matrix",
    "historical_cvar",
    "to_annual_expected_returns",
]
