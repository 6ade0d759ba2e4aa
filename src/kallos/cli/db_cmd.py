"""``kallos db``: schema migrations (Alembic)."""

from __future__ import annotations

import typer

db_app = typer.Typer(no_args_is_help=True, help="Database schema: Alembic migrations.")


def register(app: typer.Typer) -> None:
    """Add the ``db`` command group to ``app``."""
    app.add_typer(db_app, name="db")
