"""Shared pieces of the command line: console, common options, error exit, ``--set`` parsing,
and :func:`no_leftovers`, which undoes what a failed command created."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from kallos.data import DATA_DIR_ENV
from kallos.data.store import Store, kallos_schema_exists, sqlite_path
from kallos.exceptions import KallosError

console = Console(stderr=True)

OutOpt = Annotated[
    Path, typer.Option("--out", help="Directory for runs, models and the default SQLite store.")
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="KALLOS_DATABASE_URL",
        help="SQLAlchemy URL; default sqlite:///<out>/kallos.db (embedded, no server).",
    ),
]


def fail(err: Exception) -> typer.Exit:
    console.print(f"[bold red]error:[/] {err}", soft_wrap=True, highlight=False)
    return typer.Exit(code=2)


def parse_set(values: list[str]) -> dict[str, Any]:
    import tomllib

    out: dict[str, Any] = {}
    for item in values:
        if "=" not in item:
            raise KallosError(
                f"--set {item!r}: expected KEY=VALUE, e.g. --set forecast.models.gru.hidden_size=64"
            )
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = raw
    return out


DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", envvar=DATA_DIR_ENV, help="Provider exports to import when the store is empty."
    ),
]


def _first_missing(path: Path) -> Path | None:
    """The highest ancestor of ``path`` (or ``path``) that does not exist yet, or None."""
    path = path.expanduser().absolute()
    missing = None
    for p in (path, *path.parents):
        if p.exists():
            break
        missing = p
    return missing


@contextlib.contextmanager
def no_leftovers(
    paths: tuple[Path | None, ...] = (),
    database_url: str | None = None,
    schema_name: str | None = None,
    always: bool = False,
    keep_data: bool = False,
) -> Iterator[None]:
    """Leave no new file, directory or database table behind if the block fails.

    Before the block it notes which of ``paths`` (output directories) exist, whether the SQLite
    file of ``database_url`` and its side files (``-journal``, lock files) exist, and whether a
    PostgreSQL database already holds Kallos tables. If the block raises, whatever it created
    of those is removed again: new directories, a new SQLite file with its side files, or the
    Kallos tables of a PostgreSQL database that had none. ``always`` undoes them on success
    too (read-only commands). ``keep_data`` keeps a new database that holds market rows by then
    (a live ingest's whole chunks, which the next run resumes from). Existing files and tables
    are never touched.
    """
    created_roots = [m for m in (_first_missing(p) for p in paths if p is not None) if m is not None]
    db_file: Path | None = None
    db_dir_before: set[str] = set()
    pg_fresh = False
    if database_url:
        with contextlib.suppress(KallosError):
            db_file = sqlite_path(database_url)
            if db_file is None:
                pg_fresh = not kallos_schema_exists(database_url, schema_name)
            else:
                missing = _first_missing(db_file.parent)
                if missing is not None:
                    created_roots.append(missing)
                elif db_file.parent.is_dir():
                    db_dir_before = {f.name for f in db_file.parent.iterdir()}
    try:
        yield
    except BaseException:
        if keep_data and database_url and _holds_market_data(database_url, schema_name):
            if db_file is not None:  # nor the directories that hold it
                created_roots = [r for r in created_roots if r not in (db_file, *db_file.parents)]
            db_file, pg_fresh = None, False
        _undo(created_roots, db_file, db_dir_before, pg_fresh, database_url, schema_name)
        raise
    if always:
        _undo(created_roots, db_file, db_dir_before, pg_fresh, database_url, schema_name)


def _holds_market_data(database_url: str, schema_name: str | None) -> bool:
    with contextlib.suppress(KallosError):
        store = Store(database_url, schema_name, migrate=False)
        try:
            return not store.is_empty()
        finally:
            store.dispose()
    return False


def _undo(
    roots: list[Path],
    db_file: Path | None,
    db_dir_before: set[str],
    pg_fresh: bool,
    database_url: str | None,
    schema_name: str | None,
) -> None:
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)
    if db_file is not None and db_file.parent.is_dir():
        stem = db_file.name
        for f in db_file.parent.iterdir():
            ours = f.name == stem or f.name.startswith((f"{stem}.", f"{stem}-"))
            if ours and f.name not in db_dir_before and f.is_file():
                f.unlink(missing_ok=True)
    if pg_fresh and database_url:
        with contextlib.suppress(KallosError):
            store = Store(database_url, schema_name, migrate=False)
            try:
                if store.current_revision() is not None:
                    store.drop_schema()
            finally:
                store.dispose()
