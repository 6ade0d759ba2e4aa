"""Database access: one :class:`Store` over SQLite (embedded default) or PostgreSQL.

Every write is an idempotent upsert inside one transaction, so importing twice leaves
the same rows and a failure half-way leaves the store as it was. On PostgreSQL rows travel
by ``COPY`` into a temporary staging table and are merged with ``INSERT ... ON CONFLICT DO
UPDATE`` in that same transaction; SQLite uses ``executemany`` upserts. Opening a store
brings its schema to the newest Alembic revision (:mod:`kallos.data.migrations`).

Migrations are atomic on both backends: PostgreSQL's DDL is transactional, and on SQLite the
driver's own transaction handling (which commits each ``CREATE TABLE`` on its own) is
switched off for the migration, which runs inside one ``BEGIN IMMEDIATE`` ... ``COMMIT``. A
process killed mid-migration therefore leaves the schema as it was, never half made. A
SQLite store a killed older version left half made (some tables, no revision, no rows) is
rebuilt on open.

Errors are :class:`~kallos.exceptions.StoreError` messages that name the database, say what
failed and what to do; they never carry SQL statements or parameter rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
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
    URL,
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
    make_url,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from kallos.data import migrations, schema
from kallos.exceptions import StoreError

__all__ = [
    "DATABASE_URL_ENV",
    "Store",
    "default_database_url",
    "kallos_schema_exists",
    "parse_database_url",
    "sqlite_path",
]

DATABASE_URL_ENV = "KALLOS_DATABASE_URL"
_CHUNK = 5000


def default_database_url(out_dir: str | Path) -> str:
    """``$KALLOS_DATABASE_URL`` if set, else an embedded SQLite file ``<out_dir>/kallos.db``."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    path = Path(out_dir).resolve() / "kallos.db"
    return f"sqlite:///{path}"


def kallos_schema_exists(url: str, schema_name: str | None = None) -> bool:
    """True if the database at ``url`` already exists with Kallos tables; creates nothing.

    A SQLite database counts as existing when its file does (even without tables: it is the
    user's). A PostgreSQL database counts when it holds the Kallos version table or
    ``daily_market_data`` (in ``schema_name``, else the connection's default schema).

    Raises
    ------
    StoreError
        For a bad URL or an unreachable server.
    """
    parsed = parse_database_url(url)
    path = sqlite_path(parsed)
    if parsed.get_backend_name() == "sqlite":
        return path is not None and path.exists()
    engine = create_engine(parsed)
    try:
        with engine.connect() as conn:
            names = set(inspect(conn).get_table_names(schema=schema_name))
    except SQLAlchemyError as err:
        reason = _first_lines(err.orig if isinstance(err, DBAPIError) and err.orig is not None else err)
        raise StoreError(
            f"PostgreSQL database {parsed.render_as_string(hide_password=True)}: {reason}"
        ) from None
    finally:
        engine.dispose()
    return bool(names & {migrations.VERSION_TABLE, schema.daily_market_data.name})


def _normalise_url(url: str) -> str:
    # A bare postgresql:// URL is served by psycopg 3, the driver Kallos pins.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


URL_FORMS = (
    "sqlite:///relative/kallos.db, sqlite:////absolute/kallos.db or postgresql://user@host:5432/database"
)
PG_START_HINT = (
    "is the server running and reachable? For the local PostgreSQL run "
    "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`."
)


def _redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for a string SQLAlchemy cannot parse)."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


def parse_database_url(url: str) -> URL:
    """The SQLAlchemy URL of a Kallos database: SQLite (a file or ``:memory:``) or PostgreSQL.

    ``postgresql://`` and ``postgres://`` are served by psycopg 3, the driver Kallos installs.

    Raises
    ------
    StoreError
        For a string that is not a URL, another database (MySQL, ...), a driver that is not
        installed, or a SQLite URL with a host part (``sqlite://relative.db``: two slashes).
    """
    try:
        parsed = make_url(_normalise_url(url.strip()))
    except ArgumentError:
        raise StoreError(f"database URL {_redact(url)!r} is not a URL; use {URL_FORMS}") from None
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(
            f"database URL {shown}: {backend} is not supported; Kallos stores data in SQLite or "
            f"PostgreSQL ({URL_FORMS})"
        )
    if backend == "sqlite" and parsed.host:
        raise StoreError(
            f"database URL {shown}: a SQLite URL has no host; write sqlite:///{parsed.host}"
            f"{'/' + parsed.database if parsed.database else ''} for a relative path (three slashes) "
            "or sqlite:////absolute/path (four)"
        )
    try:
        parsed.get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError) as err:
        raise StoreError(
            f"database URL {shown}: driver {parsed.drivername!r} is not available ({err}); "
            "use postgresql:// (psycopg 3, installed with Kallos) or sqlite:///"
        ) from None
    return parsed


