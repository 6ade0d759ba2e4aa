"""Portfolio stage: covariance, mean-variance optimisation with fallbacks, and strategies."""

from kallos.portfolio.covariance import COVARIANCE_ESTIMATORS, cov_matrix
from kallos.portfolio.optimizer import (
    OBJECTIVES,
    Attempt,
    MeanVariance,
    OptimizationOutcome,
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

__all__ = [
    "BENCHMARKS",
    "COVARIANCE_ESTIMATORS",
    "OBJECTIVES",
    "Attempt",
    "EqualWeightStrategy",
    "ForecastStrategy",
    "MarketCapStrategy",
    "MeanVariance",
    "OptimizationOutcome",
    "PortfolioConstraints",
    "RebalanceContext",
    "Strategy",
    "cov_matrix",
    "to_annual_expected_returns",
]
