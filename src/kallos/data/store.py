"""Database access: one :class:`Store` over SQLite (embedded default) or PostgreSQL.

Every write is an idempotent upsert inside one transaction, so importing twice leaves
the same rows and a failure half-way leaves the store as it was. On PostgreSQL rows travel
by ``COPY`` into a temporary staging table and are merged with ``INSERT ... ON CONFLICT DO
UPDATE`` in that same transaction; SQLite uses ``executemany`` upserts. Opening a store
brings its schema to the newest Alembic revision (:mod:`kallos.data.migrations`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from alembic.util import CommandError
from filelock import FileLock
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    SmallInteger,
    String,
    Table,
    create_engine,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from kallos.data import migrations, schema
from kallos.exceptions import StoreError

__all__ = ["DATABASE_URL_ENV", "Store", "default_database_url"]

DATABASE_URL_ENV = "KALLOS_DATABASE_URL"
_CHUNK = 5000


def default_database_url(out_dir: str | Path) -> str:
    """``$KALLOS_DATABASE_URL`` if set, else an embedded SQLite file ``<out_dir>/kallos.db``."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    path = Path(out_dir).resolve() / "kallos.db"
    return f"sqlite:///{path}"


def _normalise_url(url: str) -> str:
    # A bare postgresql:// URL is served by psycopg 3, the driver Kallos pins.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _floats(values: pd.Series) -> list[Any]:
    arr = pd.to_numeric(values).to_numpy(dtype=float, na_value=np.nan)
    out = arr.astype(object)
    out[np.isnan(arr)] = None
    return out.tolist()


def _integers(values: pd.Series) -> list[Any]:
    return [None if v is pd.NA else int(v) for v in pd.to_numeric(values).astype("Int64").tolist()]


def _strings(values: pd.Series) -> list[Any]:
    return [v if isinstance(v, str) else None if pd.isna(v) else str(v) for v in values.tolist()]


def _dates(values: pd.Series) -> list[Any]:
    """Calendar days; a timestamp (naive or tz-aware) or ISO string keeps its own calendar day."""
    stamps = pd.to_datetime(values, format="ISO8601")
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_localize(None)
    return stamps.to_numpy().astype("datetime64[D]").tolist()


def _datetimes(values: pd.Series) -> list[Any]:
    """Timezone-aware UTC datetimes; naive input is taken as UTC (the project's only clock)."""
    stamps = pd.to_datetime(values, utc=True, format="ISO8601")
    return [None if v is pd.NaT else v for v in stamps.dt.to_pydatetime().tolist()]


@dataclass(frozen=True)
class _Codec:
    """How one SQL column type travels: Python values for the driver, PostgreSQL binary COPY type."""

    to_python: Callable[[pd.Series], list[Any]]
    pg_copy_type: Callable[[Any], str]


# Keyed by SQLAlchemy type class; a column's type is looked up along its MRO (Text -> String).
_CODECS: dict[type, _Codec] = {
    Float: _Codec(_floats, lambda t: "float8"),
    BigInteger: _Codec(_integers, lambda t: "int8"),
    SmallInteger: _Codec(_integers, lambda t: "int2"),
    Integer: _Codec(_integers, lambda t: "int4"),
    String: _Codec(_strings, lambda t: "text"),
    Date: _Codec(_dates, lambda t: "date"),
    DateTime: _Codec(_datetimes, lambda t: "timestamptz" if t.timezone else "timestamp"),
}


def _codec(column: Column) -> _Codec | None:
    return next((_CODECS[c] for c in type(column.type).__mro__ if c in _CODECS), None)


def _column_values(frame: pd.DataFrame, table: Table) -> dict[str, list[Any]]:
    """The columns of ``frame`` that ``table`` has, as lists of plain Python values (None for NULL).

    Every type is coerced alike for both backends: DATE from timestamps or ISO strings,
    INTEGER from integral floats (3.0 is accepted, 3.5 is not), FLOAT NaN to NULL.

    Raises
    ------
    StoreError
        When a value cannot be converted to its column's type (names the table and column).
    """
    out: dict[str, list[Any]] = {}
    for col in table.columns:
        if col.name in frame.columns:
            try:
                out[col.name] = _codec(col).to_python(frame[col.name])
            except (TypeError, ValueError) as err:
                raise StoreError(
                    f"write failed, nothing was stored: {table.name}.{col.name}: {err}"
                ) from None
    return out