def _first_lines(err: BaseException, limit: int = 300) -> str:
    """The driver's message on one line, without psycopg's "connection failed:" prefix, at most ``limit``."""
    text_ = " ".join(line.strip() for line in str(err).strip().splitlines() if line.strip())
    text_ = text_.removeprefix("connection failed: ")
    return text_ if len(text_) <= limit else text_[: limit - 1] + "…"


def _hint(message: str, dialect: str) -> str:
    """What to do about a database error, from the driver's message."""
    m = message.lower()
    if "locked" in m or "lock timeout" in m or "could not obtain lock" in m:
        return "another process is using the database; wait for it to finish and run the command again"
    if "readonly" in m or "read-only" in m or "permission denied" in m:
        return "the database is read-only for this user: check the file's or role's permissions"
    if "not a database" in m or "malformed" in m:
        return "the file is not a Kallos (SQLite) database: point --database-url at another file"
    if "full" in m or "no space" in m or "disk i/o" in m:
        return "the disk is full or failing: free some space and run the command again"
    if "unable to open" in m:
        return "check that the path is a file (not a directory) in a directory you can write"
    if "database" in m and "does not exist" in m:
        return "create it first (`createdb -h HOST -p PORT -U USER NAME`), or fix its name in the URL"
    if "password authentication failed" in m or ("role" in m and "does not exist" in m):
        return "check the user name and password in the database URL"
    if dialect == "postgresql" and ("connect" in m or "refused" in m or "timeout" in m or "resolve" in m):
        return PG_START_HINT
    return "check the database, or run the command against a new one (--database-url)"


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


def sqlite_path(url: URL | str) -> Path | None:
    """The file of a SQLite URL (absolute), or None for PostgreSQL and in-memory SQLite."""
    parsed = url if isinstance(url, URL) else parse_database_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser().resolve()


