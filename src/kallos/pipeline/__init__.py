"""The whole study, end to end: import if needed, clean, forecast, optimise, backtest, report."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from kallos.compute import DaskEngine, Engine, is_remote
from kallos.config import StudyConfig
from kallos.data import Store, ingest_data_dir, load_panel, resolve_data_dir, schema
from kallos.data.ingest import IngestReport
from kallos.data.locks import store_lock
from kallos.evaluation.battery import TrialCount
from kallos.exceptions import ConfigError, StoreError
from kallos.forecast.model_store import ModelRegistry
from kallos.forecast.tuned import TuningStorage
from kallos.forecast.tuning import count_trials
from kallos.pipeline.persist import persist_study
from kallos.pipeline.progress import NullProgress, Progress
from kallos.pipeline.study import Compute, StudyResult, run_study
from kallos.report.files import check_writable

__all__ = [
    "Compute",
    "RunOutcome",
    "StudyResult",
    "check_scheduler",
    "execute_study",
    "prior_trials",
    "run_study",
]


@dataclass(frozen=True)
class RunOutcome:
    run_dir: Path
    result: StudyResult
    ingested: IngestReport | None
    wall_seconds: float


def prior_trials(store: Store, data_hash: str, config: StudyConfig) -> TrialCount:
    """What the deflated Sharpe ratio counts besides this study: tuning trials and earlier configurations.

    Every stored Optuna trial counts (:func:`kallos.forecast.tuning.count_trials`), and so does
    every forecast-driven variant (forecaster × objective) of each *other* study configuration
    already run on the same data (``runs`` rows with this ``data_hash`` and another
    ``config_hash``): each was a look at the same returns.
    """
    runs = store.read_table(schema.runs, where=schema.runs.c.data_hash == data_hash)
    others = runs[runs["config_hash"] != config.config_hash()].drop_duplicates("config_hash")
    variants = 0
    for stored in others["config"]:
        forecast, portfolio = (stored or {}).get("forecast", {}), (stored or {}).get("portfolio", {})
        variants += len(forecast.get("forecasters", ())) * len(portfolio.get("objectives", ()))
    return TrialCount(
        tuning=count_trials(store.url, store.schema_name),
        prior_configurations=len(others),
        prior_variants=variants,
    )


def check_scheduler(scheduler: str, store: Store) -> None:
    """Refuse a remote (``tcp://``) scheduler with an embedded SQLite store, before any work.

    Raises
    ------
    ConfigError
        Workers on other machines cannot share a SQLite file: the Optuna studies and the model
        registry need PostgreSQL (``--database-url postgresql://...``).
    """
    if is_remote(scheduler) and store.dialect == "sqlite":
        raise ConfigError(
            f"compute.scheduler={scheduler} with {store.description}: workers on other machines "
            "cannot share a SQLite file; pass --database-url postgresql://USER@HOST/DB (or "
            "$KALLOS_DATABASE_URL), or use --scheduler local"
        )


@contextmanager
def tuning_lock(store: Store, config: StudyConfig) -> Iterator[None]:
    """Held by a tuned run for its configuration: a second one against the same store refuses.

    Raises
    ------
    StoreError
        When another ``kallos run --tune`` of the same configuration holds the lock.
    """
    with ExitStack() as stack:
        if config.forecast.tuning.enabled:
            config_hash = config.config_hash()
            try:
                stack.enter_context(store_lock(store, f"tune-{config_hash}", "run", timeout=0))
            except StoreError:
                raise StoreError(
                    f"another `kallos run --tune` of this configuration (config hash {config_hash}) is "
                    f"running against {store.description}; wait for it to finish (this run would then "
                    "reuse its stored trials and models) or stop it first"
                ) from None
        yield


def execute_study(
    config: StudyConfig,
    store: Store,
    out_root: Path,
    data_dir: str | Path | None = None,
    progress: Progress | None = None,
    map_fn=map,
    engine: Engine | None = None,
) -> RunOutcome:
    """Run the study against ``store`` and write ``out_root/<run-id>/``.

    If the store holds no market data yet, the exports in ``data_dir`` (or
    ``$KALLOS_DATA_DIR``) are imported first. ``map_fn`` runs the calibration replications
    (see :func:`run_study`). ``engine`` runs the training and tuning jobs (default: this
    process); with ``forecast.tuning.enabled`` the Optuna studies live in ``store``, and a
    second tuned run of the same configuration against it refuses to start.

    Raises
    ------
    KallosError
        Subclasses name what is wrong: a remote scheduler with SQLite, an unwritable
        ``out_root`` or artifact directory (checked first), a missing data directory,
        malformed files, data not covering the test period, a tuned run already running.
    """
    progress = progress or NullProgress()
    t0 = time.perf_counter()
    if engine is not None:
        check_scheduler(engine.name, store)
    check_writable(out_root)  # fail now, not after the study has run
    with tuning_lock(store, config):  # a second tuned run of this config refuses before any work
        directory = resolve_data_dir(data_dir) if store.is_empty() else None
        store.create_schema()
        ingested = None
        if directory is not None:
            with progress.stage(f"Importing {directory}", total=None):
                ingested = ingest_data_dir(store, directory)
        with progress.stage("Cleaning data", total=None):
            panel = load_panel(store=store, quality=config.quality)
        # Stored tuning trials and earlier configurations on the same data count towards the DSR.
        trials = prior_trials(store, panel.data_hash(), config)
        registry = ModelRegistry.for_store(store, out_root, config.compute.artifact_dir)
        if isinstance(engine, DaskEngine):
            engine.check_writable(str(registry.root))
        tuning = TuningStorage(store.url, store.schema_name) if config.forecast.tuning.enabled else None
        result = run_study(
            panel,
            config,
            progress,
            registry=registry,
            trials=trials,
            map_fn=map_fn,
            compute=Compute(engine, tuning),
        )
    with progress.stage("Writing report", total=None):
        run_dir = persist_study(result, store, out_root, wall_seconds=time.perf_counter() - t0)
    return RunOutcome(run_dir, result, ingested, time.perf_counter() - t0)
