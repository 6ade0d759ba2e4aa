"""A study's result (:class:`StudyResult`), its typed views and its serialisations.

:class:`StudyResult` is what :func:`kallos.pipeline.study.run_study` returns. A notebook user reads
it through typed objects: :attr:`StudyResult.portfolios` (one
:class:`~kallos.report.results.PortfolioResult` per variant) and :attr:`StudyResult.comparison`
(:class:`~kallos.report.results.Comparison`). ``results.json`` (:meth:`StudyResult.to_results`,
:func:`build_results`) serialises them, and :meth:`StudyResult.to_html` writes the report with no
database.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kallos.config import StudyConfig
from kallos.data.quality import describe
from kallos.data.universe import universe_summary
from kallos.evaluation import ForecastEvaluation
from kallos.evaluation.battery import StudyStatistics
from kallos.evaluation.calibration import CalibrationResult
from kallos.evaluation.primary import PrimaryFamily
from kallos.forecast import Fold, JobResult
from kallos.forecast.model_store import RegistryStats
from kallos.forecast.registry import describe as describe_forecasters
from kallos.forecast.tuned import StudySummary
from kallos.portfolio import Strategy
from kallos.report.blocks import ReportFrames
from kallos.report.html import write_report
from kallos.report.published import published_doc
from kallos.report.results import Comparison, Fallbacks, PortfolioResult, Verdict, wide_weights
from kallos.report.schema import validate_results
from kallos.types import BacktestResult, Variant

__all__ = ["RESULT_KEYS", "Decisions", "StudyResult", "build_results", "report_frames", "write_study_report"]

RESULT_KEYS = ("config", "data", "strategies", "tests", "forecasts", "universe")


@dataclass(frozen=True)
class Decisions:
    """Everything decided at or before a date, computed from data up to that date only.

    Attributes
    ----------
    through : last decision date covered.
    universe, folds, decision_dates, forecasts, jobs, decisions, weights : as in :class:`StudyResult`.
    strategies : the strategies that took the decisions.
    registry_stats : how many recurrent models the model registry served (None without one).
    cmc_checks : coins whose market cap disagreed with CoinMarketCap's, and what the universe
        used (:func:`kallos.data.universe.cmc_market_cap_check`).
    tuning : one summary per tuned study (``forecast.tuning.enabled``), in job order.
    """

    through: pd.Timestamp
    universe: pd.DataFrame
    folds: list[Fold]
    decision_dates: pd.DatetimeIndex
    forecasts: pd.DataFrame
    jobs: list[JobResult] = field(repr=False)
    decisions: pd.DataFrame = field(repr=False)
    weights: pd.DataFrame = field(repr=False)
    strategies: list[Strategy] = field(repr=False)
    registry_stats: RegistryStats | None = None
    cmc_checks: pd.DataFrame | None = field(default=None, repr=False)
    tuning: list[StudySummary] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class StudyResult:
    """Everything a study computed. Frames are long unless stated.

    Attributes
    ----------
    decided : the universe, folds, forecasts, decisions and target weights (:class:`Decisions`);
        its fields are also available directly (``result.universe``, ``result.weights``, ...).
    forecasts : ``decided.forecasts`` with the ``realised`` label of each forecast.
    backtests : variant key -> BacktestResult.
    variants : variant key -> (strategy, objective or None).
    metrics : variant key -> {"net": {...}, "gross": {...}}.
    tests : pairwise test records (``statistics.tests``, see :func:`kallos.evaluation.battery.run_battery`).
    forecast_accuracy : per forecaster, coin and quarter (the quarter a forecast trades into).
    forecast_overall : per forecaster pooled over coins (``coin_id == "all"``) and per coin.
    coin_returns : daily simple returns of every universe coin over the test period.
    reconciliation : CoinGecko vs Binance close divergence per coin-month
        (:func:`kallos.data.reconcile.price_divergence`).
    statistics : the statistics battery (:func:`kallos.evaluation.battery.evaluate`): tests,
        effects, verdicts, PSR/DSR, PBO, regime and quarter breakdowns.
    forecast_evaluation : accuracy per coin and quarter against the zero forecast (R²_oos),
        Diebold-Mariano tests against zero and naive persistence, Pesaran-Timmermann tests,
        residuals and accuracy by weeks since training (:func:`kallos.evaluation.forecast_evaluation`).
    family : the primary family, declared from the configuration before anything ran.
    calibration : size and power of the primary tests on this study's returns (None when off).
    metrics_net_compare : variant key -> :func:`~kallos.evaluation.performance_metrics` of the daily
        net returns when the same target weights are traded at ``backtest.compare_cost_bps`` per
        side (``slippage_bps`` still added) instead of ``cost_bps``; None when
        ``compare_cost_bps`` is unset. The statistics stay on the ``cost_bps`` returns.
    """

    config: StudyConfig
    data_hash: str
    panel_start: pd.Timestamp
    panel_end: pd.Timestamp
    panel_coins: int
    quality_events: pd.DataFrame
    decided: Decisions = field(repr=False)
    forecasts: pd.DataFrame = field(repr=False)
    backtests: dict[str, BacktestResult] = field(repr=False)
    variants: dict[str, tuple[str, str | None]] = field(repr=False)
    metrics: dict[str, dict[str, dict]] = field(repr=False)
    tests: pd.DataFrame = field(repr=False)
    forecast_accuracy: pd.DataFrame = field(repr=False)
    forecast_overall: pd.DataFrame = field(repr=False)
    coin_returns: pd.DataFrame = field(repr=False)
    reconciliation: pd.DataFrame | None = field(default=None, repr=False)
    statistics: StudyStatistics | None = field(default=None, repr=False)
    forecast_evaluation: ForecastEvaluation | None = field(default=None, repr=False)
    family: PrimaryFamily | None = field(default=None, repr=False)
    calibration: CalibrationResult | None = field(default=None, repr=False)
    metrics_net_compare: dict[str, dict] | None = field(default=None, repr=False)

    universe = property(lambda self: self.decided.universe)
    tuning = property(lambda self: self.decided.tuning)
    folds = property(lambda self: self.decided.folds)
    decision_dates = property(lambda self: self.decided.decision_dates)
    jobs = property(lambda self: self.decided.jobs)
    decisions = property(lambda self: self.decided.decisions)
    weights = property(lambda self: self.decided.weights)

    # ------------------------------------------------------------------ typed views

    @cached_property
    def portfolios(self) -> dict[str, PortfolioResult]:
        """Variant key -> :class:`~kallos.report.results.PortfolioResult` (test period), in run order."""
        start, end = pd.Timestamp(self.config.backtest.start), pd.Timestamp(self.config.backtest.end)
        out = {}
        for key, (strategy, objective) in self.variants.items():
            bt = self.backtests[key]
            decisions = self.decisions[self.decisions["key"] == key].reset_index(drop=True)
            compare = None
            if self.metrics_net_compare is not None:
                compare = {"cost_bps": self.config.backtest.compare_cost_bps, **self.metrics_net_compare[key]}
            variant = Variant(strategy, objective)
            out[key] = PortfolioResult(
                variant=variant,
                returns=bt.returns_net.loc[start:end].rename(key),
                returns_gross=bt.returns_gross.loc[start:end].rename(key),
                turnover=bt.turnover.rename(key),
                weights=wide_weights(self.weights, variant),
                decisions=decisions,
                metrics=self.metrics[key]["net"],
                metrics_gross=self.metrics[key]["gross"],
                fallbacks=Fallbacks.from_decisions(decisions),
                missing_returns=bt.missing_returns,
                metrics_compare=compare,
            )
        return out

    def portfolio(self, variant: str | Variant) -> PortfolioResult:
        """One variant's :class:`~kallos.report.results.PortfolioResult` (``"gru/max_sharpe"`` or a Variant).

        Raises
        ------
        KeyError
            For a variant the study did not run (the message lists those it did).
        """
        key = Variant.parse(variant).key
        if key not in self.portfolios:
            raise KeyError(f"variant {key!r} is not in this study; it ran {sorted(self.portfolios)}")
        return self.portfolios[key]

    @cached_property
    def comparison(self) -> Comparison:
        """The primary verdicts and the exploratory tests (:class:`~kallos.report.results.Comparison`).

        Raises
        ------
        ValueError
            When the study ran without statistics (``run_study(..., statistics=False)``).
        """
        if self.statistics is None:
            raise ValueError("this study ran without statistics: no comparison (run it with statistics on)")
        return Comparison.from_statistics(self.statistics)

    def verdict(self, a: str | Variant, b: str | Variant) -> Verdict:
        """``self.comparison.verdict(a, b)``: the primary verdict of ``a`` against ``b``."""
        return self.comparison.verdict(a, b)

    def summary(self) -> pd.DataFrame:
        """Headline net metrics, one row per variant (:meth:`PortfolioResult.summary`)."""
        return pd.DataFrame([p.summary() for p in self.portfolios.values()])

    def to_results(
        self,
        run: dict[str, Any] | None = None,
        coverage: pd.DataFrame | None = None,
        database: str = "none",
    ) -> dict[str, Any]:
        """The ``results.json`` document (:func:`build_results`); without a store by default.

        ``run`` defaults to an unsaved run (``run_id`` ``"unsaved"``, this Kallos version, the config
        hash); ``coverage`` to no source rows.
        """
        if run is None:
            from kallos import __version__

            run = {
                "run_id": "unsaved",
                "kallos_version": __version__,
                "created_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
                "config_hash": self.config.config_hash(),
            }
        if coverage is None:
            coverage = pd.DataFrame(columns=["source", "coin_id", "first", "last", "rows"])
        return build_results(self, run, coverage, database)

    def to_html(self, path: Path | str, *, assets: str | None = None) -> Path:
        """Write the study's HTML report to ``path`` with no database; returns the path.

        ``assets`` is ``"inline"`` (one offline file) or ``"shared"`` (plotly.js in a file beside it);
        default: the configuration's ``report.assets``.
        The results document is validated against the results schema first.

        Raises
        ------
        ResultsSchemaError
            If the results document does not match the schema (names the JSON path).
        """
        return write_study_report(Path(path), self.to_results(), self, assets=assets)

    def _repr_html_(self) -> str:
        cfg = self.config
        head = (
            f"<p><b>Kallos study</b>, {cfg.backtest.start} to {cfg.backtest.end}: "
            f"{len(self.portfolios)} variants, {self.panel_coins} coins in the panel.</p>"
        )
        table = self.summary().to_html(float_format="%.3f")
        verdicts = self.comparison.as_html() if self.statistics is not None else ""
        return f"<div>{head}{table}{verdicts}</div>"


def jsonable(value: Any) -> Any:
    """Recursively convert to JSON types: NaN/inf -> None, timestamps -> ISO dates."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NaT:
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return jsonable(frame.to_dict(orient="records"))


