"""Hyper-parameter search for any registered neural forecaster with Optuna, inside one training window.

The space is the trainer's (:class:`TrainingSpace`: λ, batch size, lookback, learning rate,
weight decay) plus the plug-in's own (its spec's ``search_space``, e.g. the recurrent hidden
size, layers and dropout, or the Transformer's width, heads and layers).

The search for a fold with cutoff ``T`` sees the coin's history up to the close of ``T`` only
(checked: a history reaching into the fold's test quarter raises). Each trial fits on the
fold's training block and is scored on its validation block, the last 13 weeks
(``forecast.validation_days``) of labelled dates before the purge gap (see
:mod:`kallos.forecast.walk_forward`). Early stopping watches the same block, as in the
walk-forward fits the tuned parameters are meant for.

Objectives (``directions=["minimize", "maximize"]``): validation RMSE of the ``h``-day forward
log-return forecast, and validation directional accuracy (share of dates where
``sign(forecast) == sign(realised)``).

Choosing one trial from the Pareto front (:func:`choose_trial`): among the Pareto-optimal
complete trials whose directional accuracy is at least 50 %, the one with the lowest RMSE;
if none reaches 50 %, the Pareto trial with the lowest RMSE. Ties go to the lower trial number.

Pruning. Optuna's ``Trial.report``/``Trial.should_prune`` raise ``NotImplementedError`` in
multi-objective studies (optuna/optuna#2135, #3450), so :class:`MedianRulePruner` applies the
median stopping rule of Optuna's ``MedianPruner`` (Golovin et al. 2017, "Google Vizier",
KDD) by hand: after ``pruning_fraction`` of ``max_epochs`` the trial's validation RMSE is
compared with the median of the values that completed trials recorded at the same epoch
(stored as trial user attributes, so every worker sharing the study sees them); a worse value
raises :class:`optuna.TrialPruned`. The intermediate value comes from a fit stopped after
that many epochs: fits are seeded and deterministic, so it is exactly the state the full fit
passes through; a surviving trial is then refitted in full (the check costs that share of a
fit; a pruned trial saves the rest).

Storage and distribution. Studies live in the Kallos database through
:class:`optuna.storages.RDBStorage`, in Optuna's own tables: on SQLite in the Kallos database
file itself, on PostgreSQL in the schema ``optuna`` of the Kallos database (or
``<schema>_optuna`` beside a Kallos test schema). Optuna versions its tables with Alembic's
default ``alembic_version`` table; Kallos' migrations use ``kallos_alembic_version``, so
the two never collide. The study name encodes model, coin, fold and a hash of the forecast
config, and studies are opened with ``load_if_exists=True``, so ``kallos tune`` started on
several machines with one database URL fills one study (Optuna's distributed mode). Every
trial (complete, pruned, failed) stays stored; :func:`count_trials` counts them all for the
deflated Sharpe ratio.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
import sqlalchemy as sa
from filelock import FileLock
from optuna.trial import FrozenTrial, TrialState

from kallos.config import ForecastConfig, TrainingConfig
from kallos.exceptions import ConfigError, DataValidationError, InsufficientDataError
from kallos.features.labels import forward_log_return
from kallos.forecast.base import BaseForecaster, CoinHistory, coin_history
from kallos.forecast.registry import FORECASTERS, spec
from kallos.forecast.spec import SearchSpace
from kallos.forecast.walk_forward import Fold

__all__ = [
    "BoundedTrial",
    "MedianRulePruner",
    "TrainingSpace",
    "TuningObjective",
    "TuningResult",
    "choose_trial",
    "coin_history",
    "count_trials",
    "optuna_storage",
    "study_name",
    "suggest_params",
    "tunable",
    "tune",
    "validation_scores",
]

OPTUNA_SCHEMA = "optuna"
_RMSE_AT = "validation_rmse_at_epoch_{}"


@dataclass(frozen=True)
class TrainingSpace:
    """The trainer's part of the space (keys are :class:`TrainingConfig` fields); bounds inclusive.

    Defaults: direction_weight (λ) U[1, 5]; batch_size in {32, 64, 128}; lookback int [30, 70]
    days; learning_rate log-U[1e-5, 1e-2]; weight_decay log-U[1e-6, 1e-2]. The network's part
    comes from the forecaster's spec (``ForecasterSpec.search_space``).
    """

    direction_weight: tuple[float, float] = (1.0, 5.0)
    batch_size: tuple[int, ...] = (32, 64, 128)
    lookback: tuple[int, int] = (30, 70)
    learning_rate: tuple[float, float] = (1e-5, 1e-2)
    weight_decay: tuple[float, float] = (1e-6, 1e-2)


class BoundedTrial:
    """An Optuna trial whose ``suggest_*`` calls take their bounds from ``space`` where it names them.

    ``space`` maps a parameter name to ``(low, high)`` for ``suggest_int``/``suggest_float`` or
    to the choices of ``suggest_categorical`` (config ``forecast.tuning.space``). Parameters it
    does not name keep the plug-in's bounds; everything else goes to the wrapped trial.

    Raises
    ------
    ConfigError
        When a numeric parameter's bounds are not two numbers ``low <= high``.
    """

    def __init__(self, trial: optuna.Trial, space: dict[str, Sequence[Any]]) -> None:
        self._trial, self._space = trial, space

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)

    def _bounds(self, name: str, low: Any, high: Any) -> tuple[Any, Any]:
        if name not in self._space:
            return low, high
        bounds = tuple(self._space[name])
        if len(bounds) != 2 or not all(isinstance(b, int | float) for b in bounds) or bounds[0] > bounds[1]:
            raise ConfigError(
                f"forecast.tuning.space.{name} = {list(bounds)}: give [low, high] with low <= high"
            )
        return bounds

    def suggest_int(self, name: str, low: int, high: int, **kwargs: Any) -> int:
        lo, hi = self._bounds(name, low, high)
        return self._trial.suggest_int(name, int(lo), int(hi), **kwargs)

    def suggest_float(self, name: str, low: float, high: float, **kwargs: Any) -> float:
        lo, hi = self._bounds(name, low, high)
        return self._trial.suggest_float(name, float(lo), float(hi), **kwargs)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._trial.suggest_categorical(name, list(self._space.get(name, choices)))


def tunable() -> list[str]:
    """Registered forecasters with a search space (``kallos tune --model``)."""
    return sorted(n for n, s in FORECASTERS.items() if s.search_space is not None)


def suggest_params(
    trial: optuna.Trial,
    model: str = "gru",
    space: TrainingSpace | None = None,
    network_space: SearchSpace | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sample one point: ``(trainer settings, network settings)`` for forecaster ``model``.

    ``network_space`` replaces the spec's own search space (e.g. a smaller one).

    Raises
    ------
    ConfigError
        If ``model`` has no search space and none is given.
    """
    s = space or TrainingSpace()
    network_space = network_space or spec(model).search_space
    if network_space is None:
        raise ConfigError(f"forecaster {model!r} has no search space; tunable: {tunable()}")
    training = {
        "direction_weight": trial.suggest_float("direction_weight", *s.direction_weight),
        "batch_size": trial.suggest_categorical("batch_size", list(s.batch_size)),
        "lookback": trial.suggest_int("lookback", *s.lookback),
        "learning_rate": trial.suggest_float("learning_rate", *s.learning_rate, log=True),
        "weight_decay": trial.suggest_float("weight_decay", *s.weight_decay, log=True),
    }
    return training, network_space(trial)


