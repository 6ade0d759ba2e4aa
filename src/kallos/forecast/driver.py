"""Generic walk-forward driver: fit one forecaster per (coin, fold), predict the fold's dates.

Heavy forecasters (``parallel = True``) train on an execution engine (:mod:`kallos.compute`:
Dask workers, or this process). Forecasters that can be
trained together (a ``stack_key`` attribute and a ``fit_stack`` method, e.g. every neural job
of one fold: all coins) are grouped by (``stack_key``, fold) and trained as one stacked
computation (:func:`kallos.forecast.training.train_stack`); groups hold at most ``MAX_STACK`` models.
Grouping depends only on the job list, and each model's random draws only on its own seed,
so results do not depend on the engine, its worker count or completion order: two runs are
byte-identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kallos.compute import Engine, InProcessEngine
from kallos.exceptions import InsufficientDataError
from kallos.forecast.base import BaseForecaster, CoinHistory
from kallos.forecast.walk_forward import Fold

__all__ = ["MAX_STACK", "ForecastJob", "JobResult", "forecasts_frame", "run_jobs"]

#: Most models trained in one stack (bounds the padded training tensors' memory).
MAX_STACK = 64


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


def _failed(job: ForecastJob, name: str, err: Exception) -> JobResult:
    empty = pd.Series(np.nan, index=job.dates, name=name)
    return JobResult(name, job.history.coin_id, job.fold, empty, None, str(err))


def _finish(job: ForecastJob, model: BaseForecaster) -> JobResult:
    preds = model.predict(job.history.upto(job.dates.max()), job.dates)
    state = model.to_state() if hasattr(model, "to_state") else None
    return JobResult(model.name, job.history.coin_id, job.fold, preds, state)


def run_job(job: ForecastJob) -> JobResult:
    """Fit and predict one job (module level so worker processes can run it)."""
    model = job.forecaster.clone()
    try:
        model.fit(job.history.upto(job.fold.cutoff), job.fold)
    except InsufficientDataError as err:
        return _failed(job, model.name, err)
    return _finish(job, model)


def run_stack(jobs: Sequence[ForecastJob]) -> list[JobResult]:
    """Fit the jobs of one (``stack_key``, fold) group as one stacked computation, then predict each.

    Every model equals its lone :func:`run_job` fit up to float32 rounding of the stacked
    matmuls (see :mod:`kallos.forecast.training`); a one-job group is exactly :func:`run_job`.
    """
    if len(jobs) == 1:
        return [run_job(jobs[0])]
    models = [job.forecaster.clone() for job in jobs]
    errors = models[0].fit_stack(
        models, [j.history.upto(j.fold.cutoff) for j in jobs], [j.fold for j in jobs]
    )
    return [
        _failed(job, model.name, err) if err is not None else _finish(job, model)
        for job, model, err in zip(jobs, models, errors, strict=True)
    ]


def _tasks(jobs: Sequence[ForecastJob], indices: Sequence[int]) -> list[list[int]]:
    """Job indices grouped by (``stack_key``, fold) in first-seen order, at most ``MAX_STACK`` each."""
    groups: dict[Any, list[list[int]]] = {}
    for i in indices:
        key = getattr(jobs[i].forecaster, "stack_key", None)
        if key is None:
            groups[("single", i)] = [[i]]
            continue
        chunks = groups.setdefault((key, jobs[i].fold.key), [[]])
        if len(chunks[-1]) == MAX_STACK:
            chunks.append([])
        chunks[-1].append(i)
    return [chunk for chunks in groups.values() for chunk in chunks]


def run_jobs(
    jobs: Sequence[ForecastJob],
    engine: Engine | None = None,
    on_done: Callable[[JobResult], None] | None = None,
) -> list[JobResult]:
    """Run every job: cheap ones here, heavy ones (stacked per fold) on ``engine``.

    Parameters
    ----------
    engine : where the heavy jobs run (default: this process, :class:`InProcessEngine`).
    on_done : called once per job as it finishes.

    Returns
    -------
    The results in job order.
    """
    engine = engine or InProcessEngine()
    results: dict[int, JobResult] = {}
    heavy = [i for i, j in enumerate(jobs) if j.forecaster.parallel]
    light = sorted(set(range(len(jobs))) - set(heavy))
    tasks = _tasks(jobs, heavy)

    def finish(indices: Sequence[int], task_results: Sequence[JobResult]) -> None:
        for i, result in zip(indices, task_results, strict=True):
            results[i] = result
            if on_done:
                on_done(result)

    for i in light:
        finish([i], [run_job(jobs[i])])
    for t, task_results in engine.map_unordered(run_stack, [[jobs[i] for i in t] for t in tasks]):
        finish(tasks[t], task_results)
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
