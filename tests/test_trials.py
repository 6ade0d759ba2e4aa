"""The deflated Sharpe ratio's trial count: stored tuning trials and earlier configurations on the data."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from kallos.config import load_config
from kallos.data import Store, schema
from kallos.pipeline import prior_trials


def _run(run_id: str, config_hash: str, data_hash: str, config: dict) -> dict:
    return {
        "run_id": run_id,
        "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "kallos_version": "0",
        "config_hash": config_hash,
        "data_hash": data_hash,
        "config": config,
        "summary": {},
        "output_dir": "/tmp",
        "wall_seconds": 1.0,
    }


def test_prior_configurations_on_the_same_data_count_their_forecast_variants(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'kallos.db'}")
    config = load_config()
    three_by_two = {"forecast": {"forecasters": ["a", "b", "c"]}, "portfolio": {"objectives": ["x", "y"]}}
    one_by_one = {"forecast": {"forecasters": ["a"]}, "portfolio": {"objectives": ["x"]}}
    rows = [
        _run("r1", "other1", "data1", three_by_two),
        _run("r2", "other1", "data1", three_by_two),  # the same configuration rerun: counted once
        _run("r3", "other2", "data1", one_by_one),
        _run("r4", config.config_hash(), "data1", three_by_two),  # this configuration itself: not counted
        _run("r5", "other3", "data2", three_by_two),  # other data: not counted
    ]
    store.upsert(schema.runs, pd.DataFrame(rows))
    trials = prior_trials(store, "data1", config)
    assert (trials.prior_configurations, trials.prior_variants, trials.tuning) == (2, 7, 0)
    assert trials.total(10) == 17
    assert prior_trials(store, "data3", config).total(10) == 10
