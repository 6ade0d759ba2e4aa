"""`kallos data check` exit codes and JSON, and a small `kallos run --universe cmc_snapshots` smoke."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kallos.cli.app import app
from kallos.data import Store
from kallos.data import schema as s

runner = CliRunner()


@pytest.fixture()
def small_db(tmp_path):
    """A store with one coin, two sources, a planted two-day gap and a 5-day missing market cap."""
    dates = pd.date_range("2021-01-01", periods=60)
    close = 100 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.02, len(dates))))
    cg = pd.DataFrame(
        {"coin_id": "aaa", "date": dates, "source": "coingecko", "close": close, "market_cap": close * 1e6}
    )
    cg.loc[20:24, "market_cap"] = np.nan
    cg = cg.drop(index=[30, 31])
    bn = pd.DataFrame({"coin_id": "aaa", "date": dates, "source": "binance", "close": close * 1.001})
    url = f"sqlite:///{tmp_path / 'small.db'}"
    store = Store(url)
    store.create_schema()
    store.upsert(s.daily_market_data, pd.concat([cg, bn], ignore_index=True))
    store.dispose()
    return url


def test_check_passes_and_writes_json(small_db, tmp_path):
    path = tmp_path / "report" / "check.json"
    res = runner.invoke(app, ["data", "check", "--database-url", small_db, "--json", str(path)])
    assert res.exit_code == 0, res.output
    doc = json.loads(path.read_text())
    assert doc["ok"] is True and doc["counts"]["gap"] == 1 and doc["counts"]["missing_market_cap"] == 1
    gap = next(f for f in doc["findings"] if f["rule"] == "gap")
    assert (gap["coin_id"], gap["source"], gap["start"], gap["end"]) == (
        "aaa",
        "coingecko",
        "2021-01-31",
        "2021-02-01",
    )
    cov = {(c["coin_id"], c["source"]): c for c in doc["coverage"]}
    assert cov[("aaa", "coingecko")]["missing_days"] == 2 and cov[("aaa", "binance")]["rows"] == 60


def test_check_exceeding_a_limit_exits_1(small_db, tmp_path):
    path = tmp_path / "check.json"
    res = runner.invoke(
        app, ["data", "check", "--database-url", small_db, "--json", str(path), "--max-findings", "gap=0"]
    )
    assert res.exit_code == 1, res.output
    assert "gap 1 > 0" in res.output
    assert json.loads(path.read_text())["exceeded"] == {"gap": {"findings": 1, "allowed": 0}}


def test_check_bad_input_exits_2(small_db, tmp_path, monkeypatch):
    res = runner.invoke(app, ["data", "check", "--database-url", small_db, "--max-findings", "gaps=1"])
    assert res.exit_code == 2 and "expected RULE=N" in res.output
    monkeypatch.delenv("KALLOS_DATA_DIR", raising=False)
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    res = runner.invoke(app, ["data", "check", "--database-url", empty, "--out", str(tmp_path)])
    assert res.exit_code == 2 and "holds no market data" in res.output
    assert not (tmp_path / "empty.db").exists()  # issue 10.11: no new database with the full schema
    bad = tmp_path / "bad.toml"
    bad.write_text("[quality]\nstale_run_days = 1\n")
    res = runner.invoke(app, ["data", "check", "--database-url", small_db, "--config", str(bad)])
    assert res.exit_code == 2 and "quality.stale_run_days" in res.output


TINY_CMC_STUDY = """
n_jobs = 1
[universe]
top_n = 4
min_history_days = 365
[backtest]
start = 2022-02-01
end = 2022-03-31
rebalance = "monthly"
[forecast]
forecasters = ["historical_mean", "naive_persistence"]
[portfolio]
objectives = ["max_sharpe"]
"""


@pytest.mark.slow
def test_run_with_cmc_universe_smoke(tmp_path, real_store):
    db = tmp_path / "kallos.db"
    shutil.copy(real_store.url.removeprefix("sqlite:///"), db)
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY_CMC_STUDY)
    out = tmp_path / "out"
    res = runner.invoke(
        app,
        [
            *("run", "--config", str(cfg), "--out", str(out), "--database-url", f"sqlite:///{db}"),
            *("--universe", "cmc_snapshots"),
        ],
    )
    assert res.exit_code == 0, res.output
    (run_dir,) = [p for p in out.iterdir() if not p.name.startswith(".")]
    doc = json.loads((run_dir / "results.json").read_text())
    u = doc["universe"]
    assert u["method"] == "cmc_snapshots" and u["top_n"] == 4
    feb = [c for c in u["constituents"] if c["month"] == "2022-02"]
    assert [c["coin_id"] for c in feb] == ["btc", "eth", "bnb", "sol"]
    assert all(c["mcap_source"] == "coingecko market_cap" and c["in_coingecko"] for c in feb)
    assert feb[0]["snapshot_date"] == "2022-01-01" and sum(
        c["benchmark_weight"] for c in feb
    ) == pytest.approx(1)
    assert u["mcap_sources"]["btc"] == "coingecko market_cap"
    assert u["reconciliation"]["threshold"] == 0.02
    assert {f["month"][:4] for f in u["reconciliation"]["flagged"]} <= {"2017", "2018"}
    assert doc["data"]["universe"][0]["month"] == "2022-02"  # the existing key still works


DELISTING_STUDY = """
n_jobs = 1
[universe]
top_n = 20
[backtest]
start = 2024-09-01
end = 2024-10-31
[forecast]
forecasters = ["historical_mean", "naive_persistence"]
[portfolio]
objectives = ["max_sharpe"]
"""


@pytest.mark.slow
def test_cmc_member_whose_prices_end_mid_month_is_dropped_not_fatal(tmp_path, real_store):
    """MATIC ranks in CMC's top 20 for September 2024 but its Binance prices end on 2024-09-09
    (the POL migration): it is a member, is not forecast or bought after its last close, and
    the run completes; the report lists it as a constituent absent from CoinGecko."""
    db = tmp_path / "kallos.db"
    shutil.copy(real_store.url.removeprefix("sqlite:///"), db)
    cfg = tmp_path / "delisting.toml"
    cfg.write_text(DELISTING_STUDY)
    out = tmp_path / "out"
    res = runner.invoke(
        app,
        [
            *("run", "--config", str(cfg), "--out", str(out), "--database-url", f"sqlite:///{db}"),
            *("--universe", "cmc_snapshots"),
        ],
    )
    assert res.exit_code == 0, res.output
    (run_dir,) = [
        p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "models"
    ]
    doc = json.loads((run_dir / "results.json").read_text())
    matic = [c for c in doc["universe"]["constituents"] if c["coin_id"] == "matic"]
    assert [c["month"] for c in matic] == ["2024-09"]
    assert not matic[0]["in_coingecko"] and matic[0]["mcap_source"].startswith("binance close")
    forecasts = pd.read_parquet(run_dir / "forecasts.parquet")
    last_matic = forecasts.loc[forecasts["coin_id"] == "matic", "as_of"].max()
    assert pd.Timestamp(last_matic) <= pd.Timestamp("2024-09-12")
    weights = pd.read_parquet(run_dir / "weights.parquet")
    late = weights[(weights["coin_id"] == "matic") & (weights["date"] > "2024-09-12")]
    assert (late["weight"] == 0).all()
    assert "matic" in (run_dir / "report.html").read_text()
