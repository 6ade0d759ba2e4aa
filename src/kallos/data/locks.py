"""Cross-process locks on a store: one ingest per (store, source), one trading cycle per account.

A lock has a ``kind`` (``ingest``, ``trade``) and a name (the source, the account):

* PostgreSQL: a session-level ``pg_advisory_lock`` on a 64-bit key derived from the kind, the name
  and the current schema, held on a dedicated connection (released by the server if the process
  dies).
* SQLite file: a :mod:`filelock` lock file next to the database (``<db>.<name>.<kind>.lock``),
  released by the kernel if the process dies.
* In-memory SQLite: nothing to share between processes; no lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from filelock import FileLock, Timeout
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from kallos.data.store import Store
from kallos.exceptions import StoreError

__all__ = ["advisory_key", "ingest_lock", "lock_path", "store_lock"]


def advisory_key(name: str, kind: str = "ingest") -> int:
    """A signed 64-bit key for ``pg_advisory_lock`` from ``kind`` and ``name`` (8 bytes of a SHA-256)."""
    return int.from_bytes(hashlib.sha256(f"kallos-{kind}:{name}".encode()).digest()[:8], "big", signed=True)


def lock_path(store: Store, name: str, kind: str = "ingest") -> Path | None:
    """The lock file of a file-backed SQLite store, or None (PostgreSQL, in-memory SQLite)."""
    if store.dialect != "sqlite":
        return None
    db = store.engine.url.database
    if not db or db == ":memory:":
        return None
    return Path(db).with_name(f"{Path(db).name}.{name}.{kind}.lock")


@contextmanager
def store_lock(store: Store, name: str, kind: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the ``kind`` lock of ``name`` on ``store`` for the ``with`` block (see the module docstring).

    Parameters
    ----------
    timeout : seconds to wait for the holder to finish; None waits forever, 0 tries once.

    Raises
    ------
    StoreError
        If the lock is not obtained within ``timeout`` (names the kind, the name and the lock).
    """
    if store.dialect == "postgresql":
        with _pg_lock(store, name, kind, timeout):
            yield
        return
    path = lock_path(store, name, kind)
    if path is None:
        yield
        return
    try:
        with FileLock(str(path), timeout=-1 if timeout is None else timeout):
            yield
    except Timeout:
        raise StoreError(f"another {kind} of {name!r} holds {path}; waited {timeout:g} s") from None


def ingest_lock(store: Store, source: str, timeout: float | None = None) -> AbstractContextManager[None]:
    """Hold the ingest lock of ``source`` on ``store`` (:func:`store_lock` of kind ``ingest``).

    Raises
    ------
    StoreError
        If the lock is not obtained within ``timeout`` (names the source and the holder's lock).
    """
    return store_lock(store, source, "ingest", timeout)


@contextmanager
def _pg_lock(store: Store, name: str, kind: str, timeout: float | None) -> Iterator[None]:
    """Session advisory lock; the wait is bounded by PostgreSQL's ``lock_timeout`` (0 = forever)."""
    with store.engine.connect() as conn:
        schema = conn.execute(select(func.current_schema())).scalar_one()
        key = advisory_key(f"{schema}:{name}", kind)
        wait_ms = "0" if timeout is None else f"{max(1, int(timeout * 1000))}ms"  # timeout 0: 1 ms
        conn.execute(select(func.set_config("lock_timeout", wait_ms, False)))
        try:
            conn.execute(select(func.pg_advisory_lock(key)))
        except OperationalError:
            raise StoreError(
                f"another {kind} of {name!r} holds PostgreSQL advisory lock {key}; waited {timeout:g} s"
            ) from None
        finally:
            conn.rollback()
        try:
            yield
        finally:
            conn.execute(select(func.pg_advisory_unlock(key)))
            conn.execute(select(func.set_config("lock_timeout", "0", False)))
            conn.commit()