def _period(index: pd.Index) -> dict[str, Any]:
    if len(index) == 0:
        return {"start": None, "end": None, "n_days": 0}
    return {"start": index[0], "end": index[-1], "n_days": len(index)}


def build_results(
    result: StudyResult,
    run: dict[str, Any],
    coverage: pd.DataFrame,
    database: str,
    *,
    model_artifacts: dict[str, Any] | None = None,
) -> dict:
    """The ``results.json`` document, with top-level keys :data:`RESULT_KEYS`.

    With ``backtest.compare_cost_bps`` every ``strategies[key]`` gains ``metrics_net_compare``
    (``{"cost_bps": x, **metrics}``, from :attr:`StudyResult.metrics_net_compare`); a run of the
    preset ``original`` gains ``published`` (:func:`kallos.report.published.published_doc`).

    Parameters
    ----------
    run : run_id, kallos_version, created_at, config_hash.
    coverage : per source and coin: first, last, rows (from the store).
    database : the database URL without password.
    """
    cfg = result.config
    start, end = pd.Timestamp(cfg.backtest.start), pd.Timestamp(cfg.backtest.end)
    universe = []
    for month, g in result.universe.groupby("month"):
        universe.append(
            {
                "month": month.strftime("%Y-%m"),
                "selection_date": g["selection_date"].iloc[0],
                "constituents": _records(g[["coin_id", "rank", "market_cap", "benchmark_weight"]]),
            }
        )
    strategies = {key: portfolio.to_results() for key, portfolio in result.portfolios.items()}
    trained = [j for j in result.jobs if j.state is not None]
    errors = [j.error for j in result.jobs if j.error]
    fc = result.forecasts
    doc = {
        "config": {
            **run,
            "data_hash": result.data_hash,
            # Where jobs ran ([compute]) never changes a result, so it is not part of it.
            "study": cfg.model_dump(mode="json", exclude={"compute"}),
        },
        "data": {
            "database": database,
            "sources": _records(coverage),
            "panel": {
                "start": result.panel_start,
                "end": result.panel_end,
                "n_coins": result.panel_coins,
                "universe_coins": sorted(result.universe["coin_id"].unique()),
            },
            "quality": {
                "summary": describe(result.quality_events),
                "events": _records(result.quality_events),
            },
            "universe": universe,
        },
        "strategies": strategies,
        "tests": {
            "alpha": cfg.evaluation.alpha,
            "correction": "holm",
            "period": _period(pd.date_range(start, end, freq="D")),
            "pairwise": _records(result.tests),
        },
        "forecasts": {
            "horizon": cfg.forecast.horizon,
            "forecasters": describe_forecasters(cfg.forecast.forecasters),
            "period": {"start": fc["as_of"].min(), "end": fc["as_of"].max()} if len(fc) else {},
            "baseline": result.forecast_evaluation.baseline if result.forecast_evaluation else "zero",
            "by_coin_quarter": _records(result.forecast_accuracy),
            "overall": _records(result.forecast_overall),
            "models": {
                "trained": len(trained),
                "registry": asdict(stats) if (stats := result.decided.registry_stats) else None,
                "folds": len(result.folds),
                "fold_cutoffs": [f.key for f in result.folds],
                "errors": errors,
                **({"artifacts": model_artifacts} if model_artifacts is not None else {}),
            },
        },
    }
    doc["universe"] = _universe_doc(result)
    if (ev := result.forecast_evaluation) is not None:
        doc["forecast_evaluation"] = {
            "baseline": ev.baseline,
            "baselines": list(ev.baselines),
            "test": "Diebold-Mariano with the Harvey-Leybourne-Newbold correction, squared-error loss, "
            "against each baseline; coin_id 'all' pools the coins' loss differentials per date",
            "dm_tests": _records(ev.dm_tests),
            "direction_test": "Pesaran-Timmermann (1992), one-sided; hac_* is the serial-correlation "
            "robust regression form (Pesaran-Timmermann 2009; Driscoll-Kraay when pooled)",
            "pt_tests": _records(ev.pt_tests),
            "decay": _records(ev.decay),
        }
    if result.calibration is not None:
        doc["calibration"] = result.calibration.to_results()
    if cfg.forecast.tuning.enabled:
        doc["tuning"] = tuning_doc(result)
    doc.update(_statistics_doc(result, doc["tests"]))
    out = jsonable(doc)
    if (published := published_doc(out)) is not None:  # the preset "original" only
        out["published"] = jsonable(published)
    return out


