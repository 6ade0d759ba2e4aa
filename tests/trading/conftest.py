"""Fixtures of the trading tests: small real-data stores, a paper trader and a stubbed Binance testnet."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest

from kallos.config import load_config
from kallos.data import Store, schema
from kallos.data.live import RetryPolicy
from kallos.testing import MarketStub, SpotExchange, SpotMarket
from kallos.trading import PaperVenue, Trader, cycle_at
from kallos.trading.binance import BinanceVenue

COINS = ("btc", "eth", "xrp", "bnb", "sol")
END = pd.Timestamp("2026-01-11")  # last close the small store holds
# Decision closes of the small tests: two Sundays, the quarter end (a new fold), two Sundays.
PERIODS = [pd.Timestamp(d) for d in ("2025-12-21", "2025-12-28", "2025-12-31", "2026-01-04", "2026-01-11")]
KEY, SECRET = "stub-key-6f1d2c", "stub-secret-9a7e4b0c"


def small_config(**overrides):
    """Top-3 universe of the five coins, historical-mean max-Sharpe, no live ingestion."""
    base = {
        "n_jobs": 1,
        "universe.top_n": 3,
        "trading.strategy": "historical_mean/max_sharpe",
        "trading.ingest": [],
    }
    return load_config(None, base | overrides)


@pytest.fixture(scope="session")
def small_db(tmp_path_factory, real_store) -> Path:
    """A SQLite file with the five coins' real rows up to :data:`END` (both sources)."""
    path = tmp_path_factory.mktemp("small") / "kallos.db"
    store = Store(f"sqlite:///{path}")
    market = real_store.read_market_data()
    keep = market["coin_id"].isin(COINS) & (market["date"] <= END)
    coins = real_store.read_coins()
    store.upsert_many(
        {schema.daily_market_data: market[keep], schema.coins: coins[coins["coin_id"].isin(COINS)]}
    )
    store.dispose()
    return path


def copy_store(src: Path, tmp_path: Path) -> Store:
    dst = tmp_path / "kallos.db"
    shutil.copy(src, dst)
    return Store(f"sqlite:///{dst}")


@pytest.fixture
def small_store(small_db, tmp_path) -> Store:
    """A fresh copy of the small store (the ledger starts empty)."""
    store = copy_store(small_db, tmp_path)
    yield store
    store.dispose()


def paper_trader(store: Store, tmp_path: Path, config=None, **kwargs) -> Trader:
    config = config or small_config()
    venue = PaperVenue(config.backtest.cost_bps, config.backtest.slippage_bps, config.trading.quote)
    return Trader(store, config, venue, mode="paper", out_dir=tmp_path / "out", **kwargs)


class Clock:
    """A settable UTC clock: the cycle of ``period`` runs at its scheduled time."""

    def __init__(self, period: pd.Timestamp, hhmm: str = "00:30") -> None:
        self.now = cycle_at(period, hhmm)

    def __call__(self) -> dt.datetime:
        return self.now


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def testnet():
    """A stubbed Binance spot testnet holding 10,000 USDT, with the five coins' pairs."""
    spot = SpotExchange(
        KEY,
        SECRET,
        markets={f"{c.upper()}USDT": SpotMarket(c.upper(), "USDT", 1.0) for c in COINS},
        balances={"USDT": 10_000.0},
    )
    with MarketStub(spot=spot) as stub:
        yield stub


def sandbox_trader(store: Store, tmp_path: Path, stub: MarketStub, period: pd.Timestamp, config=None, **kw):
    """A sandbox trader on the stub, its clock at ``period``'s cycle time, the stub priced at the closes."""
    config = config or small_config(**{"trading.fill_timeout_s": 0.2})
    sleeps = kw.pop("sleep", Sleeps())
    policy = RetryPolicy(
        calls_per_minute=0, timeout_s=kw.pop("timeout_s", 2.0), max_attempts=4, backoff_initial_s=0.01
    )
    venue = BinanceVenue("sandbox", KEY, SECRET, base_url=stub.url, policy=policy, sleep=sleeps)
    return Trader(
        store,
        config,
        venue,
        mode="sandbox",
        out_dir=tmp_path / "out",
        clock=Clock(period),
        sleep=sleeps,
        poll_s=0.05,
        **kw,
    )


def price_stub(stub: MarketStub, prices: dict[str, float]) -> None:
    """Set the stub's prices (coin -> price) to the decision closes."""
    for coin, price in prices.items():
        pair = f"{coin.upper()}USDT"
        if pair in stub.spot.markets:
            stub.spot.markets[pair].price = price
