"""``kallos data``: data-quality checks over the store."""

from __future__ import annotations

import typer

data_app = typer.Typer(no_args_is_help=True, help="Data quality: checks and reports over the store.")


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to ``app``."""
    app.add_typer(data_app, name="data")
