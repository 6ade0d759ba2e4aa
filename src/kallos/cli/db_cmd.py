"""``kallos db``: schema migrations (Alembic revisions shipped in :mod:`kallos.data.migrations`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kallos.cli.common import DbOpt, OutOpt, fail, no_leftovers
from kallos.data import Store, default_database_url, migrations
from kallos.exceptions import KallosError

db_app = typer.Typer(no_args_is_help=True, help="Database schema: Alembic migrations.")

SchemaOpt = Annotated[
    str | None,
    typer.Option("--schema", help="PostgreSQL schema holding the Kallos tables [default: search_path]."),
]


def register(app: typer.Typer) -> None:
    """Add the ``db`` command group to ``app``."""
    app.add_typer(db_app, name="db")


def _open(url: str, schema: str | None) -> Store:
    return Store(url, schema_name=schema, migrate=False)


def _describe(revision: str | None) -> str:
    head = migrations.head_revision()
    if revision == head:
        return f"{revision} (head)"
    return f"{revision or 'empty (no revision)'}; head is {head}, run `kallos db upgrade`"


@db_app.command("upgrade")
def upgrade_cmd(
    revision: Annotated[str, typer.Option(help="Target revision id.")] = "head",
    out: OutOpt = Path("out"),
    database_url: DbOpt = None,
    schema: SchemaOpt = None,
) -> None:
    """Bring the database to a revision (default: the newest). Safe to run twice or concurrently."""
    url = database_url or default_database_url(out)
    try:
        with no_leftovers(database_url=url, schema_name=schema):  # a failed upgrade creates nothing
            store = _open(url, schema)
            before = store.current_revision()
            after = store.migrate(revision)
            store.dispose()
    except KallosError as err:
        raise fail(err) from None
    typer.echo(f"upgraded {before or 'empty'} -> {after}" if before != after else f"already at {after}")


@db_app.command("current")
def current_cmd(out: OutOpt = Path("out"), database_url: DbOpt = None, schema: SchemaOpt = None) -> None:
    """Print the database's schema revision and whether it is the newest; changes nothing."""
    url = database_url or default_database_url(out)
    try:
        with no_leftovers(database_url=url, schema_name=schema, always=True):  # creates no database
            store = _open(url, schema)
            revision = store.current_revision()
            store.dispose()
    except KallosError as err:
        raise fail(err) from None
    typer.echo(_describe(revision))


@db_app.command("downgrade")
def downgrade_cmd(
    revision: Annotated[
        str, typer.Argument(help="Target revision id, or 'base' to drop every Kallos table.")
    ],
    out: OutOpt = Path("out"),
    database_url: DbOpt = None,
    schema: SchemaOpt = None,
) -> None:
    """Revert the schema to an older revision (data in dropped tables and columns is lost)."""
    url = database_url or default_database_url(out)
    try:
        with no_leftovers(database_url=url, schema_name=schema):
            store = _open(url, schema)
            revision_now = store.downgrade(revision)
            store.dispose()
    except KallosError as err:
        raise fail(err) from None
    typer.echo(f"downgraded to {revision_now or 'empty'}")