def tuning_doc(result: StudyResult) -> dict[str, Any]:
    """``results["tuning"]``: the budget, the space overrides and one record per tuned study.

    Each study: forecaster, coin_id, fold (cutoff), study (Optuna name), n_trials (stored, every
    state), states (count per state), chosen (the trial :func:`~kallos.forecast.tuning.choose_trial`
    picked: number, rmse, directional_accuracy and its parameters), pareto (every Pareto trial),
    training / network (the chosen parameters split between trainer and network).
    """
    t = result.config.forecast.tuning
    studies = [s.as_dict() for s in result.tuning]
    states: dict[str, int] = {}
    for s in studies:
        for state, n in s["states"].items():
            states[state] = states.get(state, 0) + n
    return {
        "n_trials": t.n_trials,
        "space": {k: list(v) for k, v in t.space.items()},
        "rule": "Pareto front of (validation RMSE, directional accuracy); among trials with directional "
        "accuracy >= 50% the lowest RMSE, else the lowest RMSE",
        "pruning": f"median rule after {t.pruning_fraction:.0%} of max_epochs, "
        f"from {t.pruning_startup_trials} completed trials",
        "states": states,
        "studies": studies,
    }


STATISTICS_KEYS = (
    "primary",
    "effects",
    "verdicts",
    "sharpe",
    "trials",
    "overfitting",
    "regimes",
    "quarters",
)
"""Top-level keys added by the statistics (:mod:`kallos.evaluation.battery`); ``verdicts`` are the
primary family's."""


