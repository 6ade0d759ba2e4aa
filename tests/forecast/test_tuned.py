"""The tuned walk-forward: determinism, resume after an interruption, engines, a killed worker."""

from __future__ import annotations

import threading
import time

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from kallos.compute import InProcessEngine, open_engine
from kallos.compute.processes import process_cluster
from kallos.config import ForecastConfig, StudyConfig, TuningConfig
from kallos.exceptions import ConfigError
from kallos.forecast import ForecastJob, make_forecaster, run_jobs, stable_seed
from kallos.forecast.tuned import (
    INTERRUPTED,
    TrialCounter,
    TuningStorage,
    check_space,
    study_names,
    total_budget,
    tune_jobs,
    tuned_study_name,
)
from kallos.forecast.tuning import BoundedTrial

SPACE = {"hidden_size": [4, 8], "num_layers": [1, 1], "lookback": [5, 8], "batch_size": [32]}


def _config(tiny_config, n_trials: int = 4) -> StudyConfig:
    forecast = tiny_config.forecast.model_copy(
        update={
            "tuning": TuningConfig(enabled=True, n_trials=n_trials, space=SPACE, pruning_startup_trials=2)
        }
    )
    return StudyConfig(forecast=forecast)


def _jobs(
    make_history, fold, config: StudyConfig, coins=("aaa", "bbb"), extra_epochs: int = 0
) -> list[ForecastJob]:
    forecast = config.forecast
    if extra_epochs:
        training = forecast.training.model_copy(
            update={"max_epochs": forecast.training.max_epochs + extra_epochs}
        )
        forecast = forecast.model_copy(update={"training": training})
    dates = pd.date_range(fold.test_start, periods=10, freq="D")
    jobs = []
    for i, coin in enumerate(coins):
        history = make_history(seed=10 + i, coin=coin)
        for name in ("gru", "historical_mean"):
            model = make_forecaster(name, forecast, seed=stable_seed(name, coin, fold.key))
            jobs.append(ForecastJob(model, fold, history, dates))
    return jobs


def _storage(tmp_path, name: str = "tune.db") -> TuningStorage:
    return TuningStorage(f"sqlite:///{tmp_path / name}")


def _forecasts(jobs):
    return [r.predictions for r in run_jobs(jobs)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, make_history, fold, tiny_config):
    """An uninterrupted in-process tuning of two GRU jobs (and two untunable baselines)."""
    config = _config(tiny_config)
    jobs = _jobs(make_history, fold, config)
    storage = _storage(tmp_path_factory.mktemp("reference"))
    tuned, summaries = tune_jobs(jobs, config, storage)
    return config, jobs, tuned, summaries, _forecasts(tuned)


def test_tuning_picks_a_trial_and_rebuilds_only_tunable_jobs(reference) -> None:
    config, jobs, tuned, summaries, _ = reference
    assert [s.coin_id for s in summaries] == ["aaa", "bbb"] and {s.forecaster for s in summaries} == {"gru"}
    assert total_budget(jobs, config.forecast) == 8
    for job, new in zip(jobs, tuned, strict=True):
        if job.forecaster.name == "historical_mean":
            assert new is job  # baselines are never tuned
            continue
        (summary,) = [s for s in summaries if s.coin_id == job.history.coin_id]
        assert sum(summary.states.values()) == summary.n_trials == 4
        assert summary.chosen["number"] in {p["number"] for p in summary.pareto}
        params = new.forecaster.get_params(deep=False)
        assert (
            params["training"].lookback == summary.training["lookback"]
            and 5 <= summary.training["lookback"] <= 8
        )
        assert (
            params["network"].hidden_size == summary.network["hidden_size"]
            and params["network"].num_layers == 1
        )
        assert params["seed"] == job.forecaster.seed  # the job keeps its seed, fold and dates
        assert (new.fold, new.dates.equals(job.dates)) == (job.fold, True)


def test_a_second_run_reads_the_stored_studies_and_gives_equal_forecasts(reference, tmp_path) -> None:
    config, jobs, _, summaries, forecasts = reference
    storage = _storage(tmp_path)
    _, first = tune_jobs(jobs, config, storage)
    again_tuned, again = tune_jobs(jobs, config, storage)  # everything stored: no new trial
    assert [s.chosen for s in first] == [s.chosen for s in again] == [s.chosen for s in summaries]
    assert [s.n_trials for s in again] == [4, 4]
    for a, b in zip(_forecasts(again_tuned), forecasts, strict=True):
        pd.testing.assert_series_equal(a, b, check_exact=True)


