"""Tests for kallos.forecast.driver: job order, engine invariance, failure as data, the long frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kallos.forecast import (
    CoinHistory,
    ForecastJob,
    HistoricalMean,
    JobResult,
    NaivePersistence,
    driver,
    forecasts_frame,
    run_jobs,
    stable_seed,
)

COLUMNS = ["forecaster", "coin_id", "as_of", "horizon", "forecast", "fold_cutoff"]


@pytest.fixture(scope="module")
def jobs(make_history, fold, tiny_config) -> list[ForecastJob]:
    """Two small recurrent jobs around a light one; histories run past the forecast dates."""
    aaa, bbb = make_history(seed=1, coin="aaa"), make_history(seed=2, coin="bbb")
    dates = pd.date_range(fold.test_start, periods=20, freq="D")

    def recurrent(name: str, coin: str):
        return tiny_config.model(name, seed=stable_seed(name, coin, fold.key))

    return [
        ForecastJob(recurrent("gru", "aaa"), fold, aaa, dates),
        ForecastJob(HistoricalMean(horizon=7, window=30), fold, bbb, dates),
        ForecastJob(recurrent("lstm", "bbb"), fold, bbb, dates),
    ]


@pytest.fixture(scope="module")
def serial(jobs) -> list[JobResult]:
    return run_jobs(jobs)


def test_results_in_job_order_with_fitted_state(jobs, serial) -> None:
    assert [(r.forecaster, r.coin_id, r.fold.key) for r in serial] == [j.key for j in jobs]
    assert [r.forecaster for r in serial] == ["gru", "historical_mean", "lstm"]
    for job, result in zip(jobs, serial, strict=True):
        assert result.error is None
        assert result.predictions.index.equals(job.dates)
        assert result.predictions.notna().all()
        assert result.fold == job.fold
    assert serial[1].state is None
    tensors, meta = serial[0].state
    assert meta["cutoff"] == jobs[0].fold.key and meta["params"]["name"] == "gru"
    assert all(isinstance(v, np.ndarray) for v in tensors.values())


def test_job_equals_manual_fit_on_history_up_to_cutoff(jobs, serial) -> None:
    job = jobs[0]
    manual = job.forecaster.clone().fit(job.history.upto(job.fold.cutoff), job.fold)
    np.testing.assert_array_equal(manual.predict(job.history, job.dates).to_numpy(), serial[0].predictions)
    assert serial[0].state[1]["training"] == manual.training_  # same samples, same validation block
    # The job's forecaster itself stays unfitted: the driver fits a clone.
    assert not hasattr(job.forecaster, "net_")


def test_rows_after_the_last_forecast_date_do_not_matter(jobs, serial) -> None:
    job = jobs[0]
    h = job.history
    later = h.close.index > job.dates.max()
    rng = np.random.default_rng(0)
    features, close = h.features.copy(), h.close.copy()
    features.loc[later] = rng.normal(0.0, 50.0, (later.sum(), features.shape[1]))
    close.loc[later] = rng.lognormal(3.0, 2.0, later.sum())
    noisy = ForecastJob(job.forecaster, job.fold, CoinHistory(h.coin_id, close, features), job.dates)
    (result,) = run_jobs([noisy])
    pd.testing.assert_series_equal(result.predictions, serial[0].predictions, check_exact=True)


def test_two_dask_workers_give_identical_results(jobs, serial, dask_engine) -> None:
    done: list[tuple[str, str, str]] = []
    parallel = run_jobs(
        jobs, dask_engine, on_done=lambda r: done.append((r.forecaster, r.coin_id, r.fold.key))
    )
    assert sorted(done) == sorted(j.key for j in jobs)  # each job reported once
    assert [(r.forecaster, r.coin_id) for r in parallel] == [(r.forecaster, r.coin_id) for r in serial]
    for a, b in zip(serial, parallel, strict=True):
        pd.testing.assert_series_equal(a.predictions, b.predictions, check_exact=True)
        assert (a.state is None) == (b.state is None)
        if a.state is not None:
            assert a.state[1] == b.state[1]
            for key, value in a.state[0].items():
                np.testing.assert_array_equal(value, b.state[0][key], err_msg=key)


def test_insufficient_data_becomes_an_error_result(jobs, tiny_config) -> None:
    good = jobs[1]
    starved = ForecastJob(
        tiny_config.model("gru", min_train_samples=10_000),
        good.fold,
        good.history,
        good.dates,
    )
    bad, ok = run_jobs([starved, good])
    assert bad.error is not None and "bbb" in bad.error and "training samples" in bad.error
    assert (bad.forecaster, bad.coin_id, bad.state) == ("gru", "bbb", None)
    assert bad.predictions.index.equals(good.dates) and bad.predictions.isna().all()
    assert bad.predictions.name == "gru"
    assert ok.error is None and ok.predictions.notna().all()


def test_forecasts_frame(fold) -> None:
    dates = pd.date_range(fold.test_start, periods=4, freq="D")
    results = [
        JobResult("naive_persistence", "bbb", fold, pd.Series([0.1, np.nan, 0.3, 0.4], index=dates), None),
        JobResult("historical_mean", "aaa", fold, pd.Series([np.nan, 0.2, np.nan, -0.1], index=dates), None),
        JobResult("gru", "ccc", fold, pd.Series(np.nan, index=dates), None, "too little data"),
    ]
    frame = forecasts_frame(results, horizon=7)
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 5  # NaN forecasts (and the failed job) dropped
    assert frame["forecast"].notna().all()
    assert frame[["forecaster", "coin_id"]].drop_duplicates().values.tolist() == [
        ["historical_mean", "aaa"],
        ["naive_persistence", "bbb"],
    ]
    assert frame["as_of"].tolist() == [dates[1], dates[3], dates[0], dates[2], dates[3]]
    assert frame["forecast"].tolist() == [0.2, -0.1, 0.1, 0.3, 0.4]
    assert (frame["horizon"] == 7).all()
    assert (frame["fold_cutoff"] == fold.cutoff).all()
    empty = forecasts_frame([results[2]], horizon=7)
    assert list(empty.columns) == COLUMNS and empty.empty


def test_light_jobs_run_in_process_beside_an_engine(make_history, fold, dask_engine) -> None:
    h = make_history(n=470, seed=5, coin="ccc")
    dates = pd.date_range(fold.test_start, periods=5, freq="D")
    jobs = [
        ForecastJob(NaivePersistence(7), fold, h, dates),
        ForecastJob(HistoricalMean(7, 10), fold, h, dates),
    ]
    results = run_jobs(jobs, dask_engine)
    expected = np.log(h.close / h.close.shift(7)).loc[dates]
    np.testing.assert_allclose(results[0].predictions.to_numpy(), expected.to_numpy(), rtol=1e-12)
    assert [r.forecaster for r in results] == ["naive_persistence", "historical_mean"]


# --------------------------------------------------------------------------- stacked training
@pytest.fixture(scope="module")
def stack_jobs(make_history, fold, splitter, tiny_config) -> list[ForecastJob]:
    """Three GRU coins on one fold (one stack), one on a later fold, one LSTM: three stacks in all."""
    later = splitter.fold(pd.Timestamp("2021-03-31"))
    histories = {c: make_history(n=560, seed=s, coin=c) for s, c in enumerate(["aaa", "bbb", "ccc"], 7)}

    def job(cell: str, coin: str, f) -> ForecastJob:
        model = tiny_config.model(cell, seed=stable_seed(cell, coin, f.key))
        return ForecastJob(model, f, histories[coin], pd.date_range(f.test_start, periods=15, freq="D"))

    return [
        job("gru", "aaa", fold),
        job("lstm", "aaa", fold),
        job("gru", "bbb", fold),
        job("gru", "aaa", later),
        job("gru", "ccc", fold),
    ]


def test_jobs_are_grouped_by_model_and_fold(stack_jobs, monkeypatch) -> None:
    assert driver._tasks(stack_jobs, range(5)) == [[0, 2, 4], [1], [3]]
    monkeypatch.setattr(driver, "MAX_STACK", 2)
    assert driver._tasks(stack_jobs, range(5)) == [[0, 2], [4], [1], [3]]
    light = ForecastJob(
        NaivePersistence(7), *[getattr(stack_jobs[0], a) for a in ("fold", "history", "dates")]
    )
    assert driver._tasks([light, *stack_jobs[:1]], range(2)) == [[0], [1]]


@pytest.mark.slow
def test_stacked_jobs_equal_lone_jobs_and_are_reproducible(stack_jobs, dask_engine) -> None:
    stacked = run_jobs(stack_jobs)
    assert [(r.forecaster, r.coin_id, r.fold.key) for r in stacked] == [j.key for j in stack_jobs]
    for job, result in zip(stack_jobs, stacked, strict=True):
        alone = driver.run_job(job)
        assert result.error is None and result.predictions.notna().all()
        np.testing.assert_allclose(result.predictions, alone.predictions, atol=1e-5, rtol=0)
        assert result.state[1]["training"]["epochs"] == alone.state[1]["training"]["epochs"]
        assert result.state[1]["cutoff"] == job.fold.key
    # Two runs (in-process, then two Dask workers) are byte-identical.
    again = run_jobs(stack_jobs, dask_engine)
    for a, b in zip(stacked, again, strict=True):
        pd.testing.assert_series_equal(a.predictions, b.predictions, check_exact=True)
        for key, value in a.state[0].items():
            np.testing.assert_array_equal(value, b.state[0][key], err_msg=key)


def test_a_starved_job_in_a_stack_fails_alone(stack_jobs, tiny_config) -> None:
    good = stack_jobs[0]
    starved = ForecastJob(
        good.forecaster.clone(min_train_samples=10_000), good.fold, stack_jobs[2].history, good.dates
    )
    bad, ok = run_jobs([starved, good])
    assert bad.error is not None and "training samples" in bad.error and bad.state is None
    assert ok.error is None
    np.testing.assert_array_equal(ok.predictions, driver.run_job(good).predictions)
