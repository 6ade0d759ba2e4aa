"""Alembic migrations of the Kallos schema, shipped inside the package.

The revisions live in ``versions/`` beside this file and are found through the package path,
so they work from an installed wheel as well as from a checkout. :class:`kallos.data.Store`
brings a database to :func:`head_revision` when it opens one; ``kallos db upgrade`` does the
same from the command line.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from kallos.data import schema

__all__ = [
    "MIGRATIONS_DIR",
    "VERSION_TABLE",
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "include_name",
    "stamp",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent
#: Kallos' own Alembic version table. Not Alembic's default ``alembic_version``, which Optuna's
#: study storage uses for its tables in the same database.
VERSION_TABLE = "kallos_alembic_version"


def alembic_config(connection: Connection | None = None, schema_name: str | None = None) -> Config:
    """An Alembic ``Config`` for the shipped migrations, bound to ``connection`` when given.

    ``schema_name`` (PostgreSQL) places the Kallos tables and :data:`VERSION_TABLE` in that schema;
    the connection's ``search_path`` must already point at it.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["connection"] = connection
    cfg.attributes["schema_name"] = schema_name
    return cfg


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic ``include_name`` hook: only Kallos tables take part in autogenerate comparisons.

    Other tables in the same database (Optuna's study storage, for instance) are neither
    reported as extra nor proposed for dropping.
    """
    return type_ != "table" or name in schema.metadata.tables


@cache
def head_revision() -> str:
    """The newest revision id shipped with this version of Kallos (e.g. ``"0002"``)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, f"no Alembic revisions found under {MIGRATIONS_DIR / 'versions'}"
    return head


def current_revision(connection: Connection, schema_name: str | None = None) -> str | None:
    """The revision a database is at; None for a database Alembic has never touched."""
    opts: dict[str, str] = {"version_table": VERSION_TABLE}
    if schema_name:
        opts["version_table_schema"] = schema_name
    return MigrationContext.configure(connection, opts=opts).get_current_revision()


def upgrade(connection: Connection, revision: str = "head", schema_name: str | None = None) -> None:
    """Apply the revisions up to ``revision`` on ``connection`` (the caller commits)."""
    command.upgrade(alembic_config(connection, schema_name), revision)


def downgrade(connection: Connection, revision: str, schema_name: str | None = None) -> None:
    """Revert to ``revision`` (``"base"`` drops every Kallos table) on ``connection``."""
    command.downgrade(alembic_config(connection, schema_name), revision)


def stamp(connection: Connection, revision: str, schema_name: str | None = None) -> None:
    """Record ``revision`` as current without running anything (adopting a pre-Alembic database)."""
    command.stamp(alembic_config(connection, schema_name), revision)
