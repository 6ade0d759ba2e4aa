"""docs/notebook.md is executed cell by cell, as a notebook would run it, and its results are checked."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "notebook.md"
CELL = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def cells(text: str) -> list[str]:
    """The ``python`` code blocks of a Markdown page, in order."""
    return CELL.findall(text)


def test_cells_are_found() -> None:
    """The extraction sees every python block (a page with none would pass vacuously)."""
    assert cells("a\n```python\nx = 1\n```\nb\n```python\ny = 2\n```\n") == ["x = 1\n", "y = 2\n"]
    assert len(cells(DOC.read_text(encoding="utf-8"))) >= 7


@pytest.mark.slow
def test_notebook_example_runs(tmp_path, monkeypatch, data_dir) -> None:
    """Loads the real data, runs a small study, prints a verdict and writes a report with no store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KALLOS_DATA_DIR", str(data_dir))
    namespace: dict = {"__name__": "__notebook__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for i, code in enumerate(cells(DOC.read_text(encoding="utf-8"))):
            try:
                exec(compile(code, f"{DOC.name}[cell {i}]", "exec"), namespace)
            except Exception as err:  # pragma: no cover - the message says which cell failed
                pytest.fail(f"cell {i} of {DOC.name} raised {type(err).__name__}: {err}\n{code}")
    printed = out.getvalue()

    import kallos

    result = namespace["result"]
    assert isinstance(result, kallos.StudyResult)
    verdict = namespace["verdict"]
    assert isinstance(verdict, kallos.Verdict)
    assert verdict.label in {
        "a better",
        "b better",
        "no detectable difference",
        "no difference",
        "undetermined",
    }
    assert str(verdict) in printed
    # the verdict agrees with the results document's record of the same pair
    doc = result.to_results()
    row = next(v for v in doc["verdicts"] if (v["a"], v["b"]) == ("gru/max_sharpe", "zero/max_sharpe"))
    assert row["verdict"] == verdict.label
    # kallos.evaluate on the study's own returns reaches the study's verdicts
    assert (
        namespace["comparison"].table()["verdict"].tolist() == result.comparison.table()["verdict"].tolist()
    )
    # the report was written without a store, and it shows the run's variants
    report = tmp_path / "report.html"
    html = report.read_text(encoding="utf-8")
    assert "gru/max_sharpe" in html and "Kallos study report" in html
    assert not list(tmp_path.glob("*.db")), "a store file was created"
    # typed results round-trip into results.json: the strategies block is their serialisation
    gru = result.portfolio("gru/max_sharpe")
    assert doc["strategies"]["gru/max_sharpe"]["metrics_net"]["sharpe"] == pytest.approx(gru.sharpe)
    assert doc["strategies"]["gru/max_sharpe"]["fallbacks"]["count"] == gru.fallbacks.count
    weights = namespace["optimizer"].weights_
    assert weights.sum() == pytest.approx(1.0) and (weights <= 0.6 + 1e-9).all()
    assert "<table" in gru._repr_html_() and "<table" in result.comparison._repr_html_()