def validation_scores(model: BaseForecaster, history: CoinHistory, fold: Fold) -> tuple[float, float, int]:
    """Validation RMSE, directional accuracy and sample count of a fitted model.

    Scores the ``h``-day forward log-return forecasts at the fold's validation dates
    ``[validation_start, validation_end]`` against the realised labels (all ending by the cutoff).
    Dates without a forecast or label are dropped. RMSE is ``nan`` when none remain.
    """
    dates = history.close.loc[fold.validation_start : fold.validation_end].index
    label = forward_log_return(history.close, fold.horizon).reindex(dates)
    pred = model.predict(history.upto(fold.validation_end), dates)
    ok = np.isfinite(pred.to_numpy()) & np.isfinite(label.to_numpy())
    if not ok.any():
        return math.nan, math.nan, 0
    p, y = pred.to_numpy()[ok], label.to_numpy()[ok]
    rmse = float(np.sqrt(np.mean((y - p) ** 2)))
    da = float(np.mean(np.sign(p) == np.sign(y)))
    return rmse, da, int(ok.sum())


@dataclass(frozen=True)
class MedianRulePruner:
    """Median stopping rule for multi-objective studies (see the module docstring).

    Parameters
    ----------
    n_startup_trials : completed trials that must have recorded the checkpoint before pruning starts.
    fraction : share of ``max_epochs`` after which the check happens (one checkpoint).
    """

    n_startup_trials: int = 3
    fraction: float = 0.34

    def checkpoints(self, max_epochs: int) -> list[int]:
        """Epochs at which a trial is checked (empty when the fit is too short to check)."""
        epoch = max(1, round(max_epochs * self.fraction))
        return [epoch] if epoch < max_epochs else []

    def record(self, trial: optuna.Trial, epoch: int, value: float) -> None:
        trial.set_user_attr(_RMSE_AT.format(epoch), value)

    def should_prune(self, study: optuna.Study, epoch: int, value: float) -> bool:
        """True when ``value`` (validation RMSE at ``epoch``) exceeds the completed trials' median.

        A non-finite value (a diverged fit) is always pruned once the rule is active.
        """
        key = _RMSE_AT.format(epoch)
        seen = [
            t.user_attrs[key]
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if key in t.user_attrs and t.user_attrs[key] is not None and math.isfinite(t.user_attrs[key])
        ]
        if len(seen) < self.n_startup_trials:
            return False
        return not math.isfinite(value) or value > float(np.median(seen))