def test_an_interrupted_study_resumes_to_the_uninterrupted_result(reference, tmp_path) -> None:
    """Two trials done, then a trial left RUNNING by a killed run: the resumed study equals the reference."""
    config, jobs, _, summaries, forecasts = reference
    storage = _storage(tmp_path)
    tune_jobs(jobs, _config_with_trials(config, 2), storage)
    rdb = storage.open()
    for name in study_names(jobs, config.forecast):
        optuna.load_study(study_name=name, storage=rdb).ask()  # a RUNNING trial nobody will finish
    counter = TrialCounter(storage, study_names(jobs, config.forecast))
    assert counter.counts()["RUNNING"] == 2 and counter.counts()["done"] == 4
    resumed_tuned, resumed = tune_jobs(jobs, config, storage)
    assert [s.chosen["rmse"] for s in resumed] == [s.chosen["rmse"] for s in summaries]
    assert [s.states for s in resumed] == [
        {**s.states, "FAIL": s.states.get("FAIL", 0) + 1} for s in summaries
    ]
    zombie = [t for t in optuna.load_study(study_name=resumed[0].study, storage=rdb).trials if t.number == 2]
    assert zombie[0].state == TrialState.FAIL and zombie[0].user_attrs[INTERRUPTED] is True
    counts = counter.counts()
    assert (counts["done"], counts["RUNNING"], counts["FAIL"]) == (8, 0, 2)
    counter.close()
    rdb.engine.dispose()
    for a, b in zip(_forecasts(resumed_tuned), forecasts, strict=True):
        pd.testing.assert_series_equal(a, b, check_exact=True)


def _config_with_trials(config: StudyConfig, n: int) -> StudyConfig:
    tuning = config.forecast.tuning.model_copy(update={"n_trials": n})
    return config.model_copy(update={"forecast": config.forecast.model_copy(update={"tuning": tuning})})


def test_study_names_hold_model_coin_fold_and_seed(reference) -> None:
    config, jobs, *_ = reference
    name = tuned_study_name(jobs[0], config.forecast)
    assert name.startswith("tune-gru-aaa-2020-12-31-") and name.endswith(f"-s{jobs[0].forecaster.seed}")
    assert len(set(study_names(jobs, config.forecast))) == 2


def test_dask_engines_equal_the_in_process_result(reference, tmp_path, dask_engine, tcp_cluster) -> None:
    """LocalCluster workers and a tcp:// scheduler with two `dask worker` processes: equal results."""
    config, jobs, _, summaries, forecasts = reference
    with open_engine(tcp_cluster.address) as tcp:
        for i, engine in enumerate((dask_engine, tcp)):
            tuned, found = tune_jobs(jobs, config, _storage(tmp_path, f"{i}.db"), engine)
            assert [s.pareto for s in found] == [s.pareto for s in summaries]
            for a, b in zip([r.predictions for r in run_jobs(tuned, engine)], forecasts, strict=True):
                pd.testing.assert_series_equal(a, b, check_exact=True)


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_the_result_is_unchanged(
    tmp_path, make_history, fold, tiny_config
) -> None:
    """SIGKILL one of two `dask worker` processes while it tunes: Dask reruns its job on the other."""
    config = _config(tiny_config, n_trials=3)
    jobs = _jobs(make_history, fold, config, coins=("aaa", "bbb", "ccc", "ddd"), extra_epochs=10)
    expected = tune_jobs(jobs, config, _storage(tmp_path, "alone.db"), InProcessEngine())[1]
    storage = _storage(tmp_path, "cluster.db")
    with process_cluster(n_workers=2) as cluster, open_engine(cluster.address) as engine:
        out: dict[str, object] = {}
        worker = threading.Thread(target=lambda: out.update(result=tune_jobs(jobs, config, storage, engine)))
        worker.start()
        counter = TrialCounter(storage, study_names(jobs, config.forecast))
        deadline = time.monotonic() + 120
        while counter.counts()["RUNNING"] < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        counter.close()
        cluster.kill_worker(0)  # mid-trial: both workers were running one
        worker.join(timeout=300)
        assert not worker.is_alive()
        assert engine.n_workers == 1
    _, found = out["result"]
    # Equal trials; only the numbering moves past the interrupted trial.
    assert [_unnumbered(s.pareto) for s in found] == [_unnumbered(s.pareto) for s in expected]
    assert [_unnumbered([s.chosen]) for s in found] == [_unnumbered([s.chosen]) for s in expected]
    assert sum(s.states.get("FAIL", 0) for s in found) >= 1  # the killed worker's trial, marked interrupted


def _unnumbered(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "number"} for r in rows]


def test_space_overrides_bound_the_suggestions() -> None:
    study = optuna.create_study(directions=["minimize", "maximize"])
    trial = BoundedTrial(study.ask(), {"hidden_size": [4, 6], "batch_size": [16]})
    assert 4 <= trial.suggest_int("hidden_size", 32, 256, log=True) <= 6
    assert trial.suggest_categorical("batch_size", [32, 64, 128]) == 16
    assert 0.0 <= trial.suggest_float("dropout", 0.0, 0.7) <= 0.7  # not named: the plug-in's bounds
    with pytest.raises(ConfigError, match=r"forecast.tuning.space.x = \[3, 1\]"):
        BoundedTrial(study.ask(), {"x": [3, 1]}).suggest_int("x", 0, 10)


def test_unknown_space_keys_are_refused() -> None:
    check_space(ForecastConfig(tuning=TuningConfig(space={"hidden_size": (8, 16), "lookback": (5, 9)})))
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['hiden_size'\]"):
        check_space(ForecastConfig(tuning=TuningConfig(space={"hiden_size": (8, 16)})))
