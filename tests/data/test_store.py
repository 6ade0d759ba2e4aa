"""The store on SQLite and on the live PostgreSQL server: the same tests, both backends (CI runs both).

``any_store`` / ``backend_url`` (tests/conftest.py) give a fresh database per test: a SQLite file
or a unique PostgreSQL schema that is dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, text

from kallos.data import Store, ingest, migrations
from kallos.data import schema as s
from kallos.exceptions import DataValidationError, StoreError

LTC = "coingecko_daily_top50/original/ltc-usd-max.csv.gz"


def _rows(day: str, close: float, coin: str = "btc") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "coin_id": [coin],
            "date": [pd.Timestamp(day)],
            "source": ["coingecko"],
            "close": [close],
            "market_cap": [1e9],
            "volume": [None],
        }
    )


def _run_row() -> dict:
    return {
        "run_id": "r",
        "created_at": dt.datetime.now(dt.UTC),
        "kallos_version": "t",
        "config_hash": "c",
        "data_hash": "d",
        "config": {"a": [1, 2]},
        "summary": {},
        "output_dir": "/x",
        "wall_seconds": 1.0,
    }


def test_opening_brings_schema_to_head(any_store):
    assert any_store.current_revision() == migrations.head_revision()
    any_store.create_schema()  # idempotent
    assert any_store.is_empty()


def test_ingest_is_idempotent_and_upserts_replace(any_store, data_dir):
    store = any_store
    a = ingest(store, "coingecko", data_dir / LTC)
    first = store.read_market_data()
    b = ingest(store, "coingecko", data_dir / LTC)
    assert a.rows["daily_market_data"] == b.rows["daily_market_data"] == store.count(s.daily_market_data)
    again = store.read_market_data()
    pd.testing.assert_frame_equal(again.drop(columns="ingested_at"), first.drop(columns="ingested_at"))
    assert (again["ingested_at"] >= first["ingested_at"]).all()  # ingest stamps the time it wrote
    ltc = first.set_index("date")
    assert ltc.loc["2020-12-31", "close"] == pytest.approx(124.7, rel=0.01)
    assert ltc["market_cap"].isna().sum() == 1  # one zero market cap stored as NULL
    assert ltc["ingested_at"].notna().all()  # server default on rows written without it
    # An upsert replaces values of an existing key instead of adding a row.
    store.upsert(s.daily_market_data, _rows("2020-12-31", 999.0, coin="ltc"))
    assert store.read_market_data().set_index("date").loc["2020-12-31", "close"] == 999.0
    assert store.count(s.daily_market_data) == a.rows["daily_market_data"]
    cov = store.coverage()
    assert list(cov.columns) == ["source", "coin_id", "first", "last", "rows"]
    assert cov.iloc[0]["first"] == pd.Timestamp("2013-04-27")
    assert cov.iloc[0]["rows"] == a.rows["daily_market_data"]


def test_failing_multi_table_write_leaves_nothing(any_store):
    store = any_store
    store.upsert(s.daily_market_data, _rows("2021-01-01", 1.0))
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
        store.upsert_many({s.daily_market_data: _rows("2021-01-02", 2.0), s.portfolio_weights: bad_weights})
    with pytest.raises(StoreError, match="nothing was stored"):
        store.write_run(_run_row(), {s.portfolio_weights: bad_weights})
    assert store.count(s.runs) == 0
    assert store.count(s.daily_market_data) == 1  # the first table's rows of the failed call rolled back


def test_values_round_trip_exactly(any_store):
    """NULLs, awkward strings, float precision, integer columns given as floats, timestamps."""
    store = any_store
    coins = pd.DataFrame(
        {
            "coin_id": ["a", "b", "c"],
            "symbol": [None, "B,1", 'q"x'],
            "name": ["line\nbreak", "", "tab\there \\N-ish"],
            "category": ["crypto"] * 3,
            "source": ["cmc"] * 3,
        }
    )
    snaps = pd.DataFrame(
        {
            "snapshot_date": pd.to_datetime(["2024-01-01 07:30", "2024-01-01 23:59"]),
            "rank": [1.0, 2.0],  # float dtype into INTEGER
            "name": ["x", "y"],
            "symbol": ["X", "Y"],
            "market_cap": [np.pi * 1e12, np.nan],
            "price": [1 / 3, 5e-324],
            "circulating_supply": [None, 1.0],
            "volume_24h": [0.1 + 0.2, -0.0],
            "source": ["cmc", "cmc"],
        }
    )
    store.upsert_many({s.coins: coins, s.market_cap_snapshots: snaps})
    got = store.read_coins().set_index("coin_id").loc[["a", "b", "c"]]
    assert pd.isna(got["symbol"].iloc[0]) and got["symbol"].iloc[1:].tolist() == ["B,1", 'q"x']
    assert got["name"].tolist() == ["line\nbreak", "", "tab\there \\N-ish"]
    back = store.read_table(s.market_cap_snapshots).sort_values("rank", ignore_index=True)
    assert back["rank"].tolist() == [1, 2]
    assert back["market_cap"].iloc[0] == np.pi * 1e12 and np.isnan(back["market_cap"].iloc[1])
    assert back["price"].tolist() == [1 / 3, 5e-324]
    assert back["volume_24h"].iloc[0] == 0.1 + 0.2
    assert (back["snapshot_date"] == pd.Timestamp("2024-01-01")).all()


def test_ingested_at_given_is_kept_and_duplicate_keys_last_wins(any_store):
    store = any_store
    stamp = pd.Timestamp("2025-06-01 12:00", tz="UTC")
    frame = pd.concat([_rows("2021-01-01", 1.0), _rows("2021-01-01", 2.0)], ignore_index=True)
    frame["ingested_at"] = stamp
    assert store.upsert(s.daily_market_data, frame) == 2
    got = store.read_market_data()
    assert len(got) == 1 and got["close"].iloc[0] == 2.0
    assert pd.Timestamp(got["ingested_at"].iloc[0]).tz_localize(None) == stamp.tz_localize(None)
    # A later frame without ingested_at keeps the stored time; one with it replaces it.
    store.upsert(s.daily_market_data, _rows("2021-01-01", 3.0))
    assert store.read_market_data()["ingested_at"].iloc[0] == got["ingested_at"].iloc[0]
    later = pd.Timestamp("2025-07-01 08:30", tz="Europe/Zurich")  # stored as UTC
    store.upsert(s.daily_market_data, _rows("2021-01-01", 4.0).assign(ingested_at=later))
    back = pd.Timestamp(store.read_market_data()["ingested_at"].iloc[0])
    assert back.tz_localize(None) == later.tz_convert("UTC").tz_localize(None)


_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)
_MARKET_ROW = st.tuples(
    st.sampled_from(["btc", "eth"]) | _TEXT,
    st.dates(dt.date(1990, 1, 1), dt.date(2100, 12, 31)),
    st.sampled_from(["coingecko", "binance"]),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    _FLOAT,
    _FLOAT,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_MARKET_ROW, min_size=1, max_size=15))
def test_random_rows_round_trip_last_key_wins(any_store, rows):
    """Property: any values come back exactly, NaN as NULL, and of duplicate keys the later wins."""
    t = s.daily_market_data
    with any_store.engine.begin() as conn:
        conn.execute(delete(t))
    frame = pd.DataFrame(rows, columns=["coin_id", "date", "source", "close", "volume", "market_cap"])
    any_store.upsert(t, frame)
    want = (
        frame.assign(date=pd.to_datetime(frame["date"]))
        .drop_duplicates(["coin_id", "date", "source"], keep="last")
        .sort_values(["coin_id", "source", "date"], ignore_index=True)
    )
    got = any_store.read_market_data()[list(want.columns)]
    got = got.sort_values(["coin_id", "source", "date"], ignore_index=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_bad_integer_names_table_and_column(any_store):
    snaps = pd.DataFrame(
        {"snapshot_date": ["2024-01-01"], "rank": [1.5], "name": ["x"], "symbol": ["X"], "source": ["cmc"]}
    )
    with pytest.raises(StoreError, match=r"nothing was stored: market_cap_snapshots\.rank"):
        any_store.upsert(s.market_cap_snapshots, snaps)
    assert any_store.count(s.market_cap_snapshots) == 0


def test_json_columns_round_trip(any_store):
    any_store.write_run(_run_row(), {})
    runs = any_store.read_table(s.runs)
    assert runs["config"].iloc[0] == {"a": [1, 2]}
    assert any_store.run_ids() == ["r"]


def test_concurrent_opens_migrate_once(backend_url):
    """Four stores opening the same fresh database at once: the lock serialises the upgrade."""

    def open_store(_):
        store = Store(*backend_url)
        revision = store.current_revision()
        store.dispose()
        return revision

    with ThreadPoolExecutor(4) as pool:
        revisions = list(pool.map(open_store, range(4)))
    assert revisions == [migrations.head_revision()] * 4


def test_drop_schema_keeps_foreign_tables(any_store):
    with any_store.engine.begin() as conn:
        conn.execute(text("CREATE TABLE studies (study_id INTEGER PRIMARY KEY)"))
    any_store.drop_schema()
    with any_store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM studies")).scalar_one() == 0
    assert any_store.current_revision() is None
    any_store.migrate()
    assert any_store.current_revision() == migrations.head_revision()


@pytest.mark.postgres
def test_backends_store_identical_rows(tmp_path, data_dir, pg_url, pg_schema):
    """The COPY path (PostgreSQL) and the executemany path (SQLite) store the same values."""
    frames = []
    for store in (Store(f"sqlite:///{tmp_path / 'p.db'}"), Store(pg_url, schema_name=pg_schema)):
        ingest(store, "coingecko", data_dir / LTC)
        frames.append(store.read_market_data().drop(columns="ingested_at"))
        store.dispose()
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_unreachable_database_says_how_to_fix():
    with pytest.raises(StoreError, match="pg_ctlcluster"):
        Store("postgresql://postgres@127.0.0.1:1/none")


# ------------------------------------------------------------------ bad URLs, locks, messages (issue 10)
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not-a-url", r"'not-a-url' is not a URL; use sqlite:///"),
        ("mysql://user@host/db", r"mysql is not supported"),
        ("sqlite://relative.db", r"has no host; write sqlite:///relative.db"),
        ("postgresql+psycopg2://postgres@127.0.0.1/test", r"driver 'postgresql\+psycopg2' is not available"),
        (
            "postgresql://postgres:s3cret@127.0.0.1:1/none",
            r"postgres:\*\*\*@127\.0\.0\.1:1/none: connecting failed",
        ),
    ],
)
def test_bad_database_urls_are_store_errors(url, message):
    with pytest.raises(StoreError, match=message) as err:
        Store(url)
    assert "s3cret" not in str(err.value)


def test_sqlite_parent_that_is_a_file_is_named(tmp_path):
    (tmp_path / "plain").write_text("x")
    with pytest.raises(StoreError, match=r"plain is a file, not a directory; choose another --out"):
        Store(f"sqlite:///{tmp_path / 'plain' / 'k.db'}")


@pytest.mark.postgres
def test_missing_postgresql_database_says_create_it(pg_url):
    url = pg_url.rsplit("/", 1)[0] + "/kallos_no_such_database"
    with pytest.raises(
        StoreError, match=r'database "kallos_no_such_database" does not exist; create it'
    ) as err:
        Store(url)
    assert "pg_ctlcluster" not in str(err.value)


def test_exclusively_locked_sqlite_names_the_file_and_shows_no_sql(tmp_path):
    """Issue 10.7/10.8: the revision check ran outside the error handling (a traceback), and write
    errors printed the whole INSERT with ten parameter rows."""
    import sqlite3

    path = tmp_path / "k.db"
    store = Store(f"sqlite:///{path}?timeout=0.2")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(
            StoreError, match=r"reading the schema revision failed: database is locked"
        ) as err:
            Store(f"sqlite:///{path}?timeout=0.2")
        assert str(path) in str(err.value) and "wait for it to finish" in str(err.value)
        with pytest.raises(StoreError) as err:
            store.upsert(s.daily_market_data, pd.concat([_rows(f"2020-01-{d:02d}", d) for d in range(1, 20)]))
        message = str(err.value)
        assert message.startswith(
            f"SQLite database {path}: writing daily_market_data failed, nothing was stored"
        )
        assert "INSERT" not in message and "[parameters" not in message and "2020-01-0" not in message
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.count(s.daily_market_data) == 0
    store.dispose()


# ------------------------------------------------------------------ overwrites and locks on import (issue 10)
BTC = "coingecko_daily_top50/original/btc-usd-max.csv.gz"
ETH = "coingecko_daily_top50/original/eth-usd-max.csv.gz"


def test_mislabelled_export_is_refused_unless_replace(any_store, data_dir, tmp_path):
    """Issue 10.3: ETH's export saved as btc-usd-max.csv overwrote 3,848 btc closes with exit 0."""
    ingest(any_store, "coingecko", data_dir / BTC)
    before = any_store.read_market_data()
    wrong = tmp_path / "btc-usd-max.csv.gz"
    wrong.write_bytes((data_dir / ETH).read_bytes())
    with pytest.raises(DataValidationError) as err:
        ingest(any_store, "coingecko", wrong)
    message = str(err.value)
    assert message.startswith(f"{wrong}: importing would change the stored coingecko close of btc on 3848 of")
    assert "another coin's export" in message and "--replace" in message
    pd.testing.assert_frame_equal(any_store.read_market_data(), before)  # nothing written
    report = ingest(any_store, "coingecko", wrong, replace=True)
    assert report.changed[("coingecko", "btc")] == 3848
    assert any("3848 of 3848 stored row(s) overwritten (--replace)" in n for n in report.notes)
    after = any_store.read_market_data().set_index("date")["close"]
    assert len(after) == 4678 and after["2020-12-31"] == pytest.approx(737, rel=0.02)  # ETH's close now


