"""Evaluation stage: performance metrics, significance tests and forecast accuracy.

Consumes daily simple portfolio returns (``BacktestResult.returns_net``) and long frames of
forecasts against realised log returns; computes numbers only, with no I/O.
"""

from kallos.evaluation.forecast_metrics import forecast_accuracy, residuals
from kallos.evaluation.metrics import cumulative_returns, drawdown, performance_metrics, rolling_sharpe
from kallos.evaluation.significance import (
    PAIRWISE_TESTS,
    TestResult,
    adjust_pvalues,
    cohens_d,
    jobson_korkie_memmel,
    ks_test,
    mann_whitney,
    newey_west_maxlags,
    paired_t_hac,
    pairwise_tests,
    variance_test,
)

__all__ = [
    "PAIRWISE_TESTS",
    "TestResult",
    "adjust_pvalues",
    "cohens_d",
    "cumulative_returns",
    "drawdown",
    "forecast_accuracy",
    "jobson_korkie_memmel",
    "ks_test",
    "mann_whitney",
    "newey_west_maxlags",
    "paired_t_hac",
    "pairwise_tests",
    "performance_metrics",
    "residuals",
    "rolling_sharpe",
    "variance_test",
]
