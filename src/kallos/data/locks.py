"""Cross-process ingest locks: one writer per (store, source) at a time.

* PostgreSQL: a session-level ``pg_advisory_lock`` on a 64-bit key derived from the source and the
  current schema, held on a dedicated connection (released by the server if the process dies).
* SQLite file: a :mod:`filelock` lock file next to the database (``<db>.<source>.ingest.lock``),
  released by the kernel if the process dies.
* In-memory SQLite: nothing to share between processes; no lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from kallos.data.store import Store
from kallos.exceptions import StoreError

__all__ = ["advisory_key", "ingest_lock", "lock_path"]


def advisory_key(name: str) -> int:
    """A signed 64-bit key for ``pg_advisory_lock`` from ``name`` (first 8 bytes of its SHA-256)."""
    return int.from_bytes(hashlib.sha256(f"kallos-ingest:{name}".encode()).digest()[:8], "big", signed=True)


def lock_path(store: Store, source: str) -> Path | None:
    """The lock file of a file-backed SQLite store, or None (PostgreSQL, in-memory SQLite)."""
    if store.dialect != "sqlite":
        return None
    db = store.engine.url.database
    if not db or db == ":memory:":
        return None
    return Path(db).with_name(f"{Path(db).name}.{source}.ingest.lock")


@contextmanager
def ingest_lock(store: Store, source: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the ingest lock of ``source`` on ``store`` for the ``with`` block.

    Parameters
    ----------
    timeout : seconds to wait for another ingest to finish; None waits forever.

    Raises
    ------
    StoreError
        If the lock is not obtained within ``timeout`` (names the source and the holder's lock).
    """
    if store.dialect == "postgresql":
        with _pg_lock(store, source, timeout):
            yield
        return
    path = lock_path(store, source)
    if path is None:
        yield
        return
    try:
        with FileLock(str(path), timeout=-1 if timeout is None else timeout):
            yield
    except Timeout:
        raise StoreError(f"another ingest of {source!r} holds {path}; waited {timeout:g} s") from None


@contextmanager
def _pg_lock(store: Store, source: str, timeout: float | None) -> Iterator[None]:
    """Session advisory lock; the wait is bounded by PostgreSQL's ``lock_timeout`` (0 = forever)."""
    with store.engine.connect() as conn:
        schema = conn.execute(select(func.current_schema())).scalar_one()
        key = advisory_key(f"{schema}:{source}")
        wait_ms = "0" if timeout is None else f"{max(1, int(timeout * 1000))}ms"
        conn.execute(select(func.set_config("lock_timeout", wait_ms, False)))
        try:
            conn.execute(select(func.pg_advisory_lock(key)))
        except OperationalError:
            raise StoreError(
                f"another ingest of {source!r} holds PostgreSQL advisory lock {key}; waited {timeout:g} s"
            ) from None
        finally:
            conn.rollback()
        try:
            yield
        finally:
            conn.execute(select(func.pg_advisory_unlock(key)))
            conn.execute(select(func.set_config("lock_timeout", "0", False)))
            conn.commit()
