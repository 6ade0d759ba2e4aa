"""The comparison-report sections for the statistics, universe and fallback keys of results.json."""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

import kallos.report.charts as charts
from kallos.report.html import SECTIONS, ReportFrames, render_report

from .conftest import COINS, SIGNIFICANT_PAIR


def _table(html: str, table_id: str) -> str:
    match = re.search(rf'<table id="{re.escape(table_id)}">.*?</table>', html, flags=re.S)
    assert match, f"table {table_id} missing"
    return match.group(0)


def _row(table: str, attrs: str) -> tuple[str, list[str]]:
    match = re.search(rf"<tr([^>]*{re.escape(attrs)}[^>]*)>(.*?)</tr>", table, flags=re.S)
    assert match, f"row {attrs} missing"
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", match.group(2))]
    return match.group(1), cells


def test_primary_verdicts_table_and_intervals(study: tuple[dict[str, Any], Any], report_html: str) -> None:
    results, _ = study
    table = _table(report_html, "verdicts-table")
    a, b = SIGNIFICANT_PAIR
    attrs, cells = _row(table, f'data-a="{a}" data-b="{b}"')
    assert 'class="v-a"' in attrs and cells[2] == "a better"
    v = next(v for v in results["verdicts"] if (v["a"], v["b"]) == SIGNIFICANT_PAIR)
    assert cells[5] == f"{v['sharpe_diff']:+.2f}".replace("-", "−")
    assert cells[8] == f"{v['min_detectable_gap']:.2f}"
    other = next(v for v in results["verdicts"] if v["verdict"] == "no detectable difference")
    _, cells = _row(table, f'data-a="{other["a"]}" data-b="{other["b"]}"')
    assert cells[2] == "no detectable difference" and "would likely go unnoticed" in cells[10]
    assert table.count("<tr ") == len(results["verdicts"]) + 2  # + header row, grouped by 2 objectives
    assert "N = 6 comparisons (1 a better, 5 no detectable difference)" in table
    assert 'id="fig-primary-intervals"' in report_html
    assert _table(report_html, "spa-table").count("<tr") == 1 + len(results["primary"]["spa"])
    mcs = _table(report_html, "mcs-table")
    assert mcs.count("<tr") == 1 + len(results["primary"]["mcs"]["variants"])


def test_calibration_section_shows_size_and_power(report_html: str) -> None:
    size = _table(report_html, "calibration-size-table")
    assert "StepM Sharpe (familywise)" in size and "5.0%" in size
    assert size.count('class="warn"') == 1  # the 9% row is outside the 3-7% band
    power = _table(report_html, "calibration-power-table")
    assert "vol reduction" in power and "mean shift" in power
    assert 'id="fig-calibration-power"' in report_html


def test_sharpe_inference_and_pbo(study: tuple[dict[str, Any], Any], report_html: str) -> None:
    results, _ = study
    table = _table(report_html, "sharpe-table")
    attrs, cells = _row(table, f'data-variant="{SIGNIFICANT_PAIR[0]}"')
    assert 'class="sig"' in attrs and cells[3] == "97.0%"  # DSR > 95% highlighted
    psr = results["sharpe"]["market_cap"]["psr"]
    attrs, cells = _row(table, 'data-variant="market_cap"')
    assert "sig" not in attrs and cells[2] == f"{psr * 100:.1f}%"
    assert "24</strong> trials: 6 forecast-driven variants; 16 stored tuning trials" in report_html
    assert "<strong>35.0%</strong>" in report_html and 'id="fig-pbo-logits"' in report_html


def test_the_answer_leads_the_summary(report_html: str) -> None:
    box = re.search(r'<div class="headline".*?</div>', report_html, flags=re.S).group(0)
    a, b = SIGNIFICANT_PAIR
    assert "<strong>Do learned forecasts build better portfolios?</strong>" in box
    assert f"<code>{a}</code> beats <code>{b}</code> (ΔSharpe" in box
    assert "the other 5 comparisons show no detectable difference" in box
    assert "Hansen's SPA test" in box and "model confidence set" in box
    assert "would likely go unnoticed in 0.3 years of daily data" in box
    assert "Forecast skill against the zero forecast" in box
    assert "Probability of backtest overfitting: <strong>35.0%</strong>" in box
    assert f"<code>{a}</code> at 97.0% (24 trials) — above 95%" in box
    summary = re.search(r'<section id="summary".*?</section>', report_html, flags=re.S).group(0)
    assert summary.index("The answer") < summary.index("The backtest covers")
    # the primary verdicts come right after the summary
    assert report_html.index('<section id="verdicts"') < report_html.index('<section id="configuration"')


def test_universe_flags_coins_missing_from_coingecko(report_html: str) -> None:
    absent = COINS[-1]
    table = _table(report_html, "universe-sources-table")
    attrs, cells = _row(table, f'data-coin="{absent}"')
    assert 'class="warn"' in attrs and cells[1:3] == ["binance close × circulating supply", "no"]
    _, cells = _row(table, f'data-coin="{COINS[0]}"')
    assert cells[1:] == ["coingecko market_cap", "yes", "3"]
    assert f"<strong>Not in CoinGecko:</strong> {absent}" in report_html
    recon = _table(report_html, "universe-reconciliation-table")
    assert "6.1%" in recon and "12.0%" in recon and "exceeds 5.0%" in recon
    assert "Universe method <strong>market_cap</strong>, top 4 coins" in report_html


