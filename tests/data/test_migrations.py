"""Alembic migrations on SQLite and PostgreSQL: empty upgrade, upgrade with data, round trip, no drift."""

from __future__ import annotations

import datetime as dt
import importlib.util

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

import kallos.features.store  # noqa: F401  (adds daily_technical_indicators to the metadata)
from kallos.data import Store, migrations
from kallos.data import schema as s
from kallos.data.migrations import VERSION_TABLE
from kallos.exceptions import StoreError
from kallos.features import FEATURE_NAMES

KALLOS_TABLES = set(s.metadata.tables)
TRADING_TABLES = {t.name for t in s.TRADING_TABLES}
REVISION_0002 = {"model_registry", "daily_technical_indicators"}
REVISION_0004 = {"store_settings"}


def _tables(store: Store) -> set[str]:
    return set(inspect(store.engine).get_table_names(schema=store.schema_name))


def _columns(store: Store, table: str) -> set[str]:
    return {c["name"] for c in inspect(store.engine).get_columns(table, schema=store.schema_name)}


def _at_revision(backend_url, revision: str) -> Store:
    """A store whose database was migrated only up to ``revision``."""
    store = Store(*backend_url, migrate=False)
    store.migrate(revision)
    assert store.current_revision() == revision
    return store


def _insert_landed_rows(store: Store) -> None:
    """Rows as the landed (0001) code wrote them: no ingested_at column exists yet."""
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO daily_market_data (coin_id, date, source, close, market_cap) "
                "VALUES ('btc', :d1, 'coingecko', 100.5, 1e9), ('eth', :d2, 'binance', 2.25, NULL)"
            ),
            {"d1": dt.date(2020, 1, 1), "d2": dt.date(2020, 1, 2)},
        )
        conn.execute(text("INSERT INTO coins VALUES ('btc', 'BTC', 'Bitcoin', 'crypto', 'coingecko')"))


def _drift(store: Store) -> list:
    opts = {"include_name": migrations.include_name, "compare_type": True}
    with store.engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts=opts), s.metadata)


def test_upgrade_empty_database_creates_every_table(backend_url):
    store = Store(*backend_url, migrate=False)
    assert store.current_revision() is None
    assert store.migrate() == migrations.head_revision() == "0004"
    assert _tables(store) == KALLOS_TABLES | {VERSION_TABLE}
    store.dispose()


def test_upgrade_from_0001_keeps_rows_and_fills_ingested_at(backend_url):
    store = _at_revision(backend_url, "0001")
    assert _tables(store) == KALLOS_TABLES - REVISION_0002 - TRADING_TABLES - REVISION_0004 | {VERSION_TABLE}
    assert "ingested_at" not in _columns(store, "daily_market_data")
    _insert_landed_rows(store)
    store.dispose()

    store = Store(*backend_url)  # opening brings it to head
    assert store.current_revision() == migrations.head_revision()
    market = store.read_market_data()
    assert market[["coin_id", "close"]].values.tolist() == [["btc", 100.5], ["eth", 2.25]]
    assert market["ingested_at"].notna().all()
    assert store.read_coins()["name"].tolist() == ["Bitcoin"]
    store.dispose()


def test_0003_adds_the_trading_ledger_and_downgrades_to_0002(backend_url):
    """0002 -> 0003 keeps every row and adds the ledger; 0003 -> 0002 drops the ledger only."""
    store = _at_revision(backend_url, "0002")
    assert not TRADING_TABLES & _tables(store)
    _insert_landed_rows(store)
    store.dispose()
    store = Store(*backend_url)
    assert store.current_revision() == "0004" and TRADING_TABLES <= _tables(store)
    assert store.count(s.daily_market_data) == 2
    assert {"client_order_id", "run_id", "period", "target_weight"} <= _columns(store, "orders")
    now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    row = {"account_id": "paper", "asset": "USDT", "quantity": 1.5, "updated_at": now}
    store.upsert(s.positions, pd.DataFrame([row]))
    assert _drift(store) == []
    store.downgrade("0002")
    assert not TRADING_TABLES & _tables(store) and store.count(s.daily_market_data) == 2
    store.dispose()


def test_0004_adds_store_settings_and_downgrades_to_0003(backend_url):
    """0003 -> 0004 adds ``store_settings``; a setting round-trips; 0004 -> 0003 drops it only."""
    store = _at_revision(backend_url, "0003")
    assert not REVISION_0004 & _tables(store)
    store.dispose()
    store = Store(*backend_url)
    assert store.current_revision() == "0004" and REVISION_0004 <= _tables(store)
    assert store.setting("artifact_dir") is None
    store.set_setting("artifact_dir", "/srv/models")
    store.set_setting("artifact_dir", "/srv/models-2")  # replaces, one row
    assert store.setting("artifact_dir") == "/srv/models-2" and store.count(s.store_settings) == 1
    assert _drift(store) == []
    store.downgrade("0003")
    assert not REVISION_0004 & _tables(store) and TRADING_TABLES <= _tables(store)
    store.dispose()


