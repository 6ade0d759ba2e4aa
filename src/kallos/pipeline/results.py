"""Assemble the machine-readable ``results.json`` document and the report frames of a study."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from kallos.data.quality import describe
from kallos.data.universe import universe_summary
from kallos.forecast.registry import describe as describe_forecasters
from kallos.pipeline.study import StudyResult
from kallos.report import ReportFrames
from kallos.report.published import published_doc

__all__ = ["RESULT_KEYS", "build_results", "report_frames"]

RESULT_KEYS = ("config", "data", "strategies", "tests", "forecasts", "universe")


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


def build_results(result: StudyResult, run: dict[str, Any], coverage: pd.DataFrame, database: str) -> dict:
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
    strategies = {}
    for key, (name, objective) in result.variants.items():
        d = result.decisions[result.decisions["key"] == key]
        reasons = d.loc[d["fallback"], "objective_used"].value_counts()
        strategies[key] = {
            "strategy": name,
            "objective": objective,
            "period": _period(result.backtests[key].returns_net.loc[start:end].index),
            "metrics_net": result.metrics[key]["net"],
            "metrics_gross": result.metrics[key]["gross"],
            "fallbacks": {
                "count": int(d["fallback"].sum()),
                "rebalances": len(d),
                "by_reason": {f"fell back to {k}": int(v) for k, v in reasons.items()},
            },
            "missing_returns": result.backtests[key].missing_returns,
        }
        if result.metrics_net_compare is not None:
            strategies[key]["metrics_net_compare"] = {
                "cost_bps": cfg.backtest.compare_cost_bps,
                **result.metrics_net_compare[key],
            }
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