class TuningObjective:
    """The Optuna objective for one forecaster, coin and fold.

    ``trial -> (validation RMSE, directional accuracy)``.

    Raises
    ------
    DataValidationError
        At construction, if ``history`` reaches past ``fold.cutoff`` (the test quarter).
    ConfigError
        At construction, if ``model`` is not registered or has no search space.
    """

    def __init__(
        self,
        history: CoinHistory,
        fold: Fold,
        config: ForecastConfig,
        *,
        model: str = "gru",
        seed: int = 0,
        device: str = "cpu",
        pruner: MedianRulePruner | None = None,
        space: TrainingSpace | None = None,
        network_space: SearchSpace | None = None,
    ) -> None:
        if history.last_date > fold.cutoff:
            raise DataValidationError(
                f"{history.coin_id}: tuning history ends {history.last_date.date()}, inside the test "
                f"quarter of fold {fold.key}; pass history.upto(fold.cutoff)"
            )
        if fold.validation_end >= fold.test_start:
            raise DataValidationError(f"fold {fold.key}: validation block overlaps the test quarter")
        if network_space is None and model not in tunable():
            raise ConfigError(f"forecaster {model!r} cannot be tuned; tunable: {tunable()}")
        self.history, self.fold, self.config = history, fold, config
        self.model, self.seed, self.device, self.space = model, seed, device, space or TrainingSpace()
        self.network_space = network_space
        self.pruner = pruner or MedianRulePruner(
            config.tuning.pruning_startup_trials, config.tuning.pruning_fraction
        )

    def training_config(self, params: dict[str, Any]) -> TrainingConfig:
        """The base trainer settings with ``params`` replaced (validated)."""
        return TrainingConfig.model_validate({**self.config.training.model_dump(), **params})

    def forecaster(self, training: TrainingConfig, network: dict[str, Any] | None = None) -> BaseForecaster:
        """The forecaster of one trial: ``training`` and the network settings ``network`` (no refit:
        the trial is scored on the validation block)."""
        cfg = self.config.model_copy(update={"training": training, "refit": False})
        return spec(self.model).make(cfg, self.seed, self.device, overrides=network)

    def _score(
        self, training: TrainingConfig, network: dict[str, Any] | None = None
    ) -> tuple[float, float, int]:
        model = self.forecaster(training, network)
        model.fit(self.history, self.fold)
        assert self.history.last_date <= self.fold.cutoff  # the test quarter is never seen
        return validation_scores(model, self.history, self.fold)

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        bounded = BoundedTrial(trial, dict(self.config.tuning.space))
        training_params, network = suggest_params(bounded, self.model, self.space, self.network_space)
        cfg = self.training_config(training_params)
        for epoch in self.pruner.checkpoints(cfg.max_epochs):
            rmse, _, _ = self._score(cfg.model_copy(update={"max_epochs": epoch}), network)
            self.pruner.record(trial, epoch, rmse)
            if self.pruner.should_prune(trial.study, epoch, rmse):
                raise optuna.TrialPruned(f"validation RMSE {rmse:.5f} at epoch {epoch} above the median")
        rmse, da, n = self._score(cfg, network)
        trial.set_user_attr("n_validation", n)
        if not math.isfinite(rmse):
            raise InsufficientDataError(
                f"{self.history.coin_id}: no scorable validation date in {self.fold.key}"
            )
        return rmse, da