def test_revised_rows_are_reported_not_refused(any_store, data_dir, tmp_path):
    ingest(any_store, "coingecko", data_dir / LTC)
    raw = pd.read_csv(data_dir / LTC)
    raw.loc[raw.index[-3:], "price"] *= 1.03  # a provider revises its last three days by 3 %
    revised = tmp_path / "ltc-usd-max.csv"
    raw.to_csv(revised, index=False)
    report = ingest(any_store, "coingecko", revised)
    assert report.changed == {("coingecko", "ltc"): 3}
    assert any(
        n.startswith(f"{revised}: ltc (coingecko): 3 of 4678 stored row(s) changed") for n in report.notes
    )
    assert ingest(any_store, "coingecko", revised).changed == {}  # the same file again changes nothing


def test_csv_import_takes_the_source_lock_and_honours_its_timeout(any_store, data_dir):
    """Issue 10.9: a CSV import took no ingest lock, so --lock-timeout did not apply to it."""
    from kallos.data.locks import ingest_lock

    with ingest_lock(any_store, "coingecko"):
        with pytest.raises(StoreError, match=r"another ingest of 'coingecko' holds .*waited 0\.3 s"):
            ingest(any_store, "coingecko", data_dir / LTC, lock_timeout=0.3)
    assert any_store.count(s.daily_market_data) == 0
    assert ingest(any_store, "coingecko", data_dir / LTC, lock_timeout=0.3).rows["daily_market_data"] == 4678
