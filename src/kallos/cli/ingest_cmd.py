"""``kallos ingest``: bring market data into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kallos.cli.common import DbOpt, OutOpt, console, fail
from kallos.cli.progress import RichProgress
from kallos.data import DATA_DIR_ENV, Store, default_database_url, ingest, ingest_data_dir, resolve_data_dir
from kallos.data.sources import IMPORTERS
from kallos.exceptions import KallosError


def register(app: typer.Typer) -> None:
    """Add the ``ingest`` command to ``app``."""
    app.command("ingest")(ingest_cmd)


def ingest_cmd(
    source: Annotated[
        str, typer.Option(help=f"One of {sorted(IMPORTERS)}, or 'all' for a data directory.")
    ] = "all",
    path: Annotated[
        Path | None,
        typer.Option(help=f"File or directory of the source's exports [default: ${DATA_DIR_ENV} for 'all']."),
    ] = None,
    out: OutOpt = Path("out"),
    database_url: DbOpt = None,
) -> None:
    """Import provider exports into the store (idempotent upserts, one transaction)."""
    try:
        store = Store(database_url or default_database_url(out))
        with RichProgress(console).stage(f"Importing {source}", total=None):
            if source == "all":
                report = ingest_data_dir(store, resolve_data_dir(path))
            else:
                if path is None:
                    raise KallosError(f"--path is required with --source {source}")
                report = ingest(store, source, path)
    except KallosError as err:
        raise fail(err) from None
    for table, n in report.rows.items():
        typer.echo(f"{table}: {n} rows upserted")
    typer.echo(f"{len(report.files)} file(s) read; {len(report.notes)} note(s)")
    for note in report.notes:
        typer.echo(f"  note: {note}")
