"""Shared pieces of the command line: console, common options, error exit, ``--set`` parsing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from kallos.data import DATA_DIR_ENV
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
                f"--set {item!r}: expected KEY=VALUE, e.g. --set forecast.recurrent.hidden_size=64"
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
