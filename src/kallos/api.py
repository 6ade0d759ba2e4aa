"""``kallos.evaluate``: a study's comparisons of any set of daily strategy returns, as typed results.

It composes the statistics battery (:func:`kallos.evaluation.battery.evaluate`) and the typed
:class:`~kallos.report.results.Comparison` the same way ``kallos run`` does; nothing is a second
implementation. See ``docs/notebook.md`` for a worked example.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from kallos.config import EvaluationConfig, StudyConfig
from kallos.evaluation.battery import TrialCount
from kallos.evaluation.battery import evaluate as evaluate_statistics
from kallos.exceptions import DataValidationError
from kallos.forecast.registry import is_baseline
from kallos.report.results import Comparison
from kallos.types import Variant

__all__ = ["evaluate"]

BENCHMARK = "market_cap"


def evaluate(
    returns: pd.DataFrame,
    *,
    benchmark: str = BENCHMARK,
    learned: Sequence[str] | None = None,
    baselines: Sequence[str] | None = None,
    config: EvaluationConfig | StudyConfig | None = None,
    trials: TrialCount | int = 0,
    decisions: pd.DataFrame | None = None,
) -> Comparison:
    """Compare strategies' daily returns as a study does: primary family, exploratory battery, DSR.

    Parameters
    ----------
    returns : pd.DataFrame of shape (n_days, n_variants)
        Daily simple net returns (fractions), one row per UTC day; columns are variant keys
        (``"gru/max_sharpe"``; the benchmark column, e.g. ``"market_cap"``, has no objective).
    benchmark : the benchmark column: a comparator of the primary family and the regime reference.
    learned, baselines : forecaster names on each side of the primary family; by default every
        strategy registered as a baseline forecaster (zero, historical mean, naive persistence) is a
        baseline and every other non-benchmark strategy is learned.
    config : the evaluation settings (``StudyConfig.evaluation`` or a StudyConfig); defaults if None.
    trials : what the deflated Sharpe ratio counts besides these variants (tuning trials).
    decisions : rebalance rows ``key, date, fallback`` for the fallback robustness check.

    Returns
    -------
    Comparison
        Verdicts (StepM on Sharpe ratios, Romano & Wolf 2005) and the exploratory tests; the full
        statistics (PSR/DSR, PBO, regimes) are in ``Comparison.statistics``.

    Raises
    ------
    DataValidationError
        If a column is not a variant key, or the benchmark is missing.
    """
    settings = config.evaluation if isinstance(config, StudyConfig) else (config or EvaluationConfig())
    variants = {}
    for column in returns.columns:
        try:
            v = Variant.parse(str(column))
        except ValueError as err:
            raise DataValidationError(f"returns column {column!r}: {err}") from None
        variants[v.key] = (v.strategy, v.objective)
    strategies = [s for s, objective in variants.values() if objective is not None]
    if baselines is None:
        baselines = list(dict.fromkeys(s for s in strategies if is_baseline(s)))
    if learned is None:
        learned = list(dict.fromkeys(s for s in strategies if s not in baselines))
    frame = returns.rename(columns=str)
    statistics = evaluate_statistics(
        frame,
        variants,
        benchmark,
        settings,
        trials,
        learned=learned,
        baselines=baselines,
        decisions=decisions,
    )
    return Comparison.from_statistics(statistics)
