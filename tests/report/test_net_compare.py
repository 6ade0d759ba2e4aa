"""The "net of X bps" table beside the metrics table (backtest.compare_cost_bps, metrics_net_compare)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from kallos.report.html import ReportFrames, render_report
from kallos.report.schema import ResultsSchemaError, validate_results
from kallos.report.sections import net_compare_table


def _with_compare(study: tuple[dict[str, Any], ReportFrames]) -> dict[str, Any]:
    results = copy.deepcopy(study[0])
    results["config"]["study"]["backtest"]["compare_cost_bps"] = 25
    for i, entry in enumerate(results["strategies"].values()):
        net = entry["metrics_net"]
        entry["metrics_net_compare"] = {**net, "cost_bps": 25, "sharpe": net["sharpe"] - 0.1 * (i + 1)}
    return results


def _cells(table: str, attrs: str) -> list[str]:
    match = re.search(rf"<tr[^>]*{re.escape(attrs)}[^>]*>(.*?)</tr>", table, flags=re.S)
    assert match, f"row {attrs} missing"
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", match.group(1))]


def test_table_beside_the_metrics(study: tuple[dict[str, Any], ReportFrames]) -> None:
    results = _with_compare(study)
    validate_results(results)
    html = render_report(results, study[1])
    section = re.search(r'<section id="metrics">.*?</section>', html, flags=re.S).group(0)
    assert section.index('id="metrics-table"') < section.index("<h3>Net of 25 bps per side</h3>")
    table = re.search(r'<table id="metrics-compare-table">.*?</table>', section, flags=re.S).group(0)
    assert "instead of backtest.cost_bps = 10 bps; N = 8 variants" in table
    entry = results["strategies"]["gru/max_sharpe"]
    m = entry["metrics_net_compare"]
    cells = _cells(table, 'data-variant="gru/max_sharpe"')
    assert cells[1] == f"{m['total_return'] * 100:.1f}%".replace("-", "−")
    assert cells[3] == f"{m['sharpe']:.2f}".replace("-", "−")
    assert cells[-1] == "−0.10"  # ΔSharpe against the net Sharpe at cost_bps
    assert _cells(table, 'data-variant="market_cap"')[-1] == f"−{0.1 * 7:.2f}"
    assert table.count("<tr data-variant=") == 8


def test_no_table_without_a_compare_cost(study: tuple[dict[str, Any], ReportFrames]) -> None:
    assert net_compare_table(study[0], ["max_sharpe"], list(study[0]["strategies"])) is None
    assert 'id="metrics-compare-table"' not in render_report(*study)


def test_schema_requires_the_cost(study: tuple[dict[str, Any], ReportFrames]) -> None:
    results = _with_compare(study)
    del results["strategies"]["gru/max_sharpe"]["metrics_net_compare"]["cost_bps"]
    with pytest.raises(ResultsSchemaError, match=r"gru/max_sharpe\.metrics_net_compare: 'cost_bps'"):
        validate_results(results)
