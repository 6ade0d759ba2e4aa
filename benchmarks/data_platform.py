"""Time the data platform on the real data: PostgreSQL (COPY) beside SQLite (executemany).

Usage::

    python benchmarks/data_platform.py [--data-dir ../shared/data] [--pg-url postgresql://...]

Steps, each timed once per backend on a fresh database (a new PostgreSQL schema, dropped at
the end, or a temporary SQLite file):

(a) full import of the three datasets (CoinGecko, Binance, CoinMarketCap): open + migrate the
    store, parse and validate the files, write every row in one transaction. Target < 30 s.
(b) incremental one-day update: the last day of every coin and source is removed from the
    market table and the indicator table, then written again: upsert of those market rows
    plus :func:`update_indicators` computing and writing only the missing day. Target < 5 s.
(c) every indicator for every coin over its whole history, computed and written
    (:func:`update_indicators` on an empty indicator table). Target < 10 s.

Panel building (cleaning) is shown for context; it is the same for both backends.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd
from sqlalchemy import create_engine, delete, text, tuple_

from kallos.config import QualityConfig
from kallos.data import Store, build_panel, ingest_data_dir
from kallos.data import schema as s
from kallos.features.store import daily_technical_indicators, update_indicators

TARGETS = {"a": 30.0, "b": 5.0, "c": 10.0}


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _remove_last_day(store: Store, market: pd.DataFrame) -> pd.DataFrame:
    """Delete each coin's and source's last market row and each coin's last indicator row."""
    last = market.loc[market.groupby(["coin_id", "source"])["date"].idxmax()]
    t, ind = s.daily_market_data, daily_technical_indicators
    keys = [(r.coin_id, r.date.date(), r.source) for r in last.itertuples()]
    coin_last = last.groupby("coin_id")["date"].max()
    ind_keys = [(coin, day.date()) for coin, day in coin_last.items()]
    with store.engine.begin() as conn:
        conn.execute(delete(t).where(tuple_(t.c.coin_id, t.c.date, t.c.source).in_(keys)))
        conn.execute(delete(ind).where(tuple_(ind.c.coin_id, ind.c.date).in_(ind_keys)))
    return last.drop(columns="ingested_at")


def run_backend(store_factory, data_dir: Path) -> dict[str, tuple[float, str]]:
    out: dict[str, tuple[float, str]] = {}

    def import_all():
        store = store_factory()
        return store, ingest_data_dir(store, data_dir)

    (store, report), secs = _timed(import_all)
    out["a"] = (secs, f"{sum(report.rows.values()):,} rows")
    market, coins = store.read_market_data(), store.read_coins()
    panel, secs = _timed(lambda: build_panel(market, coins, QualityConfig()))
    out["panel"] = (secs, f"{len(panel.coins)} coins x {len(panel.dates):,} days")

    n, secs = _timed(lambda: update_indicators(store, panel))
    out["c"] = (secs, f"{n:,} rows x {len(daily_technical_indicators.columns) - 2} indicators")

    last_rows = _remove_last_day(store, market)

    def one_day():
        written = store.upsert(s.daily_market_data, last_rows)
        return written, update_indicators(store, panel)

    (n_market, n_ind), secs = _timed(one_day)
    out["b"] = (secs, f"{n_market} market rows + {n_ind} indicator rows")
    store.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=os.environ.get("KALLOS_DATA_DIR", "../shared/data"))
    parser.add_argument(
        "--pg-url", default=os.environ.get("KALLOS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args()
    data_dir = Path(args.data_dir)

    schema_name = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        pg = run_backend(lambda: Store(args.pg_url, schema_name=schema_name), data_dir)
    finally:
        engine = create_engine("postgresql+psycopg://" + args.pg_url.split("://", 1)[1])
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema_name}" CASCADE'))
        engine.dispose()
    with tempfile.TemporaryDirectory() as tmp:
        lite = run_backend(lambda: Store(f"sqlite:///{Path(tmp) / 'k.db'}"), data_dir)

    labels = {
        "a": "(a) full import, 3 datasets",
        "panel": "    build panel (context)",
        "c": "(c) all indicators, all coins",
        "b": "(b) incremental one-day update",
    }
    print(f"{'step':34} {'PostgreSQL s':>13} {'SQLite s':>9} {'target s':>9}  rows (PostgreSQL)")
    for key, label in labels.items():
        target = f"< {TARGETS[key]:.0f}" if key in TARGETS else ""
        print(f"{label:34} {pg[key][0]:13.2f} {lite[key][0]:9.2f} {target:>9}  {pg[key][1]}")


if __name__ == "__main__":
    main()
