"""Persist a finished study: the run directory and the database rows, all or nothing.

Files are written into a hidden ``.<run-id>.partial`` directory; the database rows go in
one transaction; only then is the directory renamed to ``<run-id>`` (an atomic rename).
A failure anywhere removes the partial directory and leaves the database untouched.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pandas as pd

from kallos import __version__
from kallos.data import schema
from kallos.data.artifacts import save_model_state
from kallos.data.store import Store
from kallos.pipeline.results import build_results, report_frames
from kallos.pipeline.study import StudyResult
from kallos.report import write_outputs
from kallos.report.forecasts import forecast_section

__all__ = ["index_id", "make_run_id", "persist_study"]


def make_run_id(config_hash: str, now: dt.datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{config_hash[:8]}"


def index_id(result: StudyResult) -> str:
    u = result.config.universe
    return f"mcap_top{u.top_n}_cap{round(u.benchmark_max_weight * 100)}"


def _returns_long(result: StudyResult) -> pd.DataFrame:
    start = pd.Timestamp(result.config.backtest.start)
    frames = []
    for key, res in result.backtests.items():
        name, objective = result.variants[key]
        net = res.returns_net.loc[start:]
        # Turnover traded at the previous close, whose cost this day's net return bears.
        traded = res.turnover.copy()
        traded.index = traded.index + pd.Timedelta(days=1)
        frames.append(
            pd.DataFrame(
                {
                    "key": key,
                    "strategy": name,
                    "objective": objective or "none",
                    "date": net.index,
                    "return_gross": res.returns_gross.loc[net.index].to_numpy(),
                    "return_net": net.to_numpy(),
                    "turnover": traded.reindex(net.index, fill_value=0.0).to_numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _index_tables(result: StudyResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    idx = index_id(result)
    constituents = result.universe.rename(columns={"benchmark_weight": "weight"}).assign(index_id=idx)
    bench = result.backtests.get("market_cap")
    if bench is None:
        return constituents, pd.DataFrame(
            columns=["index_id", "date", "coin_id", "weight", "return", "contribution"]
        )
    start = pd.Timestamp(result.config.backtest.start)
    holdings = bench.holdings.loc[start:]
    # Coin returns on each day, as the engine used them (unknown = 0).
    coin_returns = result.coin_returns.reindex(index=holdings.index, columns=holdings.columns).fillna(0.0)
    long = holdings.stack().rename("weight").reset_index()
    long.columns = ["date", "coin_id", "weight"]
    long["return"] = coin_returns.stack().to_numpy()
    long = long[long["weight"] > 0]
    long["contribution"] = long["weight"] * long["return"]
    long["index_id"] = idx
    return constituents, long


def persist_study(
    result: StudyResult,
    store: Store,
    out_root: Path,
    *,
    wall_seconds: float,
    now: dt.datetime | None = None,
    tearsheets: bool = True,
) -> Path:
    """Write the run directory and database rows; return the run directory.

    Layout of ``<out_root>/<run-id>/``: ``results.json``, ``report.html``,
    ``weights.parquet``, ``returns.parquet``, ``forecasts.parquet``, ``decisions.parquet``,
    ``universe.parquet``, ``quality_events.parquet``, ``tearsheets/<key>.html`` (QuantStats, one
    per variant against ``market_cap``; skipped with ``tearsheets=False``) and
    ``models/<forecaster>/<coin>/<cutoff>`` (``.safetensors`` + ``.json`` per trained model).
    """
    now = now or dt.datetime.now(dt.UTC)
    config_hash = result.config.config_hash()
    run_id = make_run_id(config_hash, now)
    final = Path(out_root) / run_id
    partial = Path(out_root) / f".{run_id}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    run = {
        "run_id": run_id,
        "kallos_version": __version__,
        "created_at": now.isoformat(timespec="seconds"),
        "config_hash": config_hash,
    }
    try:
        for job in result.jobs:
            if job.state is not None:
                save_model_state(partial / "models" / job.forecaster / job.coin_id / job.fold.key, *job.state)
        database = store.engine.url.render_as_string(hide_password=True)
        results = build_results(result, run, store.coverage(), database)
        returns = _returns_long(result)
        tables = {
            "weights": result.weights,
            "returns": returns,
            "forecasts": result.forecasts,
            "decisions": result.decisions,
            "universe": result.universe,
            "quality_events": result.quality_events,
        }
        section = forecast_section(result.forecast_evaluation) if result.forecast_evaluation else None
        write_outputs(
            partial,
            results,
            report_frames(result),
            tables,
            tearsheets=tearsheets,
            forecast_evaluation_section=section,
        )
        constituents, contributions = _index_tables(result)
        events = result.quality_events.assign(run_id=run_id, event_id=range(len(result.quality_events)))
        store.write_run(
            {
                **run,
                "created_at": now,
                "data_hash": result.data_hash,
                "config": result.config.model_dump(mode="json"),
                "summary": {k: v["metrics_net"] for k, v in results["strategies"].items()},
                "output_dir": str(final.resolve()),
                "wall_seconds": wall_seconds,
            },
            {
                schema.portfolio_weights: result.weights.assign(run_id=run_id),
                schema.portfolio_daily_returns: returns.assign(run_id=run_id),
                schema.forecasts: result.forecasts.assign(run_id=run_id),
                schema.data_quality_events: events,
                schema.index_monthly_constituents: constituents,
                schema.daily_index_coin_contributions: contributions,
            },
        )
        os.replace(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final
