"""``kallos tune``, ``kallos models list`` and ``kallos forecasts report``."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kallos.cli.app import app
from kallos.cli.forecast_cmds import parse_fold
from kallos.data import Store
from kallos.data import schema as s
from kallos.exceptions import DataValidationError

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def test_parse_fold():
    assert parse_fold("2023Q1") == pd.Timestamp("2022-12-31")
    assert parse_fold("2024q3") == pd.Timestamp("2024-06-30")
    assert parse_fold("2022-09-30") == pd.Timestamp("2022-09-30")
    with pytest.raises(DataValidationError, match="test quarter"):
        parse_fold("soon")


def _forecasts() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    dates = pd.date_range("2023-01-01", "2023-06-29", freq="D")
    rows = []
    for coin in ("btc", "eth", "sol"):
        realised = rng.normal(0, 0.05, len(dates))
        for name, f in (("naive_persistence", np.roll(realised, 7)), ("gru", realised * 0.5)):
            rows.append(
                pd.DataFrame(
                    {
                        "forecaster": name,
                        "coin_id": coin,
                        "as_of": dates,
                        "horizon": 7,
                        "forecast": f,
                        "fold_cutoff": dates.to_period("Q").to_timestamp() - pd.Timedelta(days=1),
                        "realised": realised,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_forecasts_report_writes_standalone_html(tmp_path):
    _forecasts().to_parquet(tmp_path / "forecasts.parquet")
    res = runner.invoke(app, ["forecasts", "report", "--run", str(tmp_path)], env=WIDE)
    assert res.exit_code == 0, res.output
    page = (tmp_path / "forecast_report.html").read_text()
    assert "Diebold-Mariano" in page and "Residuals by coin" in page and "weeks since training" in page
    assert "<script src=" not in page  # plotly.js inlined: opens offline
    assert page.count("Plotly.newPlot") == 5  # R²_oos, RMSE and accuracy by quarter, residuals, decay
    assert "Pesaran-Timmermann" in page and "R² against the zero forecast" in page
    for coin in ("btc", "eth", "sol"):
        assert coin in page


def test_forecasts_report_missing_run(tmp_path):
    res = runner.invoke(app, ["forecasts", "report", "--run", str(tmp_path / "nope")], env=WIDE)
    assert res.exit_code == 2 and "forecasts.parquet" in res.output


def test_models_list(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'kallos.db'}")
    store.create_schema()
    row = {
        "model_id": "ab" * 32,
        "model_type": "gru",
        "coin_id": "btc",
        "train_start": dt.date(2018, 6, 1),
        "train_end": dt.date(2022, 9, 15),
        "val_start": dt.date(2022, 9, 23),
        "val_end": dt.date(2022, 12, 24),
        "test_start": dt.date(2022, 12, 31),
        "test_end": dt.date(2023, 3, 30),
        "hyperparameters": {"hidden_size": 8},
        "val_metrics": {"rmse": 0.0612, "directional_accuracy": 0.53},
        "artifact_path": "x",
        "artifact_hash": "0" * 64,
        "config_hash": "1" * 64,
        "data_hash": "2" * 64,
        "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    }
    store.upsert(s.model_registry, pd.DataFrame([row, {**row, "model_id": "cd" * 32, "coin_id": "eth"}]))
    url = f"sqlite:///{tmp_path / 'kallos.db'}"
    res = runner.invoke(app, ["models", "list", "--database-url", url, "--out", str(tmp_path)], env=WIDE)
    assert res.exit_code == 0, res.output
    assert "2 models" in res.output and "abababababab" in res.output and "0.0612" in res.output
    res = runner.invoke(app, ["models", "list", "--database-url", url, "--coin", "eth"], env=WIDE)
    assert "1 models" in res.output and "cdcdcdcdcdcd" in res.output and "abababababab" not in res.output
    store.dispose()


def test_tune_rejects_unknown_coin(real_store, tmp_path):
    url = str(real_store.engine.url.render_as_string(hide_password=False))
    res = runner.invoke(
        app, ["tune", "--coin", "nocoin", "--fold", "2023Q1", "--database-url", url], env=WIDE
    )
    assert res.exit_code == 2 and "not in the panel" in res.output


def test_tune_rejects_a_model_without_a_search_space(real_store):
    url = str(real_store.engine.url.render_as_string(hide_password=False))
    res = runner.invoke(
        app, ["tune", "--coin", "btc", "--fold", "2023Q1", "--model", "zero", "--database-url", url]
    )
    assert res.exit_code == 2 and "cannot be tuned" in res.output and "transformer" in res.output
    assert "Traceback" not in res.output


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gru", "transformer"])
def test_tune_on_real_data(real_store, tmp_path, model):
    url = str(real_store.engine.url.render_as_string(hide_password=False))
    args = ["tune", "--coin", "btc", "--fold", "2023Q1", "--trials", "2", "--database-url", url]
    args += [
        "--model",
        model,
        "--set",
        "forecast.training.max_epochs=1",
        "--set",
        "forecast.train_start=2021-06-01",
    ]
    args += ["--sampler-seed", "0"]
    res = runner.invoke(app, args, env=WIDE)
    assert res.exit_code == 0, res.output
    assert "Pareto front" in res.output and "Chosen" in res.output
    assert f"tune-{model}-btc-2022-12-31-" in res.output
