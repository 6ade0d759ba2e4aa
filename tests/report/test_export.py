"""CSV / Excel export of a run directory's tables."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kallos.exceptions import ConfigError, DataValidationError
from kallos.pipeline.results import jsonable
from kallos.report.export import export_results, export_tables
from kallos.report.html import ReportFrames
from kallos.report.outputs import write_outputs


@pytest.fixture(scope="module")
def run_dir(study: tuple[dict[str, Any], ReportFrames], tmp_path_factory: pytest.TempPathFactory) -> Path:
    results, frames = study
    returns = frames.returns_net.stack().rename("return_net").reset_index().rename(columns={"level_1": "key"})
    directory = tmp_path_factory.mktemp("export") / "run"
    write_outputs(
        directory,
        jsonable(results),
        frames,
        {"weights": frames.weights, "returns": returns},
        tearsheets=False,
    )
    return directory


def _sheets(path: Path) -> dict[str, int]:
    """Sheet name -> number of rows, read straight from the workbook XML (no Excel reader needed)."""
    with zipfile.ZipFile(path) as z:
        names = re.findall(r'<sheet name="([^"]+)"', z.read("xl/workbook.xml").decode())
        return {
            name: len(re.findall(r"<row ", z.read(f"xl/worksheets/sheet{i}.xml").decode()))
            for i, name in enumerate(names, start=1)
        }


def test_tables_come_from_the_run(study: tuple[dict[str, Any], ReportFrames], run_dir: Path) -> None:
    results, frames = study
    tables = export_tables(run_dir)
    assert list(tables) == [
        "metrics",
        "tests",
        "verdicts",
        "sharpe",
        "quarters",
        "regimes",
        "weights",
        "returns",
    ]
    metrics = tables["metrics"].set_index("key")
    assert set(metrics.index) == set(results["strategies"])
    m = results["strategies"]["gru/max_sharpe"]
    assert metrics.loc["gru/max_sharpe", "sharpe"] == pytest.approx(m["metrics_net"]["sharpe"])
    assert metrics.loc["gru/max_sharpe", "gross_cagr"] == pytest.approx(m["metrics_gross"]["cagr"])
    assert metrics.loc["gru/max_sharpe", "fallbacks"] == 1
    assert len(tables["tests"]) == len(results["tests"]["pairwise"])
    assert list(tables["verdicts"]["verdict"]) == [v["verdict"] for v in results["verdicts"]]
    assert len(tables["weights"]) == len(frames.weights)
    assert tables["returns"]["return_net"].sum() == pytest.approx(np.nansum(frames.returns_net.to_numpy()))


def test_csv_and_xlsx_written(run_dir: Path) -> None:
    written = export_results(run_dir, ("csv", "xlsx"))
    tables = export_tables(run_dir)
    assert set(written) == {f"{n}.csv" for n in tables} | {"results.xlsx"}
    for name, table in tables.items():
        back = pd.read_csv(written[f"{name}.csv"])
        assert back.shape == table.shape, name
        assert list(back.columns) == list(table.columns)
    np.testing.assert_allclose(
        pd.read_csv(written["returns.csv"])["return_net"], tables["returns"]["return_net"]
    )
    sheets = _sheets(written["results.xlsx"])
    assert sheets == {name: len(table) + 1 for name, table in tables.items()}  # header + one row per record
    assert sorted(p.name for p in (run_dir / "export").iterdir()) == sorted(written)  # no temp files


def test_csv_only_and_errors(run_dir: Path, tmp_path: Path) -> None:
    written = export_results(run_dir, ["CSV "])
    assert all(name.endswith(".csv") for name in written)
    with pytest.raises(ConfigError, match=r"\['pdf'\] unknown; use any of \['csv', 'xlsx'\]"):
        export_results(run_dir, ("csv", "pdf"))
    with pytest.raises(DataValidationError, match=r"empty/results\.json: no results\.json"):
        export_results(tmp_path / "empty")


def test_cli_rejects_unknown_export_format_before_running(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kallos.cli.app import app

    res = CliRunner().invoke(app, ["run", "--out", str(tmp_path), "--export", "csv,pdf"])
    assert res.exit_code == 2
    assert "--export: unknown format(s) ['pdf']" in res.output
    assert not list(tmp_path.iterdir())  # nothing run, nothing written


def test_read_run_gives_back_the_report_inputs(
    study: tuple[dict[str, Any], ReportFrames], tmp_path: Path
) -> None:
    from kallos.report.outputs import read_run

    results, frames = study
    cost_day = frames.turnover.copy()
    cost_day.index = cost_day.index + pd.Timedelta(
        days=1
    )  # as persist stores it: on the day bearing the cost
    long = pd.concat(
        {
            "return_gross": frames.returns_gross.stack(),
            "return_net": frames.returns_net.stack(),
            "turnover": cost_day.reindex(frames.returns_net.index, fill_value=0.0).stack(),
        },
        axis=1,
    ).reset_index(names=["date", "key"])
    run = tmp_path / "run"
    write_outputs(
        run, jsonable(results), frames, {"returns": long, "weights": frames.weights}, tearsheets=False
    )
    back, back_frames = read_run(run)
    assert back == jsonable(results)
    pd.testing.assert_frame_equal(
        back_frames.returns_net, frames.returns_net, check_names=False, check_freq=False
    )
    pd.testing.assert_frame_equal(
        back_frames.returns_gross, frames.returns_gross, check_names=False, check_freq=False
    )
    turnover = frames.turnover.iloc[:-1]  # the last decision's cost falls after the sample
    pd.testing.assert_frame_equal(
        back_frames.turnover.loc[turnover.index], turnover, check_names=False, check_freq=False
    )
    assert len(back_frames.weights) == len(frames.weights) and back_frames.forecasts.empty
    with pytest.raises(DataValidationError, match=r"returns\.parquet: missing"):
        read_run(tmp_path / "nowhere")
