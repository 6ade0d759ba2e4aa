"""Write a run's files: results.json, Parquet tables, QuantStats tearsheets and the HTML report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from kallos.exceptions import DataValidationError
from kallos.report.blocks import ReportFrames
from kallos.report.html import PLOTLY_JS, report_assets, write_report
from kallos.report.schema import validate_results
from kallos.report.tearsheets import BENCHMARK_KEY, write_tearsheets

if TYPE_CHECKING:
    from kallos.evaluation.forecast_metrics import ForecastEvaluation

__all__ = ["read_run", "write_outputs"]


def write_outputs(
    directory: Path,
    results: dict[str, Any],
    frames: ReportFrames,
    tables: dict[str, pd.DataFrame],
    *,
    tearsheets: bool = True,
    forecast_evaluation: ForecastEvaluation | None = None,
    assets: str | None = None,
) -> dict[str, Path]:
    """Write ``results.json``, ``<name>.parquet`` for each of ``tables``, the tearsheets and ``report.html``.

    ``results`` is validated against ``results.schema.json`` before anything is written
    (:func:`kallos.report.schema.validate_results`). With ``tearsheets`` and a ``market_cap``
    column in ``frames.returns_net``, one QuantStats page per variant goes to
    ``tearsheets/<key>.html`` and the mapping is stored as ``results["tearsheets"]`` (the
    caller's dict is not modified). ``forecast_evaluation`` and ``assets`` are passed to the report
    (:func:`kallos.report.html.write_report`; ``assets`` defaults to the run's ``report.assets``).
    Under ``assets="shared"`` ``plotly.min.js`` is written beside ``report.html``.

    Returns the paths written, by name (``"tearsheet:<key>"`` for each tearsheet, ``"plotly_js"``
    for the shared bundle).

    Raises
    ------
    ResultsSchemaError
        If ``results`` does not match the schema (names the JSON path).
    """
    validate_results(results)
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, table in tables.items():
        paths[name] = directory / f"{name}.parquet"
        table.to_parquet(paths[name], index=False)
    if tearsheets and BENCHMARK_KEY in frames.returns_net.columns:
        sheets = write_tearsheets(directory, frames.returns_net)
        results = {**results, "tearsheets": sheets}
        paths.update({f"tearsheet:{k}": directory / v for k, v in sheets.items()})
        validate_results(results)
    paths["results"] = directory / "results.json"
    paths["results"].write_text(json.dumps(results, indent=1, allow_nan=False))
    paths["report"] = write_report(
        directory / "report.html",
        results,
        frames,
        forecast_evaluation=forecast_evaluation,
        assets=assets,
    )
    if report_assets(results, assets) == "shared":
        paths["plotly_js"] = directory / PLOTLY_JS
    return paths


def read_run(run_dir: Path | str) -> tuple[dict[str, Any], ReportFrames]:
    """Load ``results.json`` and the report frames back from a run directory (to re-render its report).

    ``returns.parquet`` (long: ``key, date, return_gross, return_net, turnover``, turnover on the
    day that bears its cost) is pivoted back to the wide daily frames; turnover is moved back one
    day to its decision date. ``weights.parquet`` and ``forecasts.parquet`` are read as written.

    Raises
    ------
    DataValidationError
        If ``results.json`` or ``returns.parquet`` is missing (the message names the file).
    """
    run_dir = Path(run_dir)
    needed = [run_dir / "results.json", run_dir / "returns.parquet"]
    if missing := [str(p) for p in needed if not p.is_file()]:
        raise DataValidationError(f"{', '.join(missing)}: missing; not a complete run directory")
    results = json.loads(needed[0].read_text(encoding="utf-8"))
    long = pd.read_parquet(needed[1])
    long["date"] = pd.to_datetime(long["date"])
    keys = list(dict.fromkeys(long["key"]))  # variant order as written

    def pivot(column: str) -> pd.DataFrame:
        return long.pivot(index="date", columns="key", values=column).reindex(columns=keys)

    wide = {c: pivot(c) for c in ("return_net", "return_gross")}
    turnover = pivot("turnover").fillna(0.0)
    turnover.index = turnover.index - pd.Timedelta(days=1)

    def table(name: str, columns: list[str]) -> pd.DataFrame:
        path = run_dir / f"{name}.parquet"
        return pd.read_parquet(path, columns=columns) if path.is_file() else pd.DataFrame(columns=columns)

    frames = ReportFrames(
        returns_net=wide["return_net"],
        returns_gross=wide["return_gross"],
        turnover=turnover,
        weights=table("weights", ["strategy", "objective", "date", "coin_id", "weight"]),
        forecasts=table(
            "forecasts", ["forecaster", "coin_id", "as_of", "horizon", "forecast", "realised", "fold_cutoff"]
        ),
    )
    return results, frames
