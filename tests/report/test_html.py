"""The HTML report: offline and self-contained, complete, and faithful to its inputs."""

from __future__ import annotations

import copy
import math
import os
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

import kallos.report.charts as charts
from kallos.report.html import ReportFrames, render_report, write_report
from kallos.report.tables import fmt_float, fmt_p, fmt_pct

# The forecast-driven strategies of the report fixture (tests/report/conftest.py).
FIXTURE_STRATEGIES = ("gru", "historical_mean", "naive_persistence")

SECTION_HEADINGS = [
    "Kallos study report",
    "Primary comparisons and verdicts",
    "Calibration: size and power of the primary tests",
    "Configuration",
    "Data coverage",
    "Universe construction",
    "Cumulative returns",
    "Drawdowns",
    "Rolling Sharpe ratio",
    "Performance metrics",
    "Portfolio weights",
    "Turnover",
    "Decision fallbacks",
    "Exploratory pairwise tests",
    "Sharpe inference and overfitting",
    "Market regimes",
    "Quarterly breakdown",
    "Forecast accuracy",
    "Forecast residuals",
]
DASH = "–"


# ----------------------------------------------------------------------------- helpers


def _table(html: str, table_id: str) -> str:
    match = re.search(rf'<table id="{re.escape(table_id)}">.*?</table>', html, flags=re.S)
    assert match, f"table {table_id} missing"
    return match.group(0)


def _headers(table: str) -> list[str]:
    thead = re.search(r"<thead>(.*?)</thead>", table, flags=re.S).group(1)
    return re.findall(r"<th[^>]*>(.*?)</th>", thead)


def _row(table: str, attrs: str) -> tuple[str, list[str]]:
    """The opening-tag attributes and the cell texts of the row whose tag contains ``attrs``."""
    match = re.search(rf"<tr([^>]*{re.escape(attrs)}[^>]*)>(.*?)</tr>", table, flags=re.S)
    assert match, f"row {attrs} missing"
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", match.group(2))]
    return match.group(1), cells


def _without_plotlyjs(html: str) -> str:
    return html.replace(get_plotlyjs(), "")


def _objectives(results: dict[str, Any]) -> list[str]:
    return results["config"]["study"]["portfolio"]["objectives"]


def _panel_of(trace: Any) -> str:
    return trace.xaxis or "x"


# ----------------------------------------------------------------------------- self-contained


def test_plotlyjs_inlined_exactly_once_in_head(report_html: str) -> None:
    js = get_plotlyjs()
    assert report_html.count(js) == 1
    assert report_html.index(js) < report_html.index("</head>")
    assert report_html.startswith("<!DOCTYPE html>")


def test_report_references_no_external_resource(report_html: str) -> None:
    rest = _without_plotlyjs(report_html)
    assert not re.search(r"<script[^>]*\bsrc\s*=", rest, flags=re.I)
    assert not re.search(r"<link\b", rest, flags=re.I)
    assert not re.search(r"""\b(?:src|href)\s*=\s*["']?(?:https?:)?//""", rest, flags=re.I)
    assert not re.search(r"url\(\s*['\"]?(?:https?:)?//|@import", rest, flags=re.I)
    assert "cdn.plot.ly" not in rest


def test_each_figure_div_has_one_newplot_call(report_html: str) -> None:
    rest = _without_plotlyjs(report_html)
    ids = re.findall(r'<div id="(fig-[^"]+)" class="plotly-graph-div"', rest)
    assert set(ids) == {
        "fig-primary-intervals",
        "fig-calibration-power",
        "fig-universe",
        "fig-universe-pit",
        "fig-cumulative",
        "fig-drawdowns",
        "fig-rolling-sharpe",
        "fig-weights",
        "fig-turnover",
        "fig-pbo-logits",
        "fig-regimes",
        "fig-quarters",
        "fig-da-quarter",
        "fig-residuals",
    }
    assert rest.count("Plotly.newPlot(") == len(ids)


# ----------------------------------------------------------------------------- structure


def test_sections_present_in_order_with_toc(report_html: str) -> None:
    rest = _without_plotlyjs(report_html)
    positions = []
    for heading in SECTION_HEADINGS:
        match = re.search(rf"<h[12]>{re.escape(heading)}</h[12]>", rest)
        assert match, heading
        positions.append(match.start())
    assert positions == sorted(positions)
    toc = re.search(r'<nav class="toc".*?</nav>', rest, flags=re.S).group(0)
    for section_id in re.findall(r'<section id="([^"]+)"', rest):
        assert f'href="#{section_id}"' in toc


