"""Generic walk-forward driver: fit one forecaster per (coin, fold), predict the fold's dates.

Heavy forecasters (``parallel = True``) train in worker processes; each job is
self-contained and seeded, so results do not depend on ``n_jobs`` or completion order.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kallos.exceptions import InsufficientDataError
from kallos.forecast.base import BaseForecaster, CoinHistory
from kallos.forecast.walk_forward import Fold

__all__ = ["ForecastJob", "JobResult", "forecasts_frame", "run_jobs"]


@dataclass(frozen=True)
class ForecastJob:
    """Fit ``forecaster`` on ``history`` up to ``fold.cutoff`` and forecast at ``dates``.

    ``history`` must reach the last of ``dates``; the fit only ever sees
    ``history.upto(fold.cutoff)``.
    """

    forecaster: BaseForecaster
    fold: Fold
    history: CoinHistory
    dates: pd.DatetimeIndex

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.forecaster.name, self.history.coin_id, self.fold.key)


@dataclass(frozen=True)
class JobResult:
    """Forecasts of one job, the fitted model's state when it has one, or the error."""

    forecaster: str
    coin_id: str
    fold: Fold
    predictions: pd.Series
    state: tuple[dict[str, np.ndarray], dict[str, Any]] | None
    error: str | None = None


def run_job(job: ForecastJob) -> JobResult:
    """Fit and predict one job (module level so worker processes can run it)."""
    model = job.forecaster.clone()
    name, coin = model.name, job.history.coin_id
    try:
        model.fit(job.history.upto(job.fold.cutoff), job.fold)
    except InsufficientDataError as err:
        empty = pd.Series(np.nan, index=job.dates, name=name)
        return JobResult(name, coin, job.fold, empty, None, str(err))
    preds = model.predict(job.history.upto(job.dates.max()), job.dates)
    state = model.to_state() if hasattr(model, "to_state") else None
    return JobResult(name, coin, job.fold, preds, state)


def run_jobs(
    jobs: Sequence[ForecastJob],
    n_jobs: int = 1,
    on_done: Callable[[JobResult], None] | None = None,
) -> list[JobResult]:
    """Run every job; heavy ones in ``n_jobs`` spawned processes. Results in job order."""
    results: dict[int, JobResult] = {}
    heavy = [i for i, j in enumerate(jobs) if j.forecaster.parallel and n_jobs > 1]
    light = sorted(set(range(len(jobs))) - set(heavy))

    def finish(i: int, result: JobResult) -> None:
        results[i] = result
        if on_done:
            on_done(result)

    pool = ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context("spawn")) if heavy else None
    with pool or nullcontext():
        futures = {pool.submit(run_job, jobs[i]): i for i in heavy} if pool else {}
        for i in light:  # cheap jobs run here while the workers train
            finish(i, run_job(jobs[i]))
        for fut in as_completed(futures):
            finish(futures[fut], fut.result())
    return [results[i] for i in range(len(jobs))]


def forecasts_frame(results: Sequence[JobResult], horizon: int) -> pd.DataFrame:
    """Long frame: forecaster, coin_id, as_of, horizon, forecast, fold_cutoff (NaN forecasts dropped)."""
    frames = []
    for r in results:
        s = r.predictions.dropna()
        if s.empty:
            continue
        frames.append(
            pd.DataFrame(
                {
                    "forecaster": r.forecaster,
                    "coin_id": r.coin_id,
                    "as_of": s.index,
                    "horizon": horizon,
                    "forecast": s.to_numpy(),
                    "fold_cutoff": r.fold.cutoff,
                }
            )
        )
    cols = ["forecaster", "coin_id", "as_of", "horizon", "forecast", "fold_cutoff"]
    if not frames:
        return pd.DataFrame(columns=cols)
    out = pd.concat(frames, ignore_index=True)[cols]
    return out.sort_values(["forecaster", "coin_id", "as_of"], ignore_index=True)
