"""The tuned walk-forward (``kallos run --tune``): every neural job tuned inside its own training window.

For each (forecaster, coin, fold) job of a tunable forecaster (one with a search space, see
:func:`kallos.forecast.tuning.tunable`):

1. an Optuna study runs ``forecast.tuning.n_trials`` trials on the fold's training window only
   (:class:`~kallos.forecast.tuning.TuningObjective`: fit on the training block, score on the
   last 13 weeks before the purge gap; the test quarter is never seen), pruned by the median
   rule;
2. :func:`~kallos.forecast.tuning.choose_trial` picks one Pareto trial (lowest validation RMSE
   among those with directional accuracy >= 50 %);
3. the job's forecaster is rebuilt with that trial's parameters and fitted as every walk-forward
   model is (early stopping on the validation block, then ``forecast.refit`` if set), through
   the model registry.

Studies run as tasks on an execution engine (:mod:`kallos.compute`), one task per study; trials
are stored in the Kallos database (:func:`~kallos.forecast.tuning.optuna_storage`) as they
finish, so every worker, machine and later run sees them.

Budgets nest. The study name leaves out the budget, so a run with 50 trials extends the study of a
run with 10, and a 10-trial run uses only a study's first 10 counted trials: the Pareto front and
the choice are computed over the budget's trials (:func:`pareto_front`).

Determinism and resume. Trial ``k`` of a study (``k`` = trials already run, not counting
interrupted ones) samples with a TPE sampler seeded by ``(job seed, k)`` over the trials before
it, and each fit is seeded: a study's trials do not depend on which worker ran them, or on an
interruption. A run killed mid-search leaves its running trial ``RUNNING``; the next run marks
it ``FAIL`` with user attribute ``interrupted`` (kept, and counted for the deflated Sharpe
ratio, but not towards the budget) and runs trial ``k`` again. Completed trials come from the
storage, finished models from the registry, so the final forecasts equal an uninterrupted
run's (tested). A task also records its run's token on the study and stops at the next trial
if another run has taken the study over (a worker orphaned by a killed run).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.trial import TrialState

from kallos.compute import Engine, InProcessEngine
from kallos.config import ForecastConfig, StudyConfig, TrainingConfig
from kallos.exceptions import ConfigError, InsufficientDataError
from kallos.forecast.driver import ForecastJob
from kallos.forecast.registry import FORECASTERS, spec, stable_seed
from kallos.forecast.tuning import (
    TrainingSpace,
    TuningObjective,
    choose_trial,
    optuna_storage,
    study_name,
    tunable,
)

__all__ = [
    "StudySummary",
    "TrialCounter",
    "TuningStorage",
    "TuningTask",
    "check_space",
    "pareto_front",
    "run_tuning",
    "study_names",
    "total_budget",
    "tune_jobs",
    "tuned_job",
    "tuned_study_name",
]

INTERRUPTED = "interrupted"
OWNER = "kallos_run"
TRAINING_KEYS = frozenset(f.name for f in TrainingSpace.__dataclass_fields__.values())


@dataclass(frozen=True)
class TuningStorage:
    """Where the Optuna studies live: the Kallos database (``url``, PostgreSQL ``schema_name``)."""

    url: str
    schema_name: str | None = None

    def open(self) -> optuna.storages.RDBStorage:
        return optuna_storage(self.url, self.schema_name)


@dataclass(frozen=True)
class TuningTask:
    """One study: tune ``job``'s forecaster on its fold (picklable, runs on a worker)."""

    job: ForecastJob
    model: str
    config: ForecastConfig
    storage: TuningStorage
    study: str
    seed: int
    device: str
    run_token: str


@dataclass(frozen=True)
class StudySummary:
    """What a study found: trial counts per state, its Pareto front and the chosen trial.

    ``training`` and ``network`` split the chosen parameters into the trainer's
    (:class:`~kallos.config.TrainingConfig` fields) and the network plug-in's settings.
    """

    forecaster: str
    coin_id: str
    fold: str
    study: str
    n_trials: int
    states: dict[str, int]
    chosen: dict[str, Any]
    pareto: list[dict[str, Any]] = field(repr=False)
    training: dict[str, Any] = field(default_factory=dict)
    network: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_space(config: ForecastConfig) -> None:
    """Raise :class:`ConfigError` for a ``forecast.tuning.space`` key no tuned forecaster has."""
    known = set(TRAINING_KEYS)
    for name in config.forecasters:
        s = FORECASTERS.get(name)
        if s is not None and s.search_space is not None:
            known |= set(s.settings.model_fields)
    unknown = sorted(set(config.tuning.space) - known)
    if unknown:
        raise ConfigError(
            f"forecast.tuning.space: unknown parameter(s) {unknown}; tunable here: {sorted(known)}"
        )


