"""The command line: help, bad input, and the end-to-end study on a small real slice."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from kallos import __version__
from kallos.cli.app import app
from kallos.data import Store
from kallos.data import schema as s
from kallos.data.artifacts import read_models_manifest
from kallos.evaluation import BATTERY
from kallos.pipeline.results import RESULT_KEYS, STATISTICS_KEYS
from kallos.report.schema import validate_results

runner = CliRunner()

SMALL_STUDY = """
n_jobs = 2
[universe]
top_n = 4
[forecast]
forecasters = ["gru", "historical_mean", "naive_persistence"]
[backtest]
start = 2023-01-01
end = 2023-06-30
[forecast.training]
lookback = 10
max_epochs = 2
[forecast.models.gru]
hidden_size = 8
num_layers = 1
[evaluation.calibration]
size_reps = 10
power_reps = 10
inner_reps = 99
"""


def test_version_and_help():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"kallos {__version__}"
    res = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for option in (
        "--config",
        "--out",
        "--database-url",
        "--data-dir",
        "--top-n",
        "--start",
        "--end",
        "--rebalance",
        "--cost-bps",
        "--objective",
        "--horizon",
        "--covariance",
        "--seed",
        "--device",
        "--n-jobs",
        "--set",
    ):
        assert option in res.output


def test_unknown_config_key_fails_before_any_work(tmp_path):
    cfg = tmp_path / "study.toml"
    cfg.write_text("[backtest]\ncosts_bps = 5\n")
    res = runner.invoke(app, ["run", "--config", str(cfg), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "backtest.costs_bps: unknown key" in res.output and str(cfg) in res.output
    assert not (tmp_path / "out").exists()


def test_invalid_override_names_the_key(tmp_path):
    res = runner.invoke(app, ["run", "--out", str(tmp_path), "--set", "portfolio.max_weight=0.1"])
    assert res.exit_code == 2 and "portfolio.max_weight=0.1 x universe.top_n=5 < 1" in res.output


def test_empty_store_without_data_dir_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("KALLOS_DATA_DIR", raising=False)
    monkeypatch.delenv("KALLOS_DATABASE_URL", raising=False)
    res = runner.invoke(app, ["run", "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "kallos ingest --source binance" in res.output
    assert "no API key needed" in res.output and "--data-dir" in res.output
    assert "../shared/data" not in res.output  # issue 10.12: a path of the development set-up
    assert not (tmp_path / "out").exists()  # issue 10.11: no database file left behind


def test_ingest_bad_file_names_file_and_row_and_keeps_the_store(tmp_path, data_dir):
    db = f"sqlite:///{tmp_path / 'k.db'}"
    ok = runner.invoke(
        app,
        [
            "ingest",
            "--source",
            "coingecko",
            "--database-url",
            db,
            "--path",
            str(data_dir / "coingecko_daily_top50/original/xrp-usd-max.csv.gz"),
        ],
    )
    assert ok.exit_code == 0 and "daily_market_data: 4577 rows upserted" in ok.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "xrp-usd-max.csv").write_text(
        "snapped_at,price,market_cap,total_volume\n2020-01-01 00:00:00 UTC,0.2,1,1\n"
    )
    (bad / "foo-usd-max.csv").write_text("snapped_at,price,market_cap\n2020-01-01 00:00:00 UTC,1,1\n")
    res = runner.invoke(app, ["ingest", "--source", "coingecko", "--database-url", db, "--path", str(bad)])
    assert res.exit_code == 2 and "foo-usd-max.csv" in res.output and "missing column" in res.output
    store = Store(db)
    xrp = store.read_market_data().set_index("date")
    assert len(xrp) == 4577 and xrp.loc["2019-12-31", "close"] != 0.2  # nothing half-written


@pytest.mark.slow
def test_end_to_end_small_real_slice(tmp_path, data_dir):
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL_STUDY)
    out = tmp_path / "out"
    db = f"sqlite:///{tmp_path / 'kallos.db'}"
    res = runner.invoke(
        app,
        ["run", "--config", str(cfg), "--out", str(out), "--database-url", db, "--data-dir", str(data_dir)],
    )
    assert res.exit_code == 0, res.output
    (run_dir,) = _run_dirs(out)
    for name in ("results.json", "report.html", "weights.parquet", "returns.parquet", "forecasts.parquet"):
        assert (run_dir / name).is_file()

    results = json.loads((run_dir / "results.json").read_text())
    assert set(RESULT_KEYS) | set(STATISTICS_KEYS) | {"forecast_evaluation"} <= set(results)
    validate_results(results)
    expected = {
        f"{f}/{o}"
        for f in ("gru", "historical_mean", "naive_persistence")
        for o in ("max_sharpe", "max_quadratic_utility")
    } | {"market_cap", "equal_weight"}
    assert set(results["strategies"]) == expected
    n_days = 181  # 2023-01-01 .. 2023-06-30
    for v in results["strategies"].values():
        assert v["metrics_net"]["n_days"] == n_days and v["period"]["start"] == "2023-01-01"
        assert v["metrics_net"]["cagr"] <= v["metrics_gross"]["cagr"]
    pairs = results["tests"]["pairwise"]
    assert len(pairs) == 19 * len(BATTERY)  # 9 pairs per objective x 2 + the benchmark pair
    assert all(p["p_holm"] is None or p["p_holm"] >= p["p_value"] - 1e-12 for p in pairs)
    assert {p["test"] for p in pairs} == set(BATTERY)
    # the primary family: gru vs the two baselines and the benchmark, per objective
    assert [(v["a"], v["b"]) for v in results["verdicts"]][:3] == [
        ("gru/max_sharpe", "historical_mean/max_sharpe"),
        ("gru/max_sharpe", "naive_persistence/max_sharpe"),
        ("gru/max_sharpe", "market_cap"),
    ]
    assert {v["verdict"] for v in results["verdicts"]} <= {
        "a better",
        "b better",
        "no detectable difference",
        "no difference",
        "undetermined",
    }
    assert all(v["min_detectable_gap"] > 0 for v in results["verdicts"])
    assert results["primary"]["declared"]["n_comparisons"] == 6
    jan = results["data"]["universe"][0]
    assert jan["month"] == "2023-01" and [c["coin_id"] for c in jan["constituents"]] == [
        "btc",
        "eth",
        "bnb",
        "xrp",
    ]
    # The run references its models in the registry instead of copying them (models.json).
    assert not list(run_dir.rglob("*.safetensors"))
    models = read_models_manifest(run_dir)
    assert results["forecasts"]["models"]["trained"] == len(models.models) > 0
    assert {m.forecaster for m in models.models} == {"gru"}
    assert results["forecasts"]["models"]["artifacts"]["artifact_dir"] == str(models.artifact_dir)
    for ref in models.models:
        path = ref.artifact.files(models.artifact_dir)["safetensors"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == ref.artifact.sha256["safetensors"]

    weights = pd.read_parquet(run_dir / "weights.parquet")
    sums = weights.groupby(["key", "date"])["weight"].sum()
    np.testing.assert_allclose(sums, 1.0, atol=1e-9)
    optimised = weights[weights["strategy"].isin(["gru", "historical_mean", "naive_persistence"])]
    assert optimised["weight"].max() <= 0.35 + 1e-9
    assert (optimised.groupby(["key", "date"]).size() >= 3).all()
    bench = weights[(weights["key"] == "market_cap") & (weights["date"] == "2022-12-31")].set_index("coin_id")
    caps = pd.DataFrame(jan["constituents"]).set_index("coin_id")["benchmark_weight"]
    pd.testing.assert_series_equal(bench["weight"].sort_index(), caps.sort_index(), check_names=False)

    returns = pd.read_parquet(run_dir / "returns.parquet")
    for key, g in returns.groupby("key"):
        total = float(np.prod(1 + g["return_net"]) - 1)
        assert total == pytest.approx(results["strategies"][key]["metrics_net"]["total_return"], rel=1e-9)

    store = Store(db)
    with store.engine.connect() as conn:
        run_ids = conn.execute(select(s.runs.c.run_id)).scalars().all()
        contrib = pd.DataFrame(conn.execute(select(s.daily_index_coin_contributions)).mappings().all())
    assert run_ids == [run_dir.name]
    assert store.count(s.portfolio_daily_returns) == len(expected) * n_days
    assert store.count(s.forecasts) == len(pd.read_parquet(run_dir / "forecasts.parquet"))
    bench_gross = returns[returns["key"] == "market_cap"].set_index("date")["return_gross"]
    daily = contrib.groupby(pd.to_datetime(contrib["date"]))["contribution"].sum()
    np.testing.assert_allclose(
        daily.reindex(bench_gross.index).to_numpy(), bench_gross.to_numpy(), atol=1e-12
    )

    html = (run_dir / "report.html").read_text()
    assert all(key in html for key in expected) and "Cumulative returns" in html
    assert "Diebold-Mariano" in html and (run_dir / "tearsheets").is_dir()

    # A rerun with the same config and data reuses every registered model: nothing is retrained
    # and the forecasts are byte-identical.
    registry = results["forecasts"]["models"]["registry"]
    assert registry["trained"] == registry["registrable"] > 0 and registry["reused"] == 0
    again = runner.invoke(
        app,
        ["run", "--config", str(cfg), "--out", str(out), "--database-url", db, "--data-dir", str(data_dir)],
    )
    assert again.exit_code == 0, again.output
    assert f"reused {registry['registrable']} of {registry['registrable']} models" in again.output
    (second,) = [p for p in _run_dirs(out) if p != run_dir]
    again_results = json.loads((second / "results.json").read_text())
    assert again_results["forecasts"]["models"]["registry"]["trained"] == 0
    assert (second / "forecasts.parquet").read_bytes() == (run_dir / "forecasts.parquet").read_bytes()
    assert read_models_manifest(second).models == models.models  # the same stored artifacts


def _run_dirs(out):
    """Run directories under ``out`` (not the model registry's ``models/`` or partial dirs)."""
    return [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "models"]
