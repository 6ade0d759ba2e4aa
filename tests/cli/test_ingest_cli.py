"""``kallos ingest`` with live sources (against the local stub) and the CSV path."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from kallos.cli.app import app
from kallos.data import Store
from kallos.testing import MarketStub

runner = CliRunner()
SECRET = "CG-demo-s3cr3t-42"


@pytest.fixture(scope="module")
def tables(data_dir):
    bn = pd.read_parquet(data_dir / "binance_spot_daily" / "long.parquet")
    bn = bn[(bn["coin_id"] == "btc") & (bn["date"] >= "2021-01-01") & (bn["date"] <= "2021-01-25")]
    raw = pd.read_csv(data_dir / "coingecko_daily_top50" / "original" / "btc-usd-max.csv.gz")
    raw["stamp"] = pd.to_datetime(raw["snapped_at"], utc=True)
    raw = raw[(raw["stamp"] >= "2021-01-01") & (raw["stamp"] <= "2021-01-25")]
    cols = ["date", "open", "high", "low", "close", "volume"]
    return {"BTCUSDT": bn[cols].reset_index(drop=True)}, {"bitcoin": raw.reset_index(drop=True)}


@pytest.fixture
def stub(tables):
    with MarketStub(binance=tables[0], coingecko=tables[1]) as s:
        yield s


def invoke(*args: str, **kw):
    return runner.invoke(app, ["ingest", *args], **kw)


def test_live_binance_then_incremental_noop(stub, tmp_path):
    db = f"sqlite:///{tmp_path / 'k.db'}"
    live = ["--source", "binance", "--database-url", db, "--base-url", stub.url, "--page-limit", "5"]
    res = invoke(*live, "--coins", "btc", "--start", "2021-01-01", "--end", "2021-01-20")
    assert res.exit_code == 0, res.output
    assert "binance btc: 20 rows upserted for 2021-01-01..2021-01-20" in res.output
    assert "in 4 chunk(s)" in res.output
    market = Store(db).read_market_data()
    assert len(market) == 20 and market["date"].is_unique and market["ingested_at"].notna().all()
    n = len(stub.calls("bn_klines"))
    res = invoke(*live, "--end", "2021-01-20")  # coins default to those stored
    assert res.exit_code == 0, res.output
    assert "btc: up to date (last 2021-01-20)" in res.output
    assert len(stub.calls("bn_klines")) == n
    res = invoke(*live, "--end", "2021-01-22")
    assert "binance btc: 2 rows upserted for 2021-01-21..2021-01-22" in res.output


def test_live_coingecko_demo_key_and_demo_limit(stub, tmp_path, monkeypatch):
    monkeypatch.delenv("COINGECKO_PRO_API_KEY", raising=False)
    monkeypatch.setenv("COINGECKO_DEMO_API_KEY", SECRET)
    stub.api_key, stub.key_header = SECRET, "x-cg-demo-api-key"
    db = f"sqlite:///{tmp_path / 'k.db'}"
    live = ["--source", "coingecko", "--database-url", db, "--base-url", f"{stub.url}/api/v3"]
    res = invoke(*live, "--coins", "btc=bitcoin", "--start", "2021-01-01", "--end", "2021-01-10")
    assert res.exit_code == 0, res.output
    assert "coingecko btc: 10 rows upserted" in res.output
    assert stub.calls("cg_range")[0].headers["x-cg-demo-api-key"] == SECRET
    market = Store(db).read_market_data()
    # the data README's sanity value: CoinGecko BTC dated 2020-12-31 = 29,022 USD lies before the span;
    # the row dated 2021-01-01 is the snapshot of 2021-01-02 00:00 UTC
    raw = stub.coingecko["bitcoin"]
    snap = raw.loc[raw["stamp"] == pd.Timestamp("2021-01-02", tz="UTC"), "price"].item()
    assert market.loc[market["date"] == "2021-01-01", "close"].item() == pytest.approx(snap)

    stub.demo_oldest = pd.Timestamp("2021-01-15").date()
    res = invoke(*live, "--coins", "eth=ethereum", "--start", "2021-01-01", "--end", "2021-01-10")
    assert res.exit_code == 2
    assert "Demo plan serves only the last 365 days" in res.output
    assert SECRET not in res.output


def test_bad_live_option_is_a_clear_error(tmp_path):
    db = f"sqlite:///{tmp_path / 'k.db'}"
    res = invoke("--source", "binance", "--database-url", db, "--start", "2021-13-01")
    assert res.exit_code == 2
    assert "--start '2021-13-01': expected a date YYYY-MM-DD" in " ".join(res.output.split())


def test_csv_source_reads_a_data_directory(tmp_path, data_dir):
    sub = tmp_path / "data" / "coingecko_daily_top50" / "original"
    sub.mkdir(parents=True)
    raw = pd.read_csv(data_dir / "coingecko_daily_top50" / "original" / "btc-usd-max.csv.gz").head(30)
    raw.to_csv(sub / "btc-usd-max.csv", index=False)
    db = f"sqlite:///{tmp_path / 'k.db'}"
    res = invoke("--source", "csv", "--path", str(tmp_path / "data"), "--database-url", db)
    assert res.exit_code == 0, res.output
    assert "daily_market_data: 30 rows upserted" in res.output
    assert Store(db).read_market_data()["ingested_at"].notna().all()