def _row(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return {"number": t.number, "rmse": t.values[0], "directional_accuracy": t.values[1], **t.params}


def _counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that count towards the budget: every finished trial except interrupted ones."""
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state != TrialState.RUNNING and not t.user_attrs.get(INTERRUPTED)
    ]


def _mark_interrupted(storage: optuna.storages.BaseStorage, name: str) -> None:
    """Mark trials left RUNNING by a killed run as FAIL (``interrupted``); see the module docstring."""
    study_id = storage.get_study_id_from_name(name)
    for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_user_attr(trial_id, INTERRUPTED, True)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)


def run_tuning(task: TuningTask) -> StudySummary:
    """Run the study of ``task`` to its budget (resuming what is stored) and summarise it.

    Module level so Dask workers can import it.

    Raises
    ------
    DataValidationError
        If the job's history reaches into the test quarter (it never does from :func:`tune_jobs`).
    InsufficientDataError
        If no trial completed (e.g. too little training data); the job is then fitted untuned.
    """
    job = task.job
    storage = task.storage.open()
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar reports the trials
    try:
        study = optuna.create_study(
            study_name=task.study, storage=storage, directions=["minimize", "maximize"], load_if_exists=True
        )
        study.set_user_attr(OWNER, task.run_token)
        _mark_interrupted(storage, task.study)
        objective = TuningObjective(
            job.history.upto(job.fold.cutoff),
            job.fold,
            task.config,
            model=task.model,
            seed=task.seed,
            device=task.device,
        )
        while (k := len(_counted(study))) < task.config.tuning.n_trials:
            if study.user_attrs.get(OWNER) != task.run_token:
                break  # another run took this study over
            study.sampler = optuna.samplers.TPESampler(seed=stable_seed(task.seed, "trial", k))
            study.optimize(objective, n_trials=1, catch=(InsufficientDataError, RuntimeError, ValueError))
        trials = study.get_trials(deepcopy=False)
        states: dict[str, int] = {}
        for t in trials:
            states[t.state.name] = states.get(t.state.name, 0) + 1
        budget = sorted(_counted(study), key=lambda t: t.number)[: task.config.tuning.n_trials]
        front = pareto_front([t for t in budget if t.state == TrialState.COMPLETE])
        if not front:
            raise InsufficientDataError(f"study {task.study}: no trial completed ({states})")
        chosen = choose_trial(front)
        params = dict(chosen.params)
        return StudySummary(
            forecaster=job.forecaster.name,
            coin_id=job.history.coin_id,
            fold=job.fold.key,
            study=task.study,
            n_trials=len(trials),
            states=states,
            chosen=_row(chosen),
            pareto=[_row(t) for t in front],
            training={k: v for k, v in params.items() if k in TRAINING_KEYS},
            network={k: v for k, v in params.items() if k not in TRAINING_KEYS},
        )
    finally:
        optuna.logging.set_verbosity(verbosity)
        storage.engine.dispose()


def pareto_front(trials: Sequence[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """The complete trials no other dominates on (lower validation RMSE, higher directional accuracy).

    ``a`` dominates ``b`` when it is no worse on both and better on one. Sorted by trial number.
    Only the trials within the budget are passed, so a study extended to a larger budget does
    not change a smaller budget's choice.
    """

    def dominates(a: optuna.trial.FrozenTrial, b: optuna.trial.FrozenTrial) -> bool:
        (ra, da), (rb, db) = a.values, b.values
        return ra <= rb and da >= db and (ra < rb or da > db)

    front = [t for t in trials if not any(dominates(o, t) for o in trials if o is not t)]
    return sorted(front, key=lambda t: t.number)


def _job_seed(job: ForecastJob) -> int:
    return int(getattr(job.forecaster, "seed", 0))


def tuned_study_name(job: ForecastJob, config: ForecastConfig) -> str:
    """The study of ``job``: :func:`~kallos.forecast.tuning.study_name` plus the job's seed."""
    return f"{study_name(job.history.coin_id, job.fold, config, job.forecaster.name)}-s{_job_seed(job)}"


def tuned_job(job: ForecastJob, summary: StudySummary, config: ForecastConfig, device: str) -> ForecastJob:
    """``job`` with its forecaster rebuilt from the chosen trial's parameters (same seed, fold, dates)."""
    training = TrainingConfig.model_validate({**config.training.model_dump(), **summary.training})
    cfg = config.model_copy(update={"training": training})
    forecaster = spec(job.forecaster.name).make(cfg, _job_seed(job), device, overrides=summary.network)
    return replace(job, forecaster=forecaster)


class TrialCounter:
    """Counts the trials of some studies per state, read from the storage (for a progress bar).

    ``done`` counts finished trials that are not interrupted (the budget's unit).
    """

    def __init__(self, storage: TuningStorage, studies: Sequence[str]) -> None:
        self.rdb = storage.open()
        self.studies = list(studies)

    def counts(self) -> dict[str, int]:
        counts = {"done": 0, "COMPLETE": 0, "PRUNED": 0, "FAIL": 0, "RUNNING": 0}
        for name in self.studies:
            try:
                study_id = self.rdb.get_study_id_from_name(name)
                trials = self.rdb.get_all_trials(study_id, deepcopy=False)
            except (KeyError, sa.exc.SQLAlchemyError):
                continue  # not created yet, or a read that lost a race with a writer
            for t in trials:
                counts[t.state.name] = counts.get(t.state.name, 0) + 1
                if t.state != TrialState.RUNNING and not t.user_attrs.get(INTERRUPTED):
                    counts["done"] += 1
        return counts

    def close(self) -> None:
        self.rdb.engine.dispose()


def tune_jobs(
    jobs: Sequence[ForecastJob],
    config: StudyConfig,
    storage: TuningStorage,
    engine: Engine | None = None,
    on_study: Callable[[StudySummary], None] | None = None,
) -> tuple[list[ForecastJob], list[StudySummary]]:
    """Tune every job of a tunable forecaster on ``engine``; return the jobs to fit and the summaries.

    Jobs of untunable forecasters (the baselines) are returned unchanged; a study with no
    completed trial (too little data) leaves its job untuned (its fit then reports why).
    Summaries are in job order.
    """
    engine = engine or InProcessEngine()
    names = set(tunable())
    run_token = uuid.uuid4().hex
    picked = [i for i, j in enumerate(jobs) if j.forecaster.name in names]
    tasks = [
        TuningTask(
            job=jobs[i],
            model=jobs[i].forecaster.name,
            config=config.forecast,
            storage=storage,
            study=tuned_study_name(jobs[i], config.forecast),
            seed=_job_seed(jobs[i]),
            device=config.device,
            run_token=run_token,
        )
        for i in picked
    ]
    if tasks:
        storage.open().engine.dispose()  # Optuna's tables exist before the workers start
    out = list(jobs)
    summaries: dict[int, StudySummary] = {}
    for t, summary in engine.map_unordered(_tune_or_none, tasks):
        if summary is None:
            continue
        i = picked[t]
        summaries[i] = summary
        out[i] = tuned_job(jobs[i], summary, config.forecast, config.device)
        if on_study:
            on_study(summary)
    return out, [summaries[i] for i in sorted(summaries)]


def _tune_or_none(task: TuningTask) -> StudySummary | None:
    try:
        return run_tuning(task)
    except InsufficientDataError:
        return None


def total_budget(jobs: Sequence[ForecastJob], config: ForecastConfig) -> int:
    """Trials the tuned jobs of ``jobs`` need in all (``n_trials`` per tunable job)."""
    names = set(tunable())
    return config.tuning.n_trials * sum(j.forecaster.name in names for j in jobs)


def study_names(jobs: Sequence[ForecastJob], config: ForecastConfig) -> list[str]:
    names = set(tunable())
    return [tuned_study_name(j, config) for j in jobs if j.forecaster.name in names]
