"""The store on SQLite and on the live PostgreSQL server (CI runs both)."""

from __future__ import annotations

import datetime as dt
import uuid

import pandas as pd
import pytest
from sqlalchemy import text

from kallos.data import Store, ingest
from kallos.data import schema as s
from kallos.exceptions import StoreError

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _rows(day: str, close: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "coin_id": ["btc"],
            "date": [pd.Timestamp(day)],
            "source": ["coingecko"],
            "close": [close],
            "market_cap": [1e9],
            "volume": [None],
        }
    )


def exercise(store: Store, data_dir) -> None:
    """Behaviour every backend must share."""
    store.create_schema()
    store.create_schema()  # idempotent
    assert store.is_empty()
    src = data_dir / "coingecko_daily_top50/original/ltc-usd-max.csv.gz"
    a = ingest(store, "coingecko", src)
    b = ingest(store, "coingecko", src)
    assert a.rows["daily_market_data"] == b.rows["daily_market_data"] == store.count(s.daily_market_data)
    ltc = store.read_market_data().set_index("date")
    assert ltc.loc["2020-12-31", "close"] == pytest.approx(124.7, rel=0.01)
    assert ltc["market_cap"].isna().sum() == 1  # one zero market cap stored as NULL
    # An upsert replaces values of an existing key instead of adding a row.
    store.upsert(s.daily_market_data, _rows("2020-12-31", 999.0).assign(coin_id="ltc"))
    assert store.read_market_data().set_index("date").loc["2020-12-31", "close"] == 999.0
    assert store.count(s.daily_market_data) == a.rows["daily_market_data"]
    # A failing multi-table write leaves nothing behind.
    before = store.count(s.runs)
    bad_weights = pd.DataFrame(
        {
            "run_id": ["r"],
            "strategy": ["x"],
            "objective": ["o"],
            "date": [None],
            "coin_id": ["btc"],
            "weight": [0.5],
        }
    )
    with pytest.raises(StoreError, match="nothing was stored"):
        store.write_run(
            {
                "run_id": "r",
                "created_at": dt.datetime.now(dt.UTC),
                "kallos_version": "t",
                "config_hash": "c",
                "data_hash": "d",
                "config": {},
                "summary": {},
                "output_dir": "/x",
                "wall_seconds": 1.0,
            },
            {s.portfolio_weights: bad_weights},
        )
    assert store.count(s.runs) == before
    cov = store.coverage()
    assert list(cov.columns) == ["source", "coin_id", "first", "last", "rows"]
    assert cov.iloc[0]["first"] == pd.Timestamp("2013-04-27")


def test_sqlite_store(tmp_path, data_dir):
    exercise(Store(f"sqlite:///{tmp_path / 'nested' / 'k.db'}"), data_dir)


@pytest.mark.postgres
def test_postgresql_store(data_dir):
    """Runs against the live server; CI starts it (see .ci/run) and never skips this test."""
    schema_name = f"kallos_test_{uuid.uuid4().hex[:8]}"
    admin = Store(PG_URL)
    with admin.engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema_name}"'))
    try:
        store = Store(PG_URL, schema_name=schema_name)
        assert store.dialect == "postgresql"
        exercise(store, data_dir)
        store.dispose()
    finally:
        with admin.engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema_name}" CASCADE'))
        admin.dispose()


def test_unreachable_database_says_how_to_fix():
    with pytest.raises(StoreError, match="pg_ctlcluster"):
        Store("postgresql://postgres@127.0.0.1:1/none")
