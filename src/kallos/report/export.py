"""Export a finished run's tables to CSV files and one Excel workbook.

Tables (each built from the run directory, not recomputed):

``metrics``   one row per variant: ``key, strategy, objective`` then every net metric and every
              gross metric (``gross_`` prefix), plus ``fallbacks`` / ``rebalances``;
``tests``     the pairwise significance tests (``results["tests"]["pairwise"]``);
``verdicts``  the per-pair verdicts (``results["verdicts"]``), when the run has them;
``sharpe``    PSR / DSR per variant (``results["sharpe"]``), when present;
``quarters``  per-quarter return, Sharpe and volatility (``results["quarters"]``), when present;
``regimes``   per-regime metrics (``results["regimes"]["metrics"]``), when present;
``weights``   ``weights.parquet`` (target weights per decision date, long);
``returns``   ``returns.parquet`` (daily simple returns gross and net, and turnover, long).

CSV goes to ``<run>/export/<table>.csv``; Excel to ``<run>/export/results.xlsx`` with one sheet
per table (xlsxwriter). Files are written under temporary names and renamed when complete.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from kallos.exceptions import ConfigError, DataValidationError
from kallos.report.files import atomic_write

__all__ = ["EXPORT_FORMATS", "EXPORT_TABLES", "export_results", "export_tables"]

EXCEL_MAX_ROWS = 1_048_575  # one header row


def _metrics(results: Mapping[str, Any], _: Path) -> pd.DataFrame | None:
    rows = []
    for key, entry in (results.get("strategies") or {}).items():
        fallbacks = entry.get("fallbacks") or {}
        rows.append(
            {
                "key": key,
                "strategy": entry.get("strategy"),
                "objective": entry.get("objective") or "none",
                **(entry.get("metrics_net") or {}),
                **{f"gross_{k}": v for k, v in (entry.get("metrics_gross") or {}).items()},
                "fallbacks": fallbacks.get("count"),
                "rebalances": fallbacks.get("rebalances"),
            }
        )
    return pd.DataFrame.from_records(rows) if rows else None


def _records(*path: str) -> Callable[[Mapping[str, Any], Path], pd.DataFrame | None]:
    def build(results: Mapping[str, Any], _: Path) -> pd.DataFrame | None:
        value: Any = results
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        return pd.DataFrame.from_records(value) if isinstance(value, list) and value else None

    return build


def _sharpe(results: Mapping[str, Any], _: Path) -> pd.DataFrame | None:
    sharpe = results.get("sharpe") or {}
    if not sharpe:
        return None
    return pd.DataFrame.from_records([{"key": k, **v} for k, v in sharpe.items()])


def _parquet(name: str) -> Callable[[Mapping[str, Any], Path], pd.DataFrame | None]:
    def build(_: Mapping[str, Any], run_dir: Path) -> pd.DataFrame | None:
        path = run_dir / f"{name}.parquet"
        return pd.read_parquet(path) if path.exists() else None

    return build


EXPORT_TABLES: Mapping[str, Callable[[Mapping[str, Any], Path], pd.DataFrame | None]] = {
    "metrics": _metrics,
    "tests": _records("tests", "pairwise"),
    "verdicts": _records("verdicts"),
    "sharpe": _sharpe,
    "quarters": _records("quarters"),
    "regimes": _records("regimes", "metrics"),
    "weights": _parquet("weights"),
    "returns": _parquet("returns"),
}
"""Table name -> builder ``(results, run_dir) -> DataFrame | None`` (None: not in this run)."""


def export_tables(run_dir: Path | str) -> dict[str, pd.DataFrame]:
    """The export tables of a run directory, in :data:`EXPORT_TABLES` order, absent ones left out.

    Raises
    ------
    DataValidationError
        If ``<run_dir>/results.json`` is missing or is not valid JSON.
    """
    run_dir = Path(run_dir)
    path = run_dir / "results.json"
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataValidationError(f"{path}: no results.json in the run directory") from None
    except json.JSONDecodeError as err:
        raise DataValidationError(f"{path}: not valid JSON ({err})") from None
    tables = {}
    for name, build in EXPORT_TABLES.items():
        table = build(results, run_dir)
        if table is not None:
            tables[name] = table
    return tables


def _excel_ready(table: pd.DataFrame) -> pd.DataFrame:
    """Excel has no time zones: drop them (values stay UTC)."""
    out = table.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.tz_localize(None)
    return out


def _write_csv(directory: Path, tables: Mapping[str, pd.DataFrame]) -> dict[str, Path]:
    return {
        f"{name}.csv": atomic_write(directory / f"{name}.csv", lambda p, t=table: t.to_csv(p, index=False))
        for name, table in tables.items()
    }


def _write_xlsx(directory: Path, tables: Mapping[str, pd.DataFrame]) -> dict[str, Path]:
    for name, table in tables.items():
        if len(table) > EXCEL_MAX_ROWS:
            raise DataValidationError(
                f"table {name!r} has {len(table):,} rows, more than an Excel sheet holds "
                f"({EXCEL_MAX_ROWS:,}); export it as csv"
            )

    def write(path: Path) -> None:
        with pd.ExcelWriter(path, engine="xlsxwriter") as writer:
            for name, table in tables.items():
                _excel_ready(table).to_excel(writer, sheet_name=name[:31], index=False)
                writer.sheets[name[:31]].freeze_panes(1, 0)

    return {"results.xlsx": atomic_write(directory / "results.xlsx", write)}


EXPORT_FORMATS: Mapping[str, Callable[[Path, Mapping[str, pd.DataFrame]], dict[str, Path]]] = {
    "csv": _write_csv,
    "xlsx": _write_xlsx,
}
"""Format name -> writer ``(export_dir, tables) -> {file name: path}``."""


def export_results(run_dir: Path | str, formats: Iterable[str] = ("csv", "xlsx")) -> dict[str, Path]:
    """Write the run's metrics, tests, verdicts, weights and returns tables as CSV and/or Excel.

    Parameters
    ----------
    run_dir : Path or str
        A finished run directory (holding ``results.json`` and the Parquet tables).
    formats : iterable of str, default ("csv", "xlsx")
        Any of :data:`EXPORT_FORMATS`.

    Returns
    -------
    dict of str to Path
        File name (``"metrics.csv"``, ``"results.xlsx"``, ...) to the path written under
        ``<run_dir>/export/``.

    Raises
    ------
    ConfigError
        For an unknown format (the message lists the known ones).
    DataValidationError
        If ``results.json`` is missing or unreadable, or a table is too long for Excel.
    """
    formats = list(dict.fromkeys(f.strip().lower() for f in formats if f.strip()))
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown:
        raise ConfigError(f"export format(s) {unknown} unknown; use any of {sorted(EXPORT_FORMATS)}")
    tables = export_tables(run_dir)
    directory = Path(run_dir) / "export"
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for fmt in formats:
        written.update(EXPORT_FORMATS[fmt](directory, tables))
    return written