def _records(frame: pd.DataFrame, table: Table) -> list[dict[str, Any]]:
    """DataFrame rows as dicts of plain Python values for ``table``; NaN/NaT become None."""
    cols = [c.name for c in table.columns if c.name in frame.columns]
    date_cols = {c.name for c in table.columns if isinstance(c.type, Date)}
    out = frame[cols].astype(object)
    out = out.where(pd.notna(out), None)
    records = out.to_dict(orient="records")
    for rec in records:
        for k, v in rec.items():
            if isinstance(v, pd.Timestamp):
                rec[k] = v.date() if k in date_cols else v.to_pydatetime()
            elif isinstance(v, np.generic):
                rec[k] = v.item()
    return records


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Store:
    """A Kallos database.

    Parameters
    ----------
    url : SQLAlchemy URL, e.g. ``sqlite:///out/kallos.db`` or
        ``postgresql://postgres@127.0.0.1:5432/test``.
    schema_name : optional PostgreSQL schema (search_path) holding the Kallos tables and the
        ``kallos_alembic_version`` table; created when missing. Tests use one per test to isolate.
    migrate : bring the database to the newest schema revision on open (default). Pass False
        for an administrative connection that must not create tables.

    Raises
    ------
    StoreError
        If the database cannot be reached, or holds tables from before Alembic that match no
        revision.
    """

    def __init__(self, url: str, schema_name: str | None = None, *, migrate: bool = True) -> None:
        self.url = _normalise_url(url)
        kwargs: dict[str, Any] = {"future": True}
        self._lock_path: Path | None = None
        if self.url.startswith("sqlite:///"):
            db_path = Path(self.url.removeprefix("sqlite:///"))
            if str(db_path) not in ("", ":memory:"):
                db_path.parent.mkdir(parents=True, exist_ok=True)
                self._lock_path = db_path.with_name(db_path.name + ".migrate.lock")
        self.schema_name = schema_name if self.url.startswith("postgresql") else None
        if self.schema_name:
            kwargs["connect_args"] = {"options": f"-csearch_path={self.schema_name}"}
        self.engine: Engine = create_engine(self.url, **kwargs)
        self.dialect = self.engine.dialect.name
        try:
            with self.engine.connect():
                pass
        except OperationalError as err:
            raise StoreError(
                f"cannot connect to {self.engine.url.render_as_string(hide_password=True)}: "
                f"{err.orig}. For the local PostgreSQL run "
                "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`."
            ) from None
        if migrate:
            self.migrate()

    # ------------------------------------------------------------------ schema
    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[Connection]:
        """A connection in a transaction that holds the per-database migration lock.

        PostgreSQL: a transaction-scoped advisory lock keyed by the schema, so concurrent
        openers queue and the second finds the work done. SQLite: a file lock beside the file.
        """
        lock = FileLock(str(self._lock_path), timeout=120) if self._lock_path else contextlib.nullcontext()
        with lock, self.engine.begin() as conn:
            if self.dialect == "postgresql":
                key = f"kallos.migrate:{self.schema_name or 'public'}"
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
                if self.schema_name:
                    conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {_quote(self.schema_name)}"))
            yield conn

    def current_revision(self) -> str | None:
        """The schema revision of the database (None before any migration)."""
        with self.engine.connect() as conn:
            return migrations.current_revision(conn, self.schema_name)

    def migrate(self, revision: str = "head") -> str | None:
        """Bring the schema to ``revision`` (default: the newest); safe to call concurrently.

        A database created before Alembic (tables of revision 0001, no ``kallos_alembic_version``) is
        adopted: stamped ``0001``, then upgraded. Returns the revision reached.

        Raises
        ------
        StoreError
            If the upgrade fails or the database holds unversioned tables of another layout.
        """
        if revision == "head" and self.current_revision() == migrations.head_revision():
            return migrations.head_revision()
        try:
            with self._migration_lock() as conn:
                self._adopt_unversioned(conn)
                migrations.upgrade(conn, revision, self.schema_name)
        except (SQLAlchemyError, CommandError) as err:
            raise StoreError(f"schema migration to {revision} failed: {err}") from err
        return self.current_revision()

    def downgrade(self, revision: str) -> str | None:
        """Revert the schema to ``revision`` (``"base"``: no Kallos table left); returns it.

        Raises
        ------
        StoreError
            For an unknown revision or a failing downgrade.
        """
        try:
            with self._migration_lock() as conn:
                migrations.downgrade(conn, revision, self.schema_name)
        except (SQLAlchemyError, CommandError) as err:
            raise StoreError(f"schema downgrade to {revision} failed: {err}") from err
        return self.current_revision()

    def _adopt_unversioned(self, conn: Connection) -> None:
        if migrations.current_revision(conn, self.schema_name) is not None:
            return
        tables = inspect(conn).get_table_names(schema=self.schema_name)
        if schema.daily_market_data.name not in tables:
            return
        columns = {c["name"] for c in inspect(conn).get_columns("daily_market_data", schema=self.schema_name)}
        if "ingested_at" in columns:
            raise StoreError(
                f"{self.engine.url.render_as_string(hide_password=True)} holds Kallos tables without a "
                "kallos_alembic_version table and with daily_market_data.ingested_at, a layout no revision "
                "describes; re-import into a new database."
            )
        migrations.stamp(conn, "0001", self.schema_name)

    def create_schema(self) -> None:
        """Bring the schema to the newest revision (idempotent); kept for existing callers."""
        self.migrate()

    def drop_schema(self) -> None:
        """Drop every Kallos table and the ``kallos_alembic_version`` table; other tables stay."""
        self.downgrade("base")
        with self._migration_lock() as conn:
            prefix = f"{_quote(self.schema_name)}." if self.schema_name else ""
            conn.execute(text(f"DROP TABLE IF EXISTS {prefix}{migrations.VERSION_TABLE}"))

    # ------------------------------------------------------------------ writes
    @staticmethod
    def _updated_columns(table: Table, given: Collection[str]) -> list[str]:
        """Non-key columns an upsert overwrites: all of them, except a server-defaulted column
        (``ingested_at``) the frame does not give, which keeps its stored value (re-importing
        the same rows changes nothing)."""
        return [
            c.name
            for c in table.columns
            if not c.primary_key and (c.name in given or c.server_default is None)
        ]

    def _upsert_stmt(self, table: Table, given: Collection[str]):
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        stmt = insert(table)
        pk = [c.name for c in table.primary_key.columns]
        updates = {c: stmt.excluded[c] for c in self._updated_columns(table, given)}
        if updates:
            return stmt.on_conflict_do_update(index_elements=pk, set_=updates)
        return stmt.on_conflict_do_nothing(index_elements=pk)

    def _statement_upsert(self, conn: Connection, table: Table, frame: pd.DataFrame) -> int:
        """SQLAlchemy ``INSERT ... ON CONFLICT`` per chunk of dict rows (tables with JSON columns)."""
        records = _records(frame, table)
        stmt = self._upsert_stmt(table, frame.columns)
        for i in range(0, len(records), _CHUNK):
            conn.execute(stmt, records[i : i + _CHUNK])
        return len(records)

    def _conflict_clause(self, table: Table, given: Collection[str]) -> str:
        updates = ", ".join(
            f"{_quote(c)} = excluded.{_quote(c)}" for c in self._updated_columns(table, given)
        )
        target = ", ".join(_quote(c.name) for c in table.primary_key.columns)
        return f"ON CONFLICT ({target}) " + (f"DO UPDATE SET {updates}" if updates else "DO NOTHING")

    def _executemany_upsert(self, conn: Connection, table: Table, frame: pd.DataFrame) -> int:
        """SQLite: one ``executemany`` of positional rows (values bound as SQLAlchemy would)."""
        values = _column_values(frame, table)
        for name, column in values.items():
            bind = table.c[name].type.bind_processor(self.engine.dialect)
            if bind is not None:
                values[name] = [bind(v) for v in column]
        cols = ", ".join(_quote(c) for c in values)
        marks = ", ".join("?" for _ in values)
        conflict = self._conflict_clause(table, values)
        sql = f"INSERT INTO {_quote(table.name)} ({cols}) VALUES ({marks}) {conflict}"
        conn.exec_driver_sql(sql, list(zip(*values.values(), strict=True)))
        return len(frame)

    def _copy_upsert(self, conn: Connection, table: Table, frame: pd.DataFrame) -> int:
        """PostgreSQL: binary COPY into a temp staging table, then one INSERT ... ON CONFLICT.

        Same semantics as the SQLite path (see :meth:`_updated_columns`); of two rows with one
        key the later wins.
        """
        values = _column_values(frame, table)
        cols = ", ".join(_quote(c) for c in values)
        pk = ", ".join(_quote(c.name) for c in table.primary_key.columns)
        stage = _quote(f"_kallos_stage_{table.name}")
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE {stage} (LIKE {_quote(table.name)} INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        types = [_codec(table.c[name]).pg_copy_type(table.c[name].type) for name in values]
        raw = conn.connection.driver_connection
        try:
            with raw.cursor() as cur, cur.copy(f"COPY {stage} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(types)
                for row in zip(*values.values(), strict=True):
                    copy.write_row(row)
        except psycopg.Error as err:
            raise StoreError(f"write failed, nothing was stored: {table.name}: {err}") from err
        conn.exec_driver_sql(
            f"INSERT INTO {_quote(table.name)} ({cols}) SELECT DISTINCT ON ({pk}) {cols} FROM {stage} "
            f"ORDER BY {pk}, ctid DESC {self._conflict_clause(table, values)}"
        )
        conn.exec_driver_sql(f"DROP TABLE {stage}")
        return len(frame)

    def _writer(self, table: Table) -> Callable[[Connection, Table, pd.DataFrame], int]:
        if any(_codec(c) is None for c in table.columns):  # JSON columns: let SQLAlchemy serialise
            return self._statement_upsert
        return self._copy_upsert if self.dialect == "postgresql" else self._executemany_upsert

    def upsert_many(self, frames: Mapping[Table, pd.DataFrame]) -> dict[str, int]:
        """Upsert several tables in one transaction; all rows land or none do.

        A frame holds some or all of the table's columns (extra columns are ignored); a row
        whose key exists replaces that row's other columns (later rows of ``frame`` win), except
        that ``ingested_at`` keeps its stored value unless the frame gives one. Tables
        without JSON columns load by binary COPY on PostgreSQL and by executemany on SQLite.

        Returns
        -------
        dict
            Number of rows written per table name.

        Raises
        ------
        StoreError
            When any row is rejected; nothing is stored then.
        """
        counts: dict[str, int] = {}
        try:
            with self.engine.begin() as conn:
                for table, frame in frames.items():
                    if frame.empty:
                        counts[table.name] = 0
                    else:
                        counts[table.name] = self._writer(table)(conn, table, frame)
        except SQLAlchemyError as err:
            raise StoreError(f"write failed, nothing was stored: {err}") from err
        return counts

    def upsert(self, table: Table, frame: pd.DataFrame) -> int:
        return self.upsert_many({table: frame})[table.name]

    # ------------------------------------------------------------------ reads
    def count(self, table: Table) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    def is_empty(self) -> bool:
        """True when no market data has been imported yet."""
        return self.count(schema.daily_market_data) == 0

    def read_table(self, table: Table, where: Any = None) -> pd.DataFrame:
        """Whole table (optionally filtered) as a DataFrame; DATE columns as datetime64, FLOAT as float64."""
        stmt = select(table)
        if where is not None:
            stmt = stmt.where(where)
        with self.engine.connect() as conn:
            result = conn.execute(stmt)
            # Plain tuples: pandas probes each Row object's attributes, which costs more than the read.
            frame = pd.DataFrame([tuple(row) for row in result], columns=list(result.keys()))
        for col in table.columns:
            if col.name not in frame:
                continue
            if isinstance(col.type, Date):
                frame[col.name] = pd.to_datetime(frame[col.name])
            elif isinstance(col.type, Float):
                frame[col.name] = frame[col.name].astype(np.float64)  # NULL -> NaN, even when all NULL
        return frame

    def read_market_data(self) -> pd.DataFrame:
        """All rows of ``daily_market_data``, sorted by coin, source and date."""
        frame = self.read_table(schema.daily_market_data)
        return frame.sort_values(["coin_id", "source", "date"], ignore_index=True)

    def read_coins(self) -> pd.DataFrame:
        return self.read_table(schema.coins)

    def coverage(self) -> pd.DataFrame:
        """Per source and coin: first date, last date and row count."""
        t = schema.daily_market_data
        stmt = (
            select(t.c.source, t.c.coin_id, func.min(t.c.date), func.max(t.c.date), func.count())
            .group_by(t.c.source, t.c.coin_id)
            .order_by(t.c.source, t.c.coin_id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).fetchall()
        frame = pd.DataFrame(rows, columns=["source", "coin_id", "first", "last", "rows"])
        for c in ("first", "last"):
            frame[c] = pd.to_datetime(frame[c])
        return frame

    # ------------------------------------------------------------------ runs
    def write_run(self, run_row: dict[str, Any], frames: Mapping[Table, pd.DataFrame]) -> None:
        """Record a finished run and its tables in one transaction."""
        row = dict(run_row)
        row.setdefault("created_at", dt.datetime.now(dt.UTC))
        self.upsert_many({schema.runs: pd.DataFrame([row]), **frames})

    def run_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(schema.runs.c.run_id)).fetchall()]

    def dispose(self) -> None:
        self.engine.dispose()
