"""Optuna tuning: Pareto choice rule, the hand-made median pruning rule, storage and distribution."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from uuid import uuid4

import optuna
import pandas as pd
import pytest
import sqlalchemy as sa
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from kallos.config import ForecastConfig
from kallos.data import Store, migrations
from kallos.exceptions import DataValidationError
from kallos.forecast.tuning import (
    MedianRulePruner,
    TrainingSpace,
    TuningObjective,
    choose_trial,
    count_trials,
    optuna_storage,
    study_name,
    tune,
    validation_scores,
)

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
SMALL = TrainingSpace(lookback=(5, 10), batch_size=(32, 64))


def small_gru(trial: optuna.Trial) -> dict[str, int]:
    return {
        "hidden_size": trial.suggest_int("hidden_size", 4, 8),
        "num_layers": trial.suggest_int("num_layers", 1, 2),
    }


optuna.logging.set_verbosity(optuna.logging.WARNING)


def _trial(number: int, rmse: float, da: float, **attrs: float):
    t = create_trial(
        values=[rmse, da],
        params={"x": 0.5},
        distributions={"x": FloatDistribution(0, 1)},
        user_attrs=attrs,
    )
    t.number = number
    return t


@pytest.fixture
def tiny_forecast(tiny_config) -> ForecastConfig:
    tiny = tiny_config.model_copy(update={"max_epochs": 3, "patience": 3}).forecast
    return tiny.model_copy(update={"horizon": 7, "validation_days": 60, "min_train_samples": 30})


def test_choose_trial_rule():
    a, b, c = _trial(0, 0.10, 0.45), _trial(1, 0.12, 0.55), _trial(2, 0.15, 0.60)
    assert choose_trial([a, b, c]).number == 1  # lowest RMSE among DA >= 50 %
    assert choose_trial([a, _trial(3, 0.11, 0.40)]).number == 0  # none reaches 50 %: lowest RMSE
    assert choose_trial([_trial(5, 0.2, 0.5), _trial(4, 0.2, 0.5)]).number == 4  # tie: lower number
    with pytest.raises(ValueError, match="Pareto"):
        choose_trial([])


def test_median_rule_pruner():
    pruner = MedianRulePruner(n_startup_trials=3, fraction=0.34)
    assert pruner.checkpoints(30) == [10]
    assert pruner.checkpoints(1) == []
    study = optuna.create_study(directions=["minimize", "maximize"])
    key = "validation_rmse_at_epoch_10"
    study.add_trial(_trial(0, 0.1, 0.5, **{key: 1.0}))
    study.add_trial(_trial(1, 0.1, 0.5, **{key: 2.0}))
    assert not pruner.should_prune(study, 10, 99.0)  # too few completed trials yet
    study.add_trial(_trial(2, 0.1, 0.5, **{key: 3.0}))
    assert pruner.should_prune(study, 10, 2.5)  # median 2.0
    assert not pruner.should_prune(study, 10, 2.0)
    assert not pruner.should_prune(study, 10, 1.5)
    assert pruner.should_prune(study, 10, math.nan)
    assert not pruner.should_prune(study, 5, 99.0)  # nothing recorded at another epoch


def test_objective_prunes_a_bad_trial(make_history, fold, tiny_forecast):
    history = make_history().upto(fold.cutoff)
    study = optuna.create_study(directions=["minimize", "maximize"])
    for i in range(3):  # completed trials that were impossibly good at the checkpoint
        study.add_trial(_trial(i, 0.01, 0.9, validation_rmse_at_epoch_1=0.0))
    objective = TuningObjective(history, fold, tiny_forecast, seed=1, space=SMALL, network_space=small_gru)
    study.optimize(objective, n_trials=1)
    last = study.trials[-1]
    assert last.state == TrialState.PRUNED
    assert last.user_attrs["validation_rmse_at_epoch_1"] > 0


def test_objective_refuses_the_test_quarter(make_history, fold, tiny_forecast):
    history = make_history()
    assert history.last_date > fold.cutoff
    with pytest.raises(DataValidationError, match="test"):
        TuningObjective(history, fold, tiny_forecast)


def test_validation_scores_use_validation_block_only(make_history, fold, tiny_forecast):
    history = make_history().upto(fold.cutoff)
    objective = TuningObjective(history, fold, tiny_forecast, seed=3)
    rmse, da, n = objective._score(tiny_forecast.training)
    assert n == (fold.validation_end - fold.validation_start).days + 1
    assert 0 < rmse < 0.2 and 0.0 <= da <= 1.0


def test_tune_sqlite_counts_every_trial(tmp_path, make_history, fold, tiny_forecast):
    url = f"sqlite:///{tmp_path / 'kallos.db'}"
    store = Store(url)  # Kallos tables first: Optuna's tables share the database file
    storage = optuna_storage(url)
    history = make_history().upto(fold.cutoff)
    result = tune(
        history,
        fold,
        tiny_forecast,
        storage,
        n_trials=3,
        sampler_seed=0,
        space=SMALL,
        network_space=small_gru,
    )
    assert result.study_name == study_name("syn", fold, tiny_forecast)
    assert result.n_trials == 3 == sum(result.states.values())
    assert result.chosen["number"] in set(result.pareto["number"])
    tables = set(sa.inspect(store.engine).get_table_names())
    assert {"studies", "trials", "daily_market_data", "kallos_alembic_version"} <= tables
    assert store.current_revision() == migrations.head_revision()  # Optuna left Kallos' version alone
    assert set(result.pareto.columns) >= {"rmse", "directional_accuracy", "hidden_size", "direction_weight"}
    tune(  # same study, resumed
        history,
        fold,
        tiny_forecast,
        storage,
        n_trials=1,
        sampler_seed=1,
        space=SMALL,
        network_space=small_gru,
    )
    assert count_trials(url) == 4
    storage.engine.dispose()


def test_counting_trials_creates_no_optuna_table(any_store):
    """Issue 10.11: a `kallos run` that failed at data validation had added 12 empty Optuna tables."""
    before = set(sa.inspect(any_store.engine).get_table_names(schema=any_store.schema_name))
    try:
        assert count_trials(any_store.url, any_store.schema_name) == 0
        after = set(sa.inspect(any_store.engine).get_table_names(schema=any_store.schema_name))
        assert after == before and "studies" not in after
        if any_store.schema_name:  # PostgreSQL: no <schema>_optuna schema either
            schemas = sa.inspect(any_store.engine).get_schema_names()
            assert f"{any_store.schema_name}_optuna" not in schemas
    finally:
        if any_store.schema_name:
            with any_store.engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{any_store.schema_name}_optuna" CASCADE'))


_WORKER = textwrap.dedent(
    """
    import sys, numpy as np, pandas as pd, optuna
    from kallos.config import ForecastConfig, TrainingConfig
    from kallos.features import forward_log_return
    from kallos.forecast import CoinHistory, ExpandingWalkForward
    from kallos.forecast.tuning import TrainingSpace, optuna_storage, tune
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, schema, name, k, seed = sys.argv[1:6]
    rng = np.random.default_rng(0)
    idx = pd.date_range("2020-01-01", periods=366, freq="D")
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.02, 366))), index=idx)
    y = forward_log_return(close, 7).fillna(0.0).to_numpy()
    feats = pd.DataFrame({"signal": y + rng.normal(0, 0.005, 366), "noise": rng.normal(0, 1, 366)}, index=idx)
    fold = ExpandingWalkForward("2020-01-01", horizon=7, validation_days=60).fold(pd.Timestamp("2020-12-31"))
    cfg = ForecastConfig(
        validation_days=60, min_train_samples=30, training=TrainingConfig(max_epochs=1, patience=1)
    )
    storage = optuna_storage(url, schema)
    space = TrainingSpace(lookback=(5, 10))
    def small(trial):
        return {"hidden_size": trial.suggest_int("hidden_size", 4, 8), "num_layers": 1}
    history = CoinHistory("syn", close, feats)
    tune(
        history, fold, cfg, storage, n_trials=int(k), sampler_seed=int(seed), name=name, space=space,
        network_space=small,
    )
    """
)


@pytest.mark.postgres
@pytest.mark.slow
def test_two_workers_share_one_postgres_study():
    schema, name, k = f"t_{uuid4().hex[:8]}", f"test-{uuid4().hex[:8]}", 2
    args = [PG_URL, schema, name, str(k)]
    try:
        procs = [subprocess.Popen([sys.executable, "-c", _WORKER, *args, str(s)]) for s in (1, 2)]
        assert [p.wait(timeout=240) for p in procs] == [0, 0]
        storage = optuna_storage(PG_URL, schema)
        study = optuna.load_study(study_name=name, storage=storage)
        assert len(study.trials) == 2 * k
        assert count_trials(PG_URL, schema) == 2 * k
        storage.engine.dispose()
    finally:
        engine = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}_optuna" CASCADE'))
        engine.dispose()


def test_memory_sqlite_is_refused():
    with pytest.raises(ValueError, match="file or server"):
        optuna_storage("sqlite:///:memory:")


def test_validation_scores_known_answer(make_history, fold, tiny_forecast):
    """A perfect forecaster scores RMSE 0 and DA 1 on the validation block."""

    class Oracle:
        def predict(self, history, dates):
            from kallos.features import forward_log_return

            full = make_history()
            return forward_log_return(full.close, 7).reindex(pd.DatetimeIndex(dates))

    rmse, da, n = validation_scores(Oracle(), make_history().upto(fold.cutoff), fold)
    assert rmse == 0.0 and da == 1.0 and n == 60
