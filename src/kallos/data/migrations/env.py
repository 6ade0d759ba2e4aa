"""Alembic environment: migrates the Kallos tables only, optionally inside one PostgreSQL schema.

Kallos passes an open connection (``config.attributes["connection"]``, inside a transaction it
owns) and the schema name (``config.attributes["schema_name"]``); the plain ``alembic`` command
line passes ``-x url=...`` instead. Tables that are not Kallos's (Optuna's, for instance, which
live in the same database) are invisible to autogenerate comparisons.
"""

from __future__ import annotations

import importlib

from alembic import context
from sqlalchemy import create_engine

from kallos.data import schema
from kallos.data.migrations import VERSION_TABLE, include_name

# The environment sees the whole model: every module that adds a table to schema.metadata.
importlib.import_module("kallos.features.store")

config = context.config
target_metadata = schema.metadata


def _configure_and_run(connection, schema_name: str | None) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=include_name,
        version_table=VERSION_TABLE,
        version_table_schema=schema_name,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    schema_name = config.attributes.get("schema_name")
    if connection is not None:
        _configure_and_run(connection, schema_name)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(url)
    with engine.connect() as conn:
        _configure_and_run(conn, schema_name)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Kallos migrations run online only (kallos db upgrade)")
run_migrations_online()