def _statistics_doc(result: StudyResult, tests: dict) -> dict:
    """The statistics keys; ``tests`` gains ``family_size`` and ``bootstrap`` (its ``period`` kept)."""
    if result.statistics is None:
        return {}
    stats_doc = result.statistics.to_results()
    tests.update({k: v for k, v in stats_doc["tests"].items() if k != "period"})
    return {k: stats_doc[k] for k in STATISTICS_KEYS}


def _universe_doc(result: StudyResult) -> dict:
    """``results["universe"]``: method, per-coin market-cap sources, constituents, reconciliation."""
    u = result.config.universe
    recon = result.reconciliation
    if recon is None:
        recon = pd.DataFrame(columns=["coin_id", "month", "flagged"])
    doc = universe_summary(result.universe, u.method, u.top_n, recon, u.divergence_threshold)
    checks = result.decided.cmc_checks
    doc["cmc_check"] = {
        "mode": u.cmc_check,
        "max_disagreement": u.cmc_max_disagreement,
        "rule": "each eligible coin's market cap on the latest CoinMarketCap snapshot date at or before "
        "the selection date against the snapshot's; disagreement = max(a/b, b/a) - 1",
        "cases": _records(checks) if checks is not None else [],
    }
    return doc


def report_frames(result: StudyResult) -> ReportFrames:
    """Frames the HTML report draws from."""
    cfg = result.config
    start, end = pd.Timestamp(cfg.backtest.start), pd.Timestamp(cfg.backtest.end)
    net = pd.DataFrame({k: r.returns_net.loc[start:end] for k, r in result.backtests.items()})
    gross = pd.DataFrame({k: r.returns_gross.loc[start:end] for k, r in result.backtests.items()})
    turnover = pd.DataFrame({k: r.turnover for k, r in result.backtests.items()}).fillna(0.0)
    weights = result.weights[["strategy", "objective", "date", "coin_id", "weight"]]
    forecasts = result.forecasts[
        ["forecaster", "coin_id", "as_of", "horizon", "forecast", "realised", "fold_cutoff"]
    ]
    return ReportFrames(
        returns_net=net, returns_gross=gross, turnover=turnover, weights=weights, forecasts=forecasts
    )


def write_study_report(
    path: Path, results: dict[str, Any], result: StudyResult, *, assets: str | None = None
) -> Path:
    """Validate ``results`` (the study's ``results.json`` document) and write the HTML report of ``result``.

    Raises
    ------
    ResultsSchemaError
        If ``results`` does not match the schema (names the JSON path).
    """
    validate_results(results)
    return write_report(
        path, results, report_frames(result), forecast_evaluation=result.forecast_evaluation, assets=assets
    )
