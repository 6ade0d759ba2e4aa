"""A tuned study gives byte-identical forecasts, weights and results.json on every execution engine.

In-process (``--scheduler none``), the default ``LocalCluster``, and a ``tcp://`` scheduler with two
``dask worker`` processes started on 127.0.0.1 (the session's ``tcp_cluster``). Each engine tunes
into its own PostgreSQL schema (a remote scheduler needs a shared server database), so every
engine runs every trial itself.
"""

from __future__ import annotations

import io
import json
from uuid import uuid4

import pytest
from sqlalchemy import create_engine, text

from kallos.compute import open_engine
from kallos.config import load_config
from kallos.forecast.tuned import TuningStorage
from kallos.pipeline import Compute, run_study

from .conftest import PG_URL

OVERRIDES = {
    "universe.top_n": 3,
    "forecast.forecasters": ["gru", "zero", "historical_mean"],
    "backtest.start": "2023-01-01",
    "backtest.end": "2023-06-30",
    "forecast.training.lookback": 10,
    "forecast.training.max_epochs": 3,
    "forecast.tuning.enabled": True,
    "forecast.tuning.n_trials": 3,
    "forecast.tuning.space": {
        "hidden_size": [4, 8],
        "num_layers": [1, 1],
        "lookback": [5, 10],
        "batch_size": [64],
    },
    "evaluation.calibration.size_reps": 0,
    "evaluation.calibration.power_reps": 0,
}


@pytest.fixture
def schemas():
    names: list[str] = []
    yield lambda: names.append(f"t_{uuid4().hex[:8]}") or names[-1]
    engine = create_engine("postgresql+psycopg://" + PG_URL.split("://", 1)[1])
    with engine.begin() as conn:
        for name in names:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}_optuna" CASCADE'))
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    engine.dispose()


def _parquet(frame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf)
    return buf.getvalue()


@pytest.mark.slow
@pytest.mark.postgres
def test_tuned_study_is_byte_identical_on_every_engine(
    real_panel, results_document, dask_engine, tcp_cluster, schemas
):
    config = load_config(None, OVERRIDES)
    outputs = {}
    with open_engine(tcp_cluster.address) as tcp, open_engine("none") as none:
        for name, engine in (("none", none), ("local", dask_engine), ("tcp", tcp)):
            compute = Compute(engine, TuningStorage(PG_URL, schemas()))
            result = run_study(real_panel, config, compute=compute)
            doc = results_document(result)
            outputs[name] = (
                _parquet(result.forecasts),
                _parquet(result.weights),
                json.dumps(doc, sort_keys=True, allow_nan=False).encode(),
                result,
            )
    reference = outputs["none"]
    assert len(reference[3].tuning) == 6 and reference[3].forecasts["forecaster"].eq("gru").any()
    assert sum(s.n_trials for s in reference[3].tuning) == 18
    for name in ("local", "tcp"):
        assert outputs[name][0] == reference[0], f"{name}: forecasts differ"
        assert outputs[name][1] == reference[1], f"{name}: weights differ"
        assert outputs[name][2] == reference[2], f"{name}: results.json differs"
