"""Persist a finished study: the run directory and the database rows, all or nothing.

Files are written into a hidden ``.<run-id>.partial`` directory; the database rows go in
one transaction; only then is the directory renamed to ``<run-id>`` (an atomic rename).
A failure anywhere removes the partial directory and leaves the database untouched.

The run directory holds no model files. Every fitted model the study used is stored once, by
content, in the model registry's artifact directory (where the registry already put the ones it
trained or served; :meth:`kallos.forecast.model_store.ModelRegistry.store_state`), and the run
references them in ``models.json`` (:func:`kallos.data.artifacts.write_models_manifest`).
Artifacts are stored before the run directory appears: a failed run may leave models in the
registry's directory (content-addressed, reused by later runs), never a run half-written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
from pathlib import Path

import pandas as pd

from kallos import __version__
from kallos.data import schema
from kallos.data.artifacts import MANIFEST, ModelReference, write_models_manifest
from kallos.data.store import Store
from kallos.forecast.model_store import ModelRegistry
from kallos.pipeline.results import build_results, report_frames
from kallos.pipeline.study import StudyResult
from kallos.report.outputs import write_outputs

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


def _store_models(result: StudyResult, registry: ModelRegistry) -> list[ModelReference]:
    """Store every fitted model of ``result`` in ``registry``'s artifact directory; their references."""
    return [
        ModelReference(job.forecaster, job.coin_id, job.fold.key, registry.store_state(*job.state))
        for job in result.jobs
        if job.state is not None
    ]


def _artifacts_doc(root: Path | None, models: list[ModelReference], manifest: Path) -> dict:
    """``results["forecasts"]["models"]["artifacts"]``: where the run's models are, in summary."""
    return {
        "manifest": MANIFEST,
        "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
        "artifact_dir": None if root is None else str(root),
        "n_models": len(models),
        "bytes": sum(sum(m.artifact.n_bytes.values()) for m in models),
    }


def persist_study(
    result: StudyResult,
    store: Store,
    out_root: Path,
    *,
    wall_seconds: float,
    now: dt.datetime | None = None,
    tearsheets: bool = True,
    registry: ModelRegistry | None = None,
) -> Path:
    """Write the run directory and database rows; return the run directory.

    Layout of ``<out_root>/<run-id>/``: ``results.json``, ``report.html``,
    ``weights.parquet``, ``returns.parquet``, ``forecasts.parquet``, ``decisions.parquet``,
    ``universe.parquet``, ``quality_events.parquet``, ``tearsheets/<key>.html`` (QuantStats, one
    per variant against ``market_cap``; skipped with ``tearsheets=False``) and ``models.json``:
    one reference per fitted model (forecaster, coin, fold, the sha256 of its files and their
    path in ``registry``'s artifact directory; no model file is copied into the run).

    ``registry`` (default: ``store``'s, :meth:`ModelRegistry.for_store` with ``out_root``) holds
    the models; those the study fitted without a registry are stored in it here, without a
    registry row. Nothing is stored, and the store's settings are untouched, when no model was fitted.
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
        models: list[ModelReference] = []
        root = None
        if any(job.state is not None for job in result.jobs):
            if registry is None:
                registry = ModelRegistry.for_store(store, out_root)
            root = registry.root.resolve()
            models = _store_models(result, registry)
        manifest = write_models_manifest(partial, root, models)
        database = store.engine.url.render_as_string(hide_password=True)
        results = build_results(
            result, run, store.coverage(), database, model_artifacts=_artifacts_doc(root, models, manifest)
        )
        returns = _returns_long(result)
        tables = {
            "weights": result.weights,
            "returns": returns,
            "forecasts": result.forecasts,
            "decisions": result.decisions,
            "universe": result.universe,
            "quality_events": result.quality_events,
        }
        write_outputs(
            partial,
            results,
            report_frames(result),
            tables,
            tearsheets=tearsheets,
            forecast_evaluation=result.forecast_evaluation,
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
