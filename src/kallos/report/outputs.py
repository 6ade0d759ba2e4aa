"""Write a run's files: results.json, Parquet tables and the HTML report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from kallos.report.html import ReportFrames, write_report

__all__ = ["write_outputs"]


def write_outputs(
    directory: Path, results: dict[str, Any], frames: ReportFrames, tables: dict[str, pd.DataFrame]
) -> dict[str, Path]:
    """Write ``results.json``, ``<name>.parquet`` for each of ``tables`` and ``report.html``.

    Returns the paths written, by name.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    paths["results"] = directory / "results.json"
    paths["results"].write_text(json.dumps(results, indent=1, allow_nan=False))
    for name, table in tables.items():
        paths[name] = directory / f"{name}.parquet"
        table.to_parquet(paths[name], index=False)
    paths["report"] = write_report(directory / "report.html", results, frames)
    return paths