def test_every_variant_in_metrics_table(study: tuple[dict[str, Any], ReportFrames], report_html: str) -> None:
    results, frames = study
    table = _table(report_html, "metrics-table")
    keys = set(results["strategies"]) | set(frames.returns_net.columns)
    assert len(keys) == 8
    for key in keys:
        assert f'data-variant="{key}"' in table
        assert f"<code>{key}</code>" in table
    assert table.count("<tr data-variant=") == len(keys)


def test_metrics_formatted_from_results(study: tuple[dict[str, Any], ReportFrames], report_html: str) -> None:
    results, _ = study
    table = _table(report_html, "metrics-table")
    headers = _headers(table)
    m = results["strategies"]["gru/max_sharpe"]
    _, cells = _row(table, 'data-variant="gru/max_sharpe"')
    assert cells[headers.index("CAGR")] == fmt_pct(m["metrics_net"]["cagr"])
    assert cells[headers.index("CAGR gross")] == fmt_pct(m["metrics_gross"]["cagr"])
    assert cells[headers.index("Sharpe")] == f"{m['metrics_net']['sharpe']:.2f}".replace("-", "−")
    assert cells[headers.index("Max DD")].endswith("%") and cells[headers.index("Max DD")].startswith("−")
    assert cells[headers.index("Fallbacks")] == f"1 / {m['fallbacks']['rebalances']}"


def test_nan_and_missing_metrics_render_as_dash(
    study: tuple[dict[str, Any], ReportFrames], report_html: str
) -> None:
    results, _ = study
    nan_variant = next(k for k, v in results["strategies"].items() if v["metrics_net"].get("sortino") is None)
    table = _table(report_html, "metrics-table")
    headers = _headers(table)
    _, cells = _row(table, f'data-variant="{nan_variant}"')
    assert cells[headers.index("Calmar")] == DASH  # NaN
    assert cells[headers.index("Sortino")] == DASH  # None
    assert cells[headers.index("Eff. N")] == DASH  # key missing
    cell_texts = re.findall(r"<td[^>]*>(.*?)</td>", _without_plotlyjs(report_html), flags=re.S)
    assert not [c for c in cell_texts if re.search(r"\b(nan|NaN|None|inf)\b", re.sub(r"<[^>]+>", "", c))]


def test_tables_captioned_with_period_and_n(report_html: str) -> None:
    period = r"\d{4}-\d{2}-\d{2} – \d{4}-\d{2}-\d{2}"
    for table_id in ("metrics-table", "tests-table", "forecast-overall-table", "forecast-coin-table",
                     "forecast-quarter-table", "sources-table", "quality-events-table"):  # fmt: skip
        caption = re.search(r"<caption>(.*?)</caption>", _table(report_html, table_id), flags=re.S).group(1)
        assert re.search(period, caption), (table_id, caption)
        assert re.search(r"N = [\d,]+", caption), (table_id, caption)
    assert "N = 120 daily observations" in _table(report_html, "metrics-table")


# ----------------------------------------------------------------------------- tests table


def test_significant_rows_highlighted(study: tuple[dict[str, Any], ReportFrames], report_html: str) -> None:
    results, _ = study
    tests = results["tests"]
    table = _table(report_html, "tests-table")
    sig = [r for r in tests["pairwise"] if r["p_holm"] < tests["alpha"]]
    not_sig = [r for r in tests["pairwise"] if r["p_holm"] >= tests["alpha"]]
    assert sig and not_sig
    for r in sig:
        attrs, cells = _row(table, f'data-a="{r["a"]}" data-b="{r["b"]}"')
        assert 'class="sig"' in attrs
        assert cells[-1] == "yes"
        assert "e−" in cells[_headers(table).index("p (Holm)")]  # tiny p-values in scientific notation
    bh_only = [r for r in not_sig if r["p_bh"] < tests["alpha"]]
    assert len(bh_only) == 1  # the fixture has one row significant under BH but not Holm
    for r in not_sig:
        attrs, cells = _row(table, f'data-a="{r["a"]}" data-b="{r["b"]}"')
        assert 'class="sig"' not in attrs
        assert cells[-1] == "no"
        assert ('class="sig-bh"' in attrs) == (r in bh_only)
        assert cells[-2] == ("yes" if r in bh_only else "no")
    assert table.count('<tr class="sig"') == len(sig)
    assert table.count('<tr class="sig-bh"') == len(bh_only)


