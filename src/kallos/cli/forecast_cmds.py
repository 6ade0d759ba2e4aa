"""``kallos tune``, ``kallos models`` and ``kallos forecasts``: the forecasting lab."""

from __future__ import annotations

import typer

models_app = typer.Typer(no_args_is_help=True, help="The model registry: trained models and their hashes.")
forecasts_app = typer.Typer(no_args_is_help=True, help="Forecast evaluation reports.")


def register(app: typer.Typer) -> None:
    """Add ``tune``, ``models`` and ``forecasts`` to ``app``."""
    app.add_typer(models_app, name="models")
    app.add_typer(forecasts_app, name="forecasts")