@contextlib.contextmanager
def _transactional_ddl(conn: Connection) -> Iterator[None]:
    """On SQLite, stop the driver from committing DDL on its own for the block (see the module docstring).

    Python's ``sqlite3`` opens a transaction only before INSERT/UPDATE/DELETE, so each
    ``CREATE TABLE`` of a migration would commit alone. With ``isolation_level = None`` the
    driver leaves transactions to the caller, who issues ``BEGIN``; ``commit()`` and
    ``rollback()`` still end it. The previous setting is restored afterwards.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    dbapi = conn.connection.dbapi_connection
    previous = dbapi.isolation_level
    dbapi.isolation_level = None
    try:
        yield
    finally:
        if dbapi.in_transaction:
            dbapi.rollback()
        dbapi.isolation_level = previous


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
        parsed = parse_database_url(url)
        self.url = parsed.render_as_string(hide_password=False)
        kwargs: dict[str, Any] = {"future": True}
        self._lock_path: Path | None = None
        self.path = sqlite_path(parsed)
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                blocker = next((p for p in self.path.parents if p.exists() and not p.is_dir()), None)
                why = f"{blocker} is a file, not a directory" if blocker else (err.strerror or str(err))
                raise StoreError(
                    f"cannot create the directory {self.path.parent} for the SQLite database {self.path}: "
                    f"{why}; choose another --out or --database-url"
                ) from None
            if self.path.is_dir():
                raise StoreError(
                    f"SQLite database {self.path} is a directory; choose a file path (--database-url)"
                )
            self._lock_path = self.path.with_name(self.path.name + ".migrate.lock")
        self.schema_name = schema_name if parsed.get_backend_name() == "postgresql" else None
        if self.schema_name:
            kwargs["connect_args"] = {"options": f"-csearch_path={self.schema_name}"}
        self.engine: Engine = create_engine(parsed, **kwargs)
        self.dialect = self.engine.dialect.name
        with self._errors("connecting"):  # "connecting failed: connection to server at ..."
            with self.engine.connect():
                pass
        if migrate:
            self.migrate()

    @property
    def description(self) -> str:
        """The database in words, for messages: the SQLite file, or the PostgreSQL URL and schema."""
        if self.dialect == "sqlite":
            return f"SQLite database {self.path or ':memory:'}"
        schema_part = f" (schema {self.schema_name})" if self.schema_name else ""
        return f"PostgreSQL database {self.engine.url.render_as_string(hide_password=True)}{schema_part}"

    @contextlib.contextmanager
    def _errors(self, action: str, consequence: str = "") -> Iterator[None]:
        """Turn a driver error inside the block into a StoreError naming the database and the fix.

        The message is ``<database>: <action> failed[, <consequence>]: <driver message>; <what to
        do>``, never the SQL statement or its parameters.
        """
        try:
            yield
        except SQLAlchemyError as err:
            orig = err.orig if isinstance(err, DBAPIError) and err.orig is not None else err
            reason = _first_lines(orig)
            tail = f", {consequence}" if consequence else ""
            raise StoreError(
                f"{self.description}: {action} failed{tail}: {reason}; {_hint(reason, self.dialect)}"
            ) from None

    # ------------------------------------------------------------------ schema
    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[Connection]:
        """A connection in a transaction that holds the per-database migration lock.

        PostgreSQL: a transaction-scoped advisory lock keyed by the schema, so concurrent
        openers queue and the second finds the work done. SQLite: a file lock beside the file.
        """
        lock = FileLock(str(self._lock_path), timeout=120) if self._lock_path else contextlib.nullcontext()
        with lock, self.engine.connect() as conn, _transactional_ddl(conn), conn.begin():
            if self.dialect == "postgresql":
                key = f"kallos.migrate:{self.schema_name or 'public'}"
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
                if self.schema_name:
                    conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {_quote(self.schema_name)}"))
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # one write transaction for every DDL statement
            yield conn

    def current_revision(self) -> str | None:
        """The schema revision of the database (None before any migration).

        Raises
        ------
        StoreError
            If the database cannot be read (locked by another process, not a database, ...).
        """
        with self._errors("reading the schema revision"), self.engine.connect() as conn:
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
        action = f"the schema migration to {revision}"
        try:
            try:
                self._upgrade(revision)
            except SQLAlchemyError as first:
                if not self._rebuild_if_half_made():
                    with self._errors(action):
                        raise first from None
                with self._errors(action):
                    self._upgrade(revision)
        except CommandError as err:
            raise StoreError(f"{self.description}: schema migration to {revision} failed: {err}") from None
        return self.current_revision()

    def _upgrade(self, revision: str) -> None:
        with self._migration_lock() as conn:
            self._adopt_unversioned(conn)
            migrations.upgrade(conn, revision, self.schema_name)

    def _rebuild_if_half_made(self) -> bool:
        """After a failed SQLite upgrade: drop a half-made schema that holds no row; True if dropped.

        Versions before atomic migrations committed each DDL statement on its own, so a process
        killed during the first migrations could leave some Kallos tables (or Alembic's
        ``_alembic_tmp_*`` copy of one) beside a version table one revision behind, which no
        upgrade can get past. When no Kallos table holds a row nothing is lost by starting again.
        """
        if self.dialect != "sqlite":
            return False
        with self._errors("inspecting a half-made schema"), self._migration_lock() as conn:
            names = inspect(conn).get_table_names()
            if migrations.VERSION_TABLE not in names:  # not Alembic's doing: refused, not rebuilt
                return False
            if migrations.current_revision(conn, None) == migrations.head_revision():
                return False
            return self._drop_empty_kallos_tables(conn, names, drop_version_table=True)

    def _drop_empty_kallos_tables(self, conn: Connection, names: list[str], drop_version_table: bool) -> bool:
        """Drop the Kallos tables among ``names`` if none holds a row; True if any was dropped.

        Raises
        ------
        StoreError
            If one holds rows (a half-made schema with data is not rebuilt; it names the tables).
        """
        ours = [n for n in names if n in schema.metadata.tables or n.startswith("_alembic_tmp_")]
        if not ours:
            return False
        prefix = f"{_quote(self.schema_name)}." if self.schema_name else ""
        full = [n for n in ours if conn.exec_driver_sql(f"SELECT 1 FROM {prefix}{_quote(n)} LIMIT 1").first()]
        if full:
            raise StoreError(
                f"{self.description}: an interrupted first migration left tables {sorted(ours)} without a "
                f"complete schema revision, and {sorted(full)} hold rows; copy what you need and import "
                "into a new database"
            )
        for n in [*ours, migrations.VERSION_TABLE] if drop_version_table else ours:
            conn.exec_driver_sql(f"DROP TABLE {prefix}{_quote(n)}")
        return True

    def downgrade(self, revision: str) -> str | None:
        """Revert the schema to ``revision`` (``"base"``: no Kallos table left); returns it.

        Raises
        ------
        StoreError
            For an unknown revision or a failing downgrade.
        """
        try:
            with self._errors(f"the schema downgrade to {revision}"), self._migration_lock() as conn:
                migrations.downgrade(conn, revision, self.schema_name)
        except CommandError as err:
            raise StoreError(f"{self.description}: schema downgrade to {revision} failed: {err}") from None
        return self.current_revision()

    def _adopt_unversioned(self, conn: Connection) -> None:
        """Adopt a database without a schema revision: a pre-Alembic one, or a half-made first migration.

        * An empty version table beside Kallos tables is a first migration that never finished
          (a killed older version): the tables are dropped and made again if none holds a row.
        * Tables of revision 0001 without a version table are a database from before Alembic:
          stamped ``0001`` (then upgraded).
        """
        if migrations.current_revision(conn, self.schema_name) is not None:
            return
        tables = inspect(conn).get_table_names(schema=self.schema_name)
        if migrations.VERSION_TABLE in tables:
            self._drop_empty_kallos_tables(conn, tables, drop_version_table=False)
            return
        if schema.daily_market_data.name not in tables:
            return
        columns = {c["name"] for c in inspect(conn).get_columns("daily_market_data", schema=self.schema_name)}
        if "ingested_at" in columns:
            raise StoreError(
                f"{self.description} holds Kallos tables without a "
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
        names = ", ".join(t.name for t in frames)
        try:
            with self._errors(f"writing {names}", "nothing was stored"), self.engine.begin() as conn:
                for table, frame in frames.items():
                    if frame.empty:
                        counts[table.name] = 0
                    else:
                        counts[table.name] = self._writer(table)(conn, table, frame)
        except StoreError as err:
            if str(err).startswith(self.description):
                raise
            raise StoreError(f"{self.description}: {err}") from None
        return counts

    def upsert(self, table: Table, frame: pd.DataFrame) -> int:
        return self.upsert_many({table: frame})[table.name]

    # ------------------------------------------------------------------ reads
    def count(self, table: Table) -> int:
        with self._errors(f"counting {table.name}"), self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    def is_empty(self) -> bool:
        """True when no market data has been imported yet (also before the schema exists)."""
        with self._errors("inspecting the schema"):
            if not inspect(self.engine).has_table(schema.daily_market_data.name, schema=self.schema_name):
                return True
        return self.count(schema.daily_market_data) == 0

    def read_table(self, table: Table, where: Any = None) -> pd.DataFrame:
        """Whole table (optionally filtered) as a DataFrame; DATE columns as datetime64, FLOAT as float64."""
        stmt = select(table)
        if where is not None:
            stmt = stmt.where(where)
        with self._errors(f"reading {table.name}"), self.engine.connect() as conn:
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
        with self._errors("reading the coverage of daily_market_data"), self.engine.connect() as conn:
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

    def setting(self, key: str) -> str | None:
        """The value of store setting ``key`` (table ``store_settings``), or None when unset."""
        frame = self.read_table(schema.store_settings, schema.store_settings.c.key == key)
        return None if frame.empty else str(frame["value"].iloc[0])

    def set_setting(self, key: str, value: str) -> None:
        """Record store setting ``key`` = ``value`` (replacing an earlier value)."""
        row = {"key": key, "value": value, "updated_at": dt.datetime.now(dt.UTC)}
        self.upsert(schema.store_settings, pd.DataFrame([row]))

    def run_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(schema.runs.c.run_id)).fetchall()]

    def dispose(self) -> None:
        self.engine.dispose()
