"""Trading-stage benchmarks on the real data: cycle times and the paper account's parity with the backtest.

(a) one paper cycle of the default strategy (``gru/max_sharpe``, the study's recurrent settings)
    on the stored real data: cold (the quarter's models are trained and registered), warm (the
    next week: the registry serves them) and a rerun of the same period (sends nothing);
(b) a replay of ``--weeks`` consecutive weeks (``historical_mean/max_sharpe``), cycle by cycle with
    the store cut at each decision close, then the shadow backtest: seconds per cycle and the
    largest |account value - backtest value| at any decision close.

Usage: ``python benchmarks/trading.py [--part a|b ...] [--weeks 26] [--data-dir ../shared/data]``.
Timings are wall-clock on whatever machine runs it; report the machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

from kallos.config import load_config
from kallos.data import Store, ingest_data_dir, schema
from kallos.trading import Ledger, PaperVenue, Trader, account_periods
from kallos.trading.parity import compute_parity

warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=FutureWarning)


def _trader(store: Store, config, out: Path) -> Trader:
    venue = PaperVenue(config.backtest.cost_bps, config.backtest.slippage_bps)
    return Trader(store, config, venue, out_dir=out)


def part_a(data_dir: Path, work: Path) -> None:
    store = Store(f"sqlite:///{work / 'a.db'}")
    ingest_data_dir(store, data_dir)
    config = load_config(None, {"trading.ingest": []})
    rows = []
    for label, period in (("cold", "2026-02-08"), ("warm", "2026-02-15"), ("rerun", "2026-02-15")):
        t0 = time.perf_counter()
        result = _trader(store, config, work / "out-a").run(as_of=pd.Timestamp(period))
        rows.append((label, period, time.perf_counter() - t0, result.status, result.sent))
    print(f"(a) one paper cycle of {config.trading.strategy} on the stored real data")
    print(f"    {'cycle':<6} {'period':<11} {'seconds':>8}  status         sent")
    for label, period, seconds, status, sent in rows:
        print(f"    {label:<6} {period:<11} {seconds:8.1f}  {status:<14} {sent}")


def part_b(data_dir: Path, work: Path, weeks: int) -> None:
    source = Store(f"sqlite:///{work / 'b-source.db'}")
    ingest_data_dir(source, data_dir)
    market, coins = source.read_market_data(), source.read_coins()
    snapshots = source.read_table(schema.market_cap_snapshots)
    config = load_config(None, {"trading.strategy": "historical_mean/max_sharpe", "trading.ingest": []})
    last = pd.Timestamp("2026-01-25")
    first = last - pd.Timedelta(weeks=weeks)
    store = Store(f"sqlite:///{work / 'b.db'}")
    store.upsert(schema.coins, coins)
    loaded, seconds = pd.Timestamp.min, []
    for period in account_periods(first, last, config.backtest):
        new = (market["date"] > loaded) & (market["date"] <= period)
        snaps = (snapshots["snapshot_date"] > loaded) & (snapshots["snapshot_date"] <= period)
        store.upsert_many(
            {schema.daily_market_data: market[new], schema.market_cap_snapshots: snapshots[snaps]}
        )
        loaded = period
        t0 = time.perf_counter()
        result = _trader(store, config, work / "out-b").run(as_of=period)
        seconds.append(time.perf_counter() - t0)
        assert result.status == "done", result.message
    t0 = time.perf_counter()
    parity = compute_parity(store, "paper")
    shadow = time.perf_counter() - t0
    p = parity.periods.iloc[-1]
    ledger = Ledger(store)
    print(f"(b) {weeks}-week paper replay of {config.trading.strategy}, store cut at each decision close")
    print(
        f"    cycles {len(seconds)}, {sum(seconds) / len(seconds):.1f} s each (slowest {max(seconds):.1f} s)"
    )
    print(
        f"    shadow backtest {shadow:.1f} s; final value {p['nav_after']:.9f} "
        f"vs {p['nav_after_backtest']:.9f}"
    )
    print(
        f"    max |account - backtest| {parity.max_abs_difference:.3g} USDT "
        f"({parity.max_rel_difference:.3g} of the initial cash); ledger consistent: "
        f"{ledger.consistent(ledger.account('paper')) == {}}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", action="append", choices=["a", "b"])
    parser.add_argument("--weeks", type=int, default=26)
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("KALLOS_DATA_DIR", "../shared/data"))
    )
    args = parser.parse_args()
    parts = args.part or ["a", "b"]
    with tempfile.TemporaryDirectory(prefix="kallos-bench-trading-") as tmp:
        work = Path(tmp)
        if "a" in parts:
            part_a(args.data_dir, work)
        if "b" in parts:
            part_b(args.data_dir, work, args.weeks)


if __name__ == "__main__":
    main()