def test_fallback_counts_and_reasons(study: tuple[dict[str, Any], Any], report_html: str) -> None:
    results, _ = study
    table = _table(report_html, "fallbacks-table")
    attrs, cells = _row(table, 'data-variant="gru/max_sharpe"')
    n = results["strategies"]["gru/max_sharpe"]["fallbacks"]["rebalances"]
    assert 'class="warn"' in attrs
    assert cells[1:5] == ["1", str(n), f"{100 / n:.1f}%", "infeasible: 1"]
    attrs, cells = _row(table, 'data-variant="market_cap"')
    assert cells[1] == "0" and "warn" not in attrs


def test_regimes_and_quarters(study: tuple[dict[str, Any], ReportFrames], report_html: str) -> None:
    results, frames = study
    assert "Days per regime: bull" in report_html
    fig = charts.quarters_heatmap_figure(results["quarters"])
    z = pd.DataFrame(
        np.asarray(fig.data[0].z, dtype=float), index=list(fig.data[0].y), columns=list(fig.data[0].x)
    )
    expected = (1 + frames.returns_net).groupby(frames.returns_net.index.to_period("Q")).prod() - 1
    for key in frames.returns_net.columns:
        for q in expected.index:
            assert z.loc[key, str(q)] == pytest.approx(expected.loc[q, key], abs=1e-12)
    bars = charts.regime_sharpe_figure(results["regimes"]["metrics"])
    assert len(bars.data) == len(frames.returns_net.columns)
    tests = _table(report_html, "regime-tests-table")
    assert tests.count('class="sig"') == 2  # the significant pair, once per regime


def test_rolling_sharpe_known_answer() -> None:
    r = pd.Series([0.01, -0.02, 0.03, 0.0, 0.01, 0.02], index=pd.date_range("2024-01-01", periods=6))
    out = charts.rolling_sharpe(r, window=3)
    assert list(out.index) == list(r.index[2:])
    first = r.iloc[:3]
    assert out.iloc[0] == pytest.approx(first.mean() / first.std(ddof=1) * math.sqrt(365))
    assert charts.rolling_sharpe(pd.Series([0.01] * 5), window=3).empty  # zero variance -> no value


def test_turnover_chart_draws_only_rebalances(study: tuple[dict[str, Any], ReportFrames]) -> None:
    results, frames = study
    fig = charts.turnover_figure(frames.turnover, results["config"]["study"]["portfolio"]["objectives"])
    for trace in fig.data:
        expected = frames.turnover[trace.meta]
        expected = expected[expected > 0]
        np.testing.assert_allclose(np.asarray(trace.y, dtype=float), expected.to_numpy())


def test_sections_absent_without_their_keys(study: tuple[dict[str, Any], ReportFrames]) -> None:
    results, frames = study
    bare = copy.deepcopy(results)
    for key in (
        "primary",
        "calibration",
        "effects",
        "verdicts",
        "sharpe",
        "trials",
        "overfitting",
        "regimes",
        "quarters",
        "universe",
    ):
        bare.pop(key)
    html = render_report(bare, frames).replace(get_plotlyjs(), "")
    for sid in ("verdicts", "calibration", "sharpe", "regimes", "quarters", "universe"):
        assert f'<section id="{sid}"' not in html and f'href="#{sid}"' not in html
    assert 'class="headline"' not in html
    for sid in ("rolling", "turnover", "fallbacks"):  # from frames and strategies, always there
        assert f'<section id="{sid}"' in html
    assert list(SECTIONS) == [
        "summary",
        "verdicts",
        "calibration",
        "published",
        "configuration",
        "data",
        "universe",
        "cumulative",
        "drawdowns",
        "rolling",
        "metrics",
        "weights",
        "turnover",
        "fallbacks",
        "tests",
        "sharpe",
        "regimes",
        "quarters",
        "tuning",
        "forecasts",
        "forecast-evaluation",
        "residuals",
    ]


def test_tearsheet_links_in_metrics_table(study: tuple[dict[str, Any], ReportFrames]) -> None:
    results, frames = study
    linked = {**results, "tearsheets": {"gru/max_sharpe": "tearsheets/gru__max_sharpe.html"}}
    table = _table(render_report(linked, frames), "metrics-table")
    assert table.count('class="ts"') == 1
    assert '<a class="ts" href="tearsheets/gru__max_sharpe.html"' in table


def test_forecast_evaluation_slot(study: tuple[dict[str, Any], ReportFrames]) -> None:
    import plotly.graph_objects as go

    results, frames = study
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4])).to_html(
        full_html=False, include_plotlyjs=False, div_id="fc-x"
    )
    section = {
        "title": "Forecast evaluation",
        "figures": {"x": fig},
        "tables": {"dm": '<table id="fc-dm"></table>'},
    }
    html = render_report(results, frames, forecast_evaluation=section).replace(get_plotlyjs(), "")
    body = re.search(r'<section id="forecast-evaluation">.*?</section>', html, flags=re.S).group(0)
    assert '<table id="fc-dm"></table>' in body and 'id="fc-x"' in body
    assert (
        html.index('id="forecasts"') < html.index('id="forecast-evaluation"') < html.index('id="residuals"')
    )
    assert 'href="#forecast-evaluation"' in html
    assert 'id="forecast-evaluation"' not in render_report(results, frames)
