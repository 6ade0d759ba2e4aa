"""Fixtures for the live-source tests: slices of the real data served by a local stub."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from kallos.data.live import RetryPolicy
from kallos.testing import MarketStub

# 2021-01-01 .. 2021-01-20 (20 close dates) of BTC and ETH, from the shared real data.
START, END = dt.date(2021, 1, 1), dt.date(2021, 1, 20)
# "Now" for the tests: the day after END, so END is yesterday's close.
NOW = dt.datetime(2021, 1, 21, 12, tzinfo=dt.UTC)


def coingecko_raw(data_dir, ticker: str) -> pd.DataFrame:
    """Raw CSV-export rows whose close dates fall in [START, END] (snapped one day later), plus a
    margin of 5 days either side so range filtering is exercised."""
    raw = pd.read_csv(data_dir / "coingecko_daily_top50" / "original" / f"{ticker}-usd-max.csv.gz")
    raw["stamp"] = pd.to_datetime(raw["snapped_at"], utc=True)
    lo = pd.Timestamp(START, tz="UTC") - pd.Timedelta(days=4)
    hi = pd.Timestamp(END, tz="UTC") + pd.Timedelta(days=6)
    return raw[(raw["stamp"] >= lo) & (raw["stamp"] <= hi)].reset_index(drop=True)


def binance_raw(data_dir, coin: str) -> pd.DataFrame:
    bn = pd.read_parquet(data_dir / "binance_spot_daily" / "long.parquet")
    lo, hi = pd.Timestamp(START) - pd.Timedelta(days=5), pd.Timestamp(END) + pd.Timedelta(days=5)
    sel = bn[(bn["coin_id"] == coin) & (bn["date"] >= lo) & (bn["date"] <= hi)]
    return sel[["date", "open", "high", "low", "close", "volume"]].reset_index(drop=True)


@pytest.fixture(scope="session")
def raw_tables(data_dir):
    return {
        "coingecko": {"bitcoin": coingecko_raw(data_dir, "btc"), "ethereum": coingecko_raw(data_dir, "eth")},
        "binance": {"BTCUSDT": binance_raw(data_dir, "btc"), "ETHUSDT": binance_raw(data_dir, "eth")},
    }


@pytest.fixture
def stub(raw_tables):
    s = MarketStub(
        coingecko={k: v.copy() for k, v in raw_tables["coingecko"].items()},
        binance={k: v.copy() for k, v in raw_tables["binance"].items()},
    )
    with s:
        yield s


class SleepLog:
    """Records requested sleeps and sleeps not at all (retry waits in tests cost nothing)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleep_log() -> SleepLog:
    return SleepLog()


@pytest.fixture
def fast_policy() -> RetryPolicy:
    return RetryPolicy(
        calls_per_minute=0, timeout_s=0.5, max_attempts=4, max_total_s=20, backoff_initial_s=0.01
    )