def choose_trial(trials: Sequence[FrozenTrial], min_directional_accuracy: float = 0.5) -> FrozenTrial:
    """Pick one trial from a Pareto front (see the module docstring for the rule).

    Parameters
    ----------
    trials : Pareto-optimal complete trials; ``values == [rmse, directional_accuracy]``.

    Raises
    ------
    ValueError
        If ``trials`` is empty.
    """
    if not trials:
        raise ValueError("no complete trial on the Pareto front; run more trials")
    good = [t for t in trials if t.values[1] >= min_directional_accuracy]
    pool = good or list(trials)
    return min(pool, key=lambda t: (t.values[0], t.number))


def _sqlalchemy_url(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def optuna_storage(database_url: str, schema_name: str | None = None) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage beside the Kallos database ``database_url`` (see the module docstring).

    Parameters
    ----------
    database_url : the Kallos SQLAlchemy URL (SQLite or PostgreSQL).
    schema_name : the Kallos PostgreSQL schema, if any; Optuna then uses ``<schema_name>_optuna``.

    Raises
    ------
    ValueError
        For a SQLite URL without a file (``:memory:`` cannot be shared).
    """
    url = _sqlalchemy_url(database_url)
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path in ("", ":memory:"):
            raise ValueError(f"{database_url}: Optuna studies need a file or server database")
        # Workers opening a new file together would race to create Optuna's tables: a file lock
        # serialises the creation; writers then wait up to a minute for each other's transactions.
        with FileLock(f"{path}.optuna.lock", timeout=120):
            return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    schema = f"{schema_name}_optuna" if schema_name else OPTUNA_SCHEMA
    engine = sa.create_engine(url)
    try:
        with engine.connect() as lock:
            # Workers starting together would race to create Optuna's tables (a duplicate
            # pg_type entry); one session-level advisory lock serialises the creation.
            key = {"k": f"kallos.optuna:{schema}"}
            lock.execute(sa.text("SELECT pg_advisory_lock(hashtext(:k))"), key)
            try:
                with engine.begin() as conn:
                    conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                return optuna.storages.RDBStorage(
                    url, engine_kwargs={"connect_args": {"options": f"-csearch_path={schema}"}}
                )
            finally:
                lock.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:k))"), key)
                lock.commit()
    finally:
        engine.dispose()


def study_name(coin_id: str, fold: Fold, config: ForecastConfig, model: str = "gru") -> str:
    """``tune-<model>-<coin>-<fold cutoff>-<12-hex hash of the forecast config>``.

    The trial budget (``tuning.n_trials``) and ``tuning.enabled`` are not hashed: a larger
    budget extends the same study (its first trials are the smaller budget's, see
    :mod:`kallos.forecast.tuned`).
    """
    settings = config.model_dump(mode="json", exclude={"tuning": {"n_trials", "enabled"}})
    blob = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return f"tune-{model}-{coin_id}-{fold.key}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def _optuna_tables_exist(database_url: str, schema_name: str | None) -> bool:
    """True if Optuna's ``studies`` table exists beside the Kallos database (looks, creates nothing)."""
    url = _sqlalchemy_url(database_url)
    schema = None if url.startswith("sqlite") else (f"{schema_name}_optuna" if schema_name else OPTUNA_SCHEMA)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return sa.inspect(conn).has_table("studies", schema=schema)
    finally:
        engine.dispose()


def count_trials(database_url: str, schema_name: str | None = None) -> int:
    """Every trial of every study stored beside ``database_url`` (complete, pruned, failed, running).

    A database without Optuna's tables has none; they are not created just to count.
    """
    if not _optuna_tables_exist(database_url, schema_name):
        return 0
    storage = optuna_storage(database_url, schema_name)
    try:
        return sum(
            storage.get_n_trials(storage.get_study_id_from_name(s.study_name))
            for s in storage.get_all_studies()
        )
    finally:
        storage.engine.dispose()


@dataclass(frozen=True)
class TuningResult:
    """Outcome of :func:`tune`.

    Attributes
    ----------
    study_name : the Optuna study.
    n_trials : trials stored in the study (every state, every worker).
    states : count per trial state name (COMPLETE, PRUNED, FAIL, ...).
    pareto : one row per Pareto trial: number, rmse, directional_accuracy, then the parameters.
    chosen : the trial :func:`choose_trial` picked, as a row like ``pareto``'s.
    """

    study_name: str
    n_trials: int
    states: dict[str, int]
    pareto: pd.DataFrame
    chosen: dict[str, Any]


def _row(t: FrozenTrial) -> dict[str, Any]:
    return {"number": t.number, "rmse": t.values[0], "directional_accuracy": t.values[1], **t.params}


def tune(
    history: CoinHistory,
    fold: Fold,
    config: ForecastConfig,
    storage: optuna.storages.BaseStorage | str,
    *,
    model: str = "gru",
    n_trials: int | None = None,
    seed: int = 0,
    sampler_seed: int | None = None,
    device: str = "cpu",
    name: str | None = None,
    space: TrainingSpace | None = None,
    network_space: SearchSpace | None = None,
) -> TuningResult:
    """Run ``n_trials`` more trials (default ``config.tuning.n_trials``) of the coin/fold study.

    Parameters
    ----------
    history : the coin's history; it must end at or before ``fold.cutoff``.
    storage : an Optuna storage (e.g. :func:`optuna_storage`) or URL.
    seed : seed of every model fit (so trials differ only by their parameters).
    sampler_seed : seed of the TPE sampler; workers sharing a study should use different ones.
    name : study name (default :func:`study_name`).
    model : registered forecaster to tune (one with a search space, see :func:`tunable`).
    space : the trainer's part of the space (default :class:`TrainingSpace`).
    network_space : the network's part (default: the forecaster spec's ``search_space``).

    Raises
    ------
    DataValidationError
        If ``history`` reaches past the cutoff.
    InsufficientDataError
        If no trial of the study completed.
    """
    objective = TuningObjective(
        history, fold, config, model=model, seed=seed, device=device, space=space, network_space=network_space
    )
    name = name or study_name(history.coin_id, fold, config, model)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        directions=["minimize", "maximize"],
        sampler=optuna.samplers.TPESampler(seed=sampler_seed),
        load_if_exists=True,
    )
    study.optimize(
        objective,
        n_trials=n_trials or config.tuning.n_trials,
        catch=(InsufficientDataError, RuntimeError, ValueError),
    )
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    front = sorted(study.best_trials, key=lambda t: t.number)
    if not front:
        raise InsufficientDataError(
            f"study {name}: no trial completed ({states}); see the trial errors above"
        )
    chosen = choose_trial(front)
    return TuningResult(name, len(trials), states, pd.DataFrame([_row(t) for t in front]), _row(chosen))
