"""26 weeks traded cycle by cycle in paper mode on the real data, the store cut at each decision close.

Before each cycle the store receives the rows up to that decision close and nothing later (market
data and CoinMarketCap snapshots), as a live store would have them. The final account value equals
the backtest's over the same weeks (``kallos trade report``'s shadow backtest, run on the final
store) to 1e-9, at every decision close, before and after trading.
"""

from __future__ import annotations

import time

import pandas as pd
import pytest

from kallos.config import load_config
from kallos.data import Store, schema
from kallos.trading import Ledger, PaperVenue, Trader, account_periods
from kallos.trading.parity import compute_parity

pytestmark = pytest.mark.slow

FIRST = pd.Timestamp("2025-07-27")  # a Sunday; 26 weeks later is 2026-01-25
WEEKS = 26


def test_26_week_replay_equals_the_backtest(real_store, tmp_path):
    config = load_config(
        None, {"n_jobs": 1, "trading.strategy": "historical_mean/max_sharpe", "trading.ingest": []}
    )
    last = FIRST + pd.Timedelta(weeks=WEEKS)
    periods = account_periods(FIRST, last, config.backtest)
    assert (
        periods[0] == FIRST and periods[-1] == last and len(periods) == WEEKS + 1 + 4
    )  # + month ends not on a Sunday
    market = real_store.read_market_data()
    snapshots = real_store.read_table(schema.market_cap_snapshots)
    store = Store(f"sqlite:///{tmp_path / 'kallos.db'}")
    store.upsert(schema.coins, real_store.read_coins())
    loaded = pd.Timestamp.min
    seconds = []
    for period in periods:
        new = (market["date"] > loaded) & (market["date"] <= period)
        snaps = (snapshots["snapshot_date"] > loaded) & (snapshots["snapshot_date"] <= period)
        store.upsert_many(
            {schema.daily_market_data: market[new], schema.market_cap_snapshots: snapshots[snaps]}
        )
        loaded = period
        assert pd.Timestamp(store.coverage()["last"].max()) == period  # nothing after the close
        t0 = time.perf_counter()
        venue = PaperVenue(config.backtest.cost_bps, config.backtest.slippage_bps)
        result = Trader(store, config, venue, out_dir=tmp_path / "out").run(as_of=period)
        seconds.append(time.perf_counter() - t0)
        assert result.status == "done", (period, result.message)
    parity = compute_parity(store, "paper")
    p = parity.periods
    assert len(p) == len(periods) and set(p["status"]) == {"done"}
    final = p.iloc[-1]
    print(
        f"\n{len(periods)} cycles, {sum(seconds):.0f} s ({max(seconds):.1f} s the slowest); final value "
        f"{final['nav_after']:.6f} vs backtest {final['nav_after_backtest']:.6f}; "
        f"max |difference| {parity.max_abs_difference:.3g} USDT"
    )
    assert abs(final["nav_after"] - final["nav_after_backtest"]) < 1e-9
    assert parity.max_abs_difference < 1e-9
    assert (p["fees"] - p["cost_backtest"]).abs().max() < 1e-9
    assert final["nav"] != p["nav"].iloc[0]  # the account did move
    ledger = Ledger(store)
    assert ledger.consistent(ledger.account("paper")) == {}
