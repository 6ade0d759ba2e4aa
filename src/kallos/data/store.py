"""Database access: one :class:`Store` over SQLite (embedded default) or PostgreSQL.

Every write is an idempotent upsert inside one transaction, so importing twice leaves
the same rows and a failure half-way leaves the store as it was.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, Table, create_engine, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from kallos.data import schema
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


def _records(frame: pd.DataFrame, table: Table) -> list[dict[str, Any]]:
    """DataFrame rows as dicts of plain Python values for ``table``; NaN/NaT become None."""
    cols = [c.name for c in table.columns if c.name in frame.columns]
    date_cols = {c.name for c in table.columns if isinstance(c.type, schema.Date)}
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


class Store:
    """A Kallos database.

    Parameters
    ----------
    url : SQLAlchemy URL, e.g. ``sqlite:///out/kallos.db`` or
        ``postgresql://postgres@127.0.0.1:5432/test``.
    schema_name : optional PostgreSQL schema (search_path) to isolate tables, used by tests.

    Raises
    ------
    StoreError
        If the database cannot be reached.
    """

    def __init__(self, url: str, schema_name: str | None = None) -> None:
        self.url = _normalise_url(url)
        kwargs: dict[str, Any] = {"future": True}
        if self.url.startswith("sqlite:///"):
            db_path = Path(self.url.removeprefix("sqlite:///"))
            if str(db_path) not in ("", ":memory:"):
                db_path.parent.mkdir(parents=True, exist_ok=True)
        if schema_name and self.url.startswith("postgresql"):
            kwargs["connect_args"] = {"options": f"-csearch_path={schema_name}"}
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

    # ------------------------------------------------------------------ schema
    def create_schema(self) -> None:
        """Create every table that does not exist yet (idempotent)."""
        schema.metadata.create_all(self.engine)

    def drop_schema(self) -> None:
        schema.metadata.drop_all(self.engine)

    # ------------------------------------------------------------------ writes
    def _upsert_stmt(self, table: Table):
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        stmt = insert(table)
        pk = [c.name for c in table.primary_key.columns]
        updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in pk}
        if updates:
            return stmt.on_conflict_do_update(index_elements=pk, set_=updates)
        return stmt.on_conflict_do_nothing(index_elements=pk)

    def upsert_many(self, frames: Mapping[Table, pd.DataFrame]) -> dict[str, int]:
        """Upsert several tables in one transaction; all rows land or none do.

        Returns the number of rows written per table name.
        """
        counts: dict[str, int] = {}
        try:
            with self.engine.begin() as conn:
                for table, frame in frames.items():
                    records = _records(frame, table)
                    stmt = self._upsert_stmt(table)
                    for i in range(0, len(records), _CHUNK):
                        conn.execute(stmt, records[i : i + _CHUNK])
                    counts[table.name] = len(records)
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
        """Whole table (optionally filtered) as a DataFrame; DATE columns as datetime64."""
        stmt = select(table)
        if where is not None:
            stmt = stmt.where(where)
        with self.engine.connect() as conn:
            result = conn.execute(stmt)
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        for col in table.columns:
            if isinstance(col.type, schema.Date) and col.name in frame:
                frame[col.name] = pd.to_datetime(frame[col.name])
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