def test_tests_grouped_by_objective_with_effect_sizes(
    study: tuple[dict[str, Any], ReportFrames], report_html: str
) -> None:
    results, _ = study
    table = _table(report_html, "tests-table")
    groups = re.findall(r'<tr class="group"><th colspan="\d+">(.*?)</th></tr>', table)
    assert groups == _objectives(results)
    headers = _headers(table)
    assert "Cohen&#39;s d" in headers and "Δ mean / yr" in headers
    r = results["tests"]["pairwise"][0]
    _, cells = _row(table, f'data-a="{r["a"]}" data-b="{r["b"]}"')
    assert cells[headers.index("Cohen&#39;s d")] == fmt_float(r["cohens_d"], 3)
    assert cells[headers.index("Δ mean / yr")] == fmt_pct(r["mean_diff_annual"], 2, signed=True)
    assert "holm" in table and "α = 0.05" in table


# ----------------------------------------------------------------------------- summary


def _summary(html: str) -> str:
    return re.search(r'<section id="summary".*?</section>', html, flags=re.S).group(0)


def test_summary_is_computed_from_results(
    study: tuple[dict[str, Any], ReportFrames], report_html: str
) -> None:
    results, frames = study
    summary = _summary(report_html)
    for objective in _objectives(results):
        keys = [k for k in results["strategies"] if k.endswith(f"/{objective}")]
        best = max(keys, key=lambda k: results["strategies"][k]["metrics_net"]["sharpe"])
        expected = f"Under <strong>{objective}</strong>, the net Sharpe ratios rank "
        expected += f"<code>{best.split('/')[0]}</code>"
        assert expected in summary
    # the exploratory battery is summarised with its own correction and kept out of the verdicts
    n_sig = sum(r["p_holm"] < 0.05 for r in results["tests"]["pairwise"])
    assert f"The exploratory battery ran {len(results['tests']['pairwise'])} tests" in summary
    assert f"{n_sig} is significant" in summary and "after Holm correction" in summary
    assert "do not enter the verdicts" in summary

    altered = copy.deepcopy(results)
    altered["tests"]["correction"] = "fdr_bh"
    n_bh = sum(r["p_bh"] < 0.05 for r in altered["tests"]["pairwise"])
    assert f"{n_bh} are significant" in _summary(render_report(altered, frames)) or n_bh == 1


# ----------------------------------------------------------------------------- figures


def test_cumulative_returns_one_panel_per_objective(study: tuple[dict[str, Any], ReportFrames]) -> None:
    results, frames = study
    objectives = _objectives(results)
    fig = charts.cumulative_returns_figure(frames.returns_net, objectives)
    assert len(list(fig.select_xaxes())) == len(objectives)
    assert fig.layout.yaxis2.matches == "y"  # shared y axis
    by_panel: dict[str, list[Any]] = defaultdict(list)
    for trace in fig.data:
        by_panel[_panel_of(trace)].append(trace)
    assert len(by_panel) == len(objectives)
    for axis, objective in zip(["x", "x2"], objectives, strict=True):
        traces = by_panel[axis]
        assert len(traces) == 5
        expected = {f"{s}/{objective}" for s in FIXTURE_STRATEGIES} | set(charts.BENCHMARK_STRATEGIES)
        assert {t.meta for t in traces} == expected
        for t in traces:
            wealth = (1 + frames.returns_net[t.meta]).cumprod().to_numpy()
            np.testing.assert_allclose(np.asarray(t.y, dtype=float), wealth, rtol=0, atol=1e-12)
            assert list(t.x) == list(frames.returns_net.index.strftime("%Y-%m-%d"))
    colours = defaultdict(set)
    for t in fig.data:
        colours[t.name].add(t.line.color)
    assert all(len(c) == 1 for c in colours.values())  # one colour per strategy across panels
    assert len({next(iter(c)) for c in colours.values()}) == 5
    assert sum(bool(t.showlegend) for t in fig.data) == 5  # one legend entry per strategy
    assert fig.layout.yaxis.type == "log"


def test_drawdowns_match_metric(study: tuple[dict[str, Any], ReportFrames]) -> None:
    results, frames = study
    objectives = _objectives(results)
    fig = charts.drawdown_figure(frames.returns_net, objectives)
    assert len(list(fig.select_xaxes())) == len(objectives)
    assert Counter(_panel_of(t) for t in fig.data) == {"x": 5, "x2": 5}
    for t in fig.data:
        y = np.asarray(t.y, dtype=float)
        assert (y <= 0).all()
        assert y.min() == pytest.approx(
            results["strategies"][t.meta]["metrics_net"]["max_drawdown"], abs=1e-12
        )


def test_cumulative_returns_skip_leading_nan() -> None:
    idx = pd.date_range("2024-01-01", periods=4, freq="D")
    returns = pd.DataFrame(
        {"gru/a": [np.nan, 0.1, -0.1, 0.05], "market_cap": [0.01, 0.02, 0.0, -0.01]}, index=idx
    )
    fig = charts.cumulative_returns_figure(returns)
    gru = next(t for t in fig.data if t.meta == "gru/a")
    np.testing.assert_allclose(gru.y, [1.1, 0.99, 1.0395], atol=1e-12)
    assert list(gru.x) == ["2024-01-02", "2024-01-03", "2024-01-04"]