def test_downgrade_upgrade_round_trip(backend_url):
    store = Store(*backend_url)
    store.upsert(
        s.daily_market_data,
        pd.DataFrame(
            {"coin_id": ["btc"], "date": [pd.Timestamp("2021-03-04")], "source": ["x"], "close": [7.0]}
        ),
    )
    with store.engine.begin() as conn:
        migrations.downgrade(conn, "0001", store.schema_name)
    assert store.current_revision() == "0001"
    assert "ingested_at" not in _columns(store, "daily_market_data")
    assert not (REVISION_0002 | TRADING_TABLES | REVISION_0004) & _tables(store)
    with store.engine.begin() as conn:
        assert conn.execute(text("SELECT close FROM daily_market_data")).scalar_one() == 7.0
        migrations.downgrade(conn, "base", store.schema_name)
    assert _tables(store) == {VERSION_TABLE}
    store.migrate()
    assert _tables(store) == KALLOS_TABLES | {VERSION_TABLE}
    assert _drift(store) == []
    store.dispose()


def test_head_matches_metadata_and_ignores_foreign_tables(backend_url):
    """Autogenerate finds no difference between the migrated database and ``schema.metadata``,
    even with a non-Kallos table (as Optuna creates) in the same database."""
    store = Store(*backend_url)
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TABLE studies (study_id INTEGER PRIMARY KEY, name VARCHAR(50))"))
    assert _drift(store) == []
    store.dispose()


def test_drift_check_can_fail(backend_url):
    """The comparison is live: a missing index is reported."""
    store = Store(*backend_url)
    with store.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_daily_market_data_source_coin_date"))
    diff = _drift(store)
    assert [d[0] for d in diff] == ["add_index"]
    assert diff[0][1].name == "ix_daily_market_data_source_coin_date"
    store.dispose()


def test_unversioned_landed_database_is_adopted(backend_url):
    """A database created before Alembic (tables of 0001, no version table) is stamped and upgraded."""
    store = _at_revision(backend_url, "0001")
    _insert_landed_rows(store)
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE kallos_alembic_version"))
    assert store.current_revision() is None
    store.dispose()
    store = Store(*backend_url)
    assert store.current_revision() == migrations.head_revision()
    assert store.count(s.daily_market_data) == 2
    store.dispose()


def test_unversioned_unknown_layout_is_refused(backend_url):
    store = Store(*backend_url)
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE kallos_alembic_version"))
    with pytest.raises(StoreError, match="no revision describes"):
        store.migrate()
    store.dispose()


def test_frozen_indicator_columns_equal_feature_names():
    path = migrations.MIGRATIONS_DIR / "versions" / "0002_ingested_at_registry_indicators.py"
    spec = importlib.util.spec_from_file_location("rev_0002", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.INDICATOR_COLUMNS == FEATURE_NAMES


# ------------------------------------------------------------------ half-made schemas (issue 10.5)
def _sqlite_at(tmp_path, revision: str) -> tuple[str, Store]:
    url = f"sqlite:///{tmp_path / 'half.db'}"
    store = _at_revision((url, None), revision)
    return url, store


def test_empty_version_table_beside_some_tables_is_rebuilt(tmp_path):
    """A kill during the first migration of the landed code left `coins` and an empty version table;
    every later command failed with "table coins already exists"."""
    url, store = _sqlite_at(tmp_path, "0001")
    with store.engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {VERSION_TABLE}"))
        for table in _tables(store) - {"coins", VERSION_TABLE}:
            conn.execute(text(f"DROP TABLE {table}"))
    store.dispose()
    store = Store(url)
    assert store.current_revision() == migrations.head_revision()
    assert _tables(store) == KALLOS_TABLES | {VERSION_TABLE} and _drift(store) == []
    store.dispose()


def test_half_made_first_migration_is_not_stamped_with_tables_missing(tmp_path):
    """With daily_market_data made but later tables not, the landed code stamped 0001 and upgraded:
    the store claimed head while `runs`, `forecasts`, ... did not exist."""
    url, store = _sqlite_at(tmp_path, "0001")
    with store.engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {VERSION_TABLE}"))
        for table in ("runs", "forecasts", "portfolio_weights"):
            conn.execute(text(f"DROP TABLE {table}"))
    store.dispose()
    store = Store(url)
    assert _tables(store) == KALLOS_TABLES | {VERSION_TABLE} and _drift(store) == []
    store.dispose()


def test_half_made_second_revision_is_rebuilt_when_empty(tmp_path):
    """A kill inside 0002's batch rebuild left Alembic's `_alembic_tmp_daily_market_data` behind."""
    url, store = _sqlite_at(tmp_path, "0001")
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TABLE _alembic_tmp_daily_market_data (coin_id VARCHAR)"))
    store.dispose()
    store = Store(url)
    assert store.current_revision() == migrations.head_revision()
    assert _tables(store) == KALLOS_TABLES | {VERSION_TABLE}
    store.dispose()


def test_half_made_schema_with_rows_is_refused_not_dropped(tmp_path):
    url, store = _sqlite_at(tmp_path, "0001")
    _insert_landed_rows(store)
    with store.engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {VERSION_TABLE}"))
        conn.execute(text("DROP TABLE runs"))
    store.dispose()
    with pytest.raises(StoreError, match=r"interrupted first migration .* hold rows") as err:
        Store(url)
    assert "half.db" in str(err.value)
    store = Store(url, migrate=False)
    assert store.count(s.daily_market_data) == 2  # nothing dropped
    store.dispose()
