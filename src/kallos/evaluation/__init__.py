"""Evaluation stage: performance metrics, significance tests, the statistics battery and forecast accuracy.

Consumes daily simple portfolio returns (``BacktestResult.returns_net``) and long frames of
forecasts against realised log returns; computes numbers only, with no I/O.
"""

from kallos.evaluation.battery import BATTERY, StudyStatistics, comparison_pairs, evaluate, run_battery
from kallos.evaluation.breakdowns import market_regimes, quarter_breakdown, regime_metrics
from kallos.evaluation.dominance import stochastic_dominance
from kallos.evaluation.forecast_metrics import (
    ForecastEvaluation,
    diebold_mariano,
    dm_tests,
    forecast_accuracy,
    forecast_evaluation,
    residuals,
)
from kallos.evaluation.metrics import cumulative_returns, drawdown, performance_metrics, rolling_sharpe
from kallos.evaluation.overfitting import probability_of_backtest_overfitting
from kallos.evaluation.sharpe import (
    deflated_sharpe_ratio,
    ledoit_wolf_2008,
    min_track_record_length,
    probabilistic_sharpe_ratio,
)
from kallos.evaluation.significance import (
    TestResult,
    adjust_pvalues,
    cohens_d,
    jobson_korkie_memmel,
    ks_test,
    mann_whitney,
    newey_west_maxlags,
    paired_t_hac,
    variance_test,
)

__all__ = [
    "BATTERY",
    "ForecastEvaluation",
    "StudyStatistics",
    "TestResult",
    "adjust_pvalues",
    "cohens_d",
    "comparison_pairs",
    "cumulative_returns",
    "deflated_sharpe_ratio",
    "diebold_mariano",
    "dm_tests",
    "drawdown",
    "evaluate",
    "forecast_accuracy",
    "forecast_evaluation",
    "jobson_korkie_memmel",
    "ks_test",
    "ledoit_wolf_2008",
    "mann_whitney",
    "market_regimes",
    "min_track_record_length",
    "newey_west_maxlags",
    "paired_t_hac",
    "performance_metrics",
    "probabilistic_sharpe_ratio",
    "probability_of_backtest_overfitting",
    "quarter_breakdown",
    "regime_metrics",
    "residuals",
    "rolling_sharpe",
    "run_battery",
    "stochastic_dominance",
    "variance_test",
]