def test_weights_figure_stacks_to_one(study: tuple[dict[str, Any], ReportFrames]) -> None:
    results, frames = study
    objectives = _objectives(results)
    fig = charts.weights_figure(frames.weights, objectives)
    assert len(list(fig.select_xaxes())) == len(FIXTURE_STRATEGIES) * len(objectives)
    stacks: dict[str, np.ndarray] = {}
    for t in fig.data:
        stacks[t.stackgroup] = stacks.get(t.stackgroup, 0) + np.asarray(t.y, dtype=float)
    assert len(stacks) == len(FIXTURE_STRATEGIES) * len(objectives)  # benchmarks not drawn
    for total in stacks.values():
        np.testing.assert_allclose(total, 1.0, atol=1e-12)


def test_residual_histograms_one_panel_per_coin(study: tuple[dict[str, Any], ReportFrames]) -> None:
    _, frames = study
    forecasts = frames.forecasts
    coins = sorted(forecasts["coin_id"].unique())
    fig = charts.residual_histograms_figure(forecasts)
    assert len(list(fig.select_xaxes())) == len(coins)
    assert [a.text for a in fig.layout.annotations] == coins
    assert fig.layout.barmode == "overlay"
    seen = set()
    for t in fig.data:
        forecaster, coin = t.meta.split("|")
        sub = forecasts[(forecasts["forecaster"] == forecaster) & (forecasts["coin_id"] == coin)].dropna(
            subset=["realised"]
        )
        np.testing.assert_array_equal(
            np.asarray(t.x, dtype=float), (sub["realised"] - sub["forecast"]).to_numpy()
        )
        assert 0 < t.opacity < 1
        assert t.marker.color == charts.strategy_colour(forecaster)
        seen.add((forecaster, coin))
    assert seen == {(f, c) for f in forecasts["forecaster"].unique() for c in coins}
    n_plotted = sum(len(t.x) for t in fig.data)
    assert n_plotted == forecasts["realised"].notna().sum() < len(forecasts)


def test_directional_accuracy_is_n_weighted(study: tuple[dict[str, Any], ReportFrames]) -> None:
    results, _ = study
    rows = pd.DataFrame(results["forecasts"]["by_coin_quarter"])
    fig = charts.directional_accuracy_figure(results["forecasts"]["by_coin_quarter"])
    gru = next(t for t in fig.data if t.name == "gru")
    sub = rows[rows["forecaster"] == "gru"]
    expected = (sub["directional_accuracy"] * sub["n"]).groupby(sub["quarter"]).sum() / sub.groupby(
        "quarter"
    )["n"].sum()
    np.testing.assert_allclose(gru.y, expected.to_numpy(), atol=1e-12)
    assert list(gru.x) == list(expected.index)


# ----------------------------------------------------------------------------- robustness, formatting, I/O


def test_render_tolerates_sparse_results(study: tuple[dict[str, Any], ReportFrames]) -> None:
    _, frames = study
    html = render_report({"config": {"run_id": "sparse"}, "strategies": {"gru/max_sharpe": {}}}, frames)
    assert "sparse" in html
    _, cells = _row(_table(html, "metrics-table"), 'data-variant="gru/max_sharpe"')
    assert cells[1:-1] == [DASH] * (len(cells) - 2)


@pytest.mark.parametrize(
    ("func", "value", "expected"),
    [
        (fmt_p, 0.04321, "0.0432"),
        (fmt_p, 1.0, "1.0000"),
        (fmt_p, 3.2e-7, "3.2e−07"),
        (fmt_p, float("nan"), DASH),
        (fmt_pct, 0.1234, "12.3%"),
        (fmt_pct, -0.5, "−50.0%"),
        (fmt_pct, None, DASH),
        (fmt_float, math.inf, "∞"),
        (fmt_float, "not a number", DASH),
        (fmt_float, 1.23456, "1.23"),
    ],
)
def test_formatters(func: Any, value: Any, expected: str) -> None:
    assert func(value) == expected


def test_write_report_is_atomic(
    study: tuple[dict[str, Any], ReportFrames], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results, frames = study
    target = tmp_path / "out" / "report.html"
    written = write_report(target, results, frames)
    assert written == target
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.html"]

    target.write_text("previous report", encoding="utf-8")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_report(target, results, frames)
    assert target.read_text(encoding="utf-8") == "previous report"  # never half-written
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.html"]  # no temp file left


def test_report_size_stays_small(report_html: str) -> None:
    assert len(_without_plotlyjs(report_html).encode()) < 1_000_000
