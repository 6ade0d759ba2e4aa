"""Render the study results as one self-contained, offline HTML report.

The report is a single file: the plotly.js bundle is inlined once in the ``<head>``, every
figure is a ``<div>`` plus a small ``Plotly.newPlot`` call, and all CSS is inline. Nothing is
fetched from the network when the file is opened.

Inputs are the ``results`` dictionary (exactly what is written to ``results.json``) and a
:class:`ReportFrames` holding the daily series the charts need. Missing keys and NaN / None
values never raise; they render as an en dash ("–").

The core sections (summary, configuration, data, returns, drawdowns, metrics, weights, tests,
forecasts) are built here; the statistics, universe, fallback, rolling-Sharpe, turnover,
hyper-parameter tuning and published-results sections come from the registry in
:mod:`kallos.report.sections` and are left out (with their table-of-contents entry) when
their stage is absent from ``results``. Formatting and the table
model live in :mod:`kallos.report.tables`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import DictLoader, Environment, StrictUndefined
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from kallos.evaluation.battery import TEST_LABELS
from kallos.report import charts, sections
from kallos.report.blocks import ReportFrames
from kallos.report.files import atomic_write
from kallos.report.tables import (
    DASH,
    Cell,
    Group,
    Header,
    Row,
    Table,
    as_float,
    figure_html,
    flatten,
    fmt_date,
    fmt_float,
    fmt_int,
    fmt_p,
    fmt_pct,
    fmt_pp,
    fmt_text,
    get,
    headers,
    n_text,
    num,
    period_text,
    record_row,
    record_table,
    split,
    swatch,
    total,
    txt,
)

__all__ = ["ReportFrames", "render_report", "write_report"]

_TEMPLATE = "report.html.j2"
# Read once at import, with the code that fills it: a long-running process never pairs this
# module with a template edited on disk after it started (a missing variable would abort the run).
_TEMPLATE_SOURCE = Path(__file__).with_name("templates").joinpath(_TEMPLATE).read_text(encoding="utf-8")
_MAX_EVENT_ROWS = 1000


def _variant_order(results: Mapping[str, Any], frames: ReportFrames) -> tuple[list[str], list[str]]:
    """Objectives (config order first) and variant keys (grouped by objective, then benchmarks)."""
    keys = list(
        dict.fromkeys([*(get(results, "strategies", default={}) or {}), *map(str, frames.returns_net)])
    )
    found = charts.objectives_of(keys)
    configured = [str(o) for o in get(results, "config", "study", "portfolio", "objectives", default=[])]
    objectives = [o for o in configured if o in found] + [o for o in found if o not in configured]

    def rank(key: str) -> tuple[int, tuple[int, str]]:
        strategy, objective = split(key)
        group = objectives.index(objective) if objective is not None else len(objectives)
        return group, charts.strategy_rank(strategy)

    return objectives, sorted(keys, key=rank)


# ----------------------------------------------------------------------------- sections


def _summary(results: Mapping[str, Any], objectives: Sequence[str], variants: Sequence[str]) -> list[Markup]:
    """Plain-language findings computed from ``results``; one Markup sentence per item."""
    sentences: list[Markup] = []
    strategies = get(results, "strategies", default={})
    study = get(results, "config", "study", default={})
    period = get(results, "tests", "period", default={}) or {}
    if not period and strategies:
        period = get(next(iter(strategies.values())), "period", default={})
    universe_coins = get(results, "data", "panel", "universe_coins") or []
    top_n = get(study, "universe", "top_n")
    cost = as_float(get(study, "backtest", "cost_bps"))
    if period:
        text = Markup("The backtest covers <strong>{}</strong> ({} daily observations)").format(
            period_text(period.get("start"), period.get("end")), fmt_int(period.get("n_days"))
        )
        if top_n is not None and universe_coins:
            text += Markup(" on a monthly top-{} universe drawn from {} coins").format(
                fmt_int(top_n), fmt_int(len(universe_coins))
            )
        if cost is not None:
            text += Markup(", with trading costs of {} bps per unit of one-way turnover").format(f"{cost:g}")
        rebalance = get(study, "backtest", "rebalance")
        if rebalance:
            text += Markup(" and {} rebalancing").format(rebalance)
        sentences.append(text + Markup("."))

    def sharpe(key: str) -> float | None:
        return as_float(get(strategies, key, "metrics_net", "sharpe"))

    benchmarks = [k for k in variants if split(k)[1] is None]
    for objective in objectives:
        ranked = [(k, s) for k in variants if split(k)[1] == objective and (s := sharpe(k)) is not None]
        if not ranked:
            continue
        ranked.sort(key=lambda ks: -ks[1])
        listing = Markup(", ").join(
            Markup("<code>{}</code> ({})").format(split(k)[0], fmt_float(s)) for k, s in ranked
        )
        text = Markup("Under <strong>{}</strong>, the net Sharpe ratios rank {}").format(objective, listing)
        bench = [(k, s) for k in benchmarks if (s := sharpe(k)) is not None]
        if bench:
            text += Markup("; benchmarks: {}").format(
                Markup(", ").join(Markup("<code>{}</code> ({})").format(k, fmt_float(s)) for k, s in bench)
            )
            beaten = [k for k, _ in bench if ranked[0][1] > dict(bench)[k]]
            if len(beaten) == len(bench):
                text += Markup(". The best forecast-driven variant beats both benchmarks")
            elif not beaten:
                text += Markup(". No forecast-driven variant beats the benchmarks")
        sentences.append(text + Markup("."))

    tests = get(results, "tests", default={})
    pairwise = [r for r in get(tests, "pairwise", default=[]) if isinstance(r, Mapping)]
    if pairwise:
        alpha = as_float(tests.get("alpha")) or 0.05
        adj_key = _adjusted_key(tests)
        sig = [r for r in pairwise if _is_significant(r, adj_key, alpha)]
        sentences.append(
            Markup(
                "The exploratory battery ran {} tests on every pair of variants; {} {} significant at α = {} "
                "after {} correction over that family. They describe how the return distributions differ "
                "and do not enter the verdicts."
            ).format(
                fmt_int(len(pairwise)),
                len(sig),
                "is" if len(sig) == 1 else "are",
                f"{alpha:g}",
                "Benjamini-Hochberg" if adj_key == "p_bh" else "Holm",
            )
        )
    return sentences


def _config_section(results: Mapping[str, Any]) -> tuple[Table, list[Table]]:
    config = get(results, "config", default={})
    meta = [
        ("run id", fmt_text(config.get("run_id"))),
        ("Kallos version", fmt_text(config.get("kallos_version"))),
        ("created at", fmt_text(config.get("created_at"))),
        ("config hash", fmt_text(config.get("config_hash"))),
        ("data hash", fmt_text(config.get("data_hash"))),
        ("database", fmt_text(get(results, "data", "database"))),
    ]
    meta_table = Table(
        "run-table",
        "Run identity: the config hash and data hash together identify this run.",
        [Header("field"), Header("value")],
        [Group(None, [Row([Cell(k), Cell(v, "mono")]) for k, v in meta])],
    )
    study = get(config, "study", default={})
    general = {k: v for k, v in study.items() if not isinstance(v, Mapping)}
    cards: list[Table] = []
    blocks = ([("general", general)] if general else []) + [
        (k, v) for k, v in study.items() if isinstance(v, Mapping)
    ]
    for name, block in blocks:
        rows = [Row([Cell(k, "mono"), Cell(v, "mono")]) for k, v in flatten(block)]
        cards.append(Table(f"config-{name}", name, [Header("key"), Header("value")], [Group(None, rows)]))
    return meta_table, cards


def _data_section(results: Mapping[str, Any]) -> dict[str, Any]:
    data = get(results, "data", default={})
    sources = [s for s in get(data, "sources", default=[]) if isinstance(s, Mapping)]
    src_cols = [
        txt("source", "source"),
        txt("coin_id", "coin"),
        txt("first", "first", fmt_date),
        txt("last", "last", fmt_date),
        num("rows", "rows", fmt_int),
    ]
    src_period = period_text(
        min((s.get("first") for s in sources if s.get("first")), default=None),
        max((s.get("last") for s in sources if s.get("last")), default=None),
    )
    sources_table = record_table(
        "sources-table",
        f"Rows stored per source and coin, {src_period}; "
        f"N = {total(sources, 'rows'):,} rows from {len(sources)} source×coin series.",
        sorted(sources, key=lambda s: (str(s.get("source")), str(s.get("coin_id")))),
        src_cols,
    )
    panel = get(data, "panel", default={})
    quality = get(data, "quality", default={})
    summary = get(quality, "summary", default={})
    events = [e for e in get(quality, "events", default=[]) if isinstance(e, Mapping)]
    summary_table = Table(
        "quality-summary-table",
        f"Data-quality events by rule, panel {period_text(panel.get('start'), panel.get('end'))}; "
        f"N = {len(events):,} events.",
        [Header("rule"), Header("events", "num")],
        [Group(None, [Row([Cell(str(k), "mono"), Cell(fmt_int(v), "num")]) for k, v in summary.items()])],
    )
    ev_cols = [
        txt("rule", "rule"),
        txt("coin_id", "coin"),
        txt("start", "start", fmt_date),
        txt("end", "end", fmt_date),
        num("n_rows", "rows", fmt_int),
        txt("action", "action"),
        txt("detail", "detail"),
    ]
    shown = events[:_MAX_EVENT_ROWS]
    panel_period = period_text(panel.get("start"), panel.get("end"))
    events_table = record_table(
        "quality-events-table",
        f"Data-quality events, {panel_period}; N = {len(events):,} events.",
        shown,
        ev_cols,
    )
    if len(events) > len(shown):
        events_table = Table(
            events_table.id,
            events_table.caption,
            events_table.headers,
            events_table.groups,
            note=f"Showing the first {len(shown):,} of {len(events):,} events; all are in results.json.",
        )
    universe = [m for m in get(data, "universe", default=[]) if isinstance(m, Mapping)]
    uni_rows = []
    for m in universe:
        cons = sorted(
            [c for c in m.get("constituents") or [] if isinstance(c, Mapping)],
            key=lambda c: as_float(c.get("rank")) or math.inf,
        )
        listing = " · ".join(f"{c.get('coin_id')} {fmt_pct(c.get('benchmark_weight'))}" for c in cons)
        uni_rows.append(
            Row(
                [
                    Cell(fmt_text(m.get("month")), "mono"),
                    Cell(fmt_date(m.get("selection_date")), "mono"),
                    Cell(str(len(cons)), "num"),
                    Cell(listing or DASH, "wrap"),
                ]
            )
        )
    months = [str(m.get("month")) for m in universe]
    universe_table = Table(
        "universe-table",
        f"Monthly universe, {months[0] if months else DASH} – {months[-1] if months else DASH}; "
        f"N = {len(universe)} months. Weights are the capped market-cap benchmark weights.",
        [
            Header("month"),
            Header("selected on"),
            Header("coins", "num"),
            Header("constituents (benchmark weight)"),
        ],
        [Group(None, uni_rows)],
    )
    return {
        "panel": panel,
        "panel_text": f"{panel_period}, {fmt_int(panel.get('n_coins'))} coins",
        "sources": sources_table,
        "quality_summary": summary_table,
        "events": events_table,
        "n_events": len(events),
        "universe": universe_table,
        "universe_fig": figure_html(charts.universe_heatmap_figure(universe), "universe")
        if universe
        else None,
    }


def _metrics_table(results: Mapping[str, Any], objectives: Sequence[str], variants: Sequence[str]) -> Table:
    strategies = get(results, "strategies", default={})
    var_level = as_float(get(results, "config", "study", "evaluation", "var_level"))
    var_title = f" at the {var_level:g} level" if var_level is not None else ""
    spec: list[tuple[str, str, str, Callable[[Any], str], str]] = [
        # (label, block, key, formatter, title)
        ("Total", "metrics_net", "total_return", fmt_pct, "Total net return over the period"),
        ("CAGR", "metrics_net", "cagr", fmt_pct, "Compound annual growth rate, net of costs"),
        ("CAGR gross", "metrics_gross", "cagr", fmt_pct, "CAGR before costs"),
        ("Vol", "metrics_net", "annual_volatility", fmt_pct, "Annualised volatility (365 days)"),
        ("Sharpe", "metrics_net", "sharpe", fmt_float, "Annualised Sharpe ratio, net of costs"),
        ("Sharpe gross", "metrics_gross", "sharpe", fmt_float, "Sharpe ratio before costs"),
        ("Sortino", "metrics_net", "sortino", fmt_float, "Annualised Sortino ratio, net"),
        ("Calmar", "metrics_net", "calmar", fmt_float, "CAGR / |max drawdown|, net"),
        ("Max DD", "metrics_net", "max_drawdown", fmt_pct, "Maximum drawdown, net"),
        ("VaR", "metrics_net", "var", lambda v: fmt_pct(v, 2), f"Daily historical value at risk{var_title}"),
        ("CVaR", "metrics_net", "cvar", lambda v: fmt_pct(v, 2), f"Daily expected shortfall{var_title}"),
        ("Skew", "metrics_net", "skewness", fmt_float, "Skewness of daily net returns"),
        ("Kurt", "metrics_net", "kurtosis", fmt_float, "Excess kurtosis of daily net returns"),
        ("Win", "metrics_net", "win_rate", fmt_pct, "Share of days with a positive net return"),
        ("TO / yr", "metrics_net", "turnover_annual", lambda v: fmt_pct(v, 0), "One-way turnover per year"),
        (
            "TO / rebal",
            "metrics_net",
            "turnover_per_rebalance",
            fmt_pct,
            "Mean one-way turnover per rebalance",
        ),
        (
            "Eff. N",
            "metrics_net",
            "effective_n",
            lambda v: fmt_float(v, 1),
            "Mean effective number of coins",
        ),
    ]
    table_headers = [
        Header("variant"),
        *(Header(label, "num", title) for label, *_, title in spec),
        Header("Fallbacks", "num", "Rebalances that used a fallback objective / all rebalances"),
    ]

    sheets = get(results, "tearsheets", default={}) or {}

    def row(key: str, best: bool) -> Row:
        entry = get(strategies, key, default={})
        link = sheets.get(key) if isinstance(sheets, Mapping) else None
        label = swatch(key)
        if link:
            label += Markup(
                ' <a class="ts" href="{}" title="QuantStats tearsheet vs market_cap">tearsheet</a>'
            ).format(link)
        cells = [Cell(label)]
        for label, block, metric, fmt, _ in spec:
            cls = "num best" if best and label == "Sharpe" else "num"
            cells.append(Cell(fmt(get(entry, block, metric)), cls))
        fb = get(entry, "fallbacks", default={})
        reasons = "; ".join(f"{k}: {v}" for k, v in (get(fb, "by_reason", default={}) or {}).items())
        cells.append(Cell(f"{fmt_int(fb.get('count'))} / {fmt_int(fb.get('rebalances'))}", "num", reasons))
        return Row(cells, attrs={"data-variant": key})

    groups: list[Group] = []
    for objective in objectives:
        keys = [k for k in variants if split(k)[1] == objective]
        sharpes = {k: as_float(get(strategies, k, "metrics_net", "sharpe")) for k in keys}
        top = max((s for s in sharpes.values() if s is not None), default=None)
        groups.append(Group(objective, [row(k, top is not None and sharpes[k] == top) for k in keys]))
    bench = [k for k in variants if split(k)[1] is None]
    if bench:
        groups.append(Group("benchmarks", [row(k, False) for k in bench]))
    periods = [get(strategies, k, "period", default={}) for k in variants]
    starts = [p.get("start") for p in periods if p.get("start")]
    ends = [p.get("end") for p in periods if p.get("end")]
    caption = (
        "Performance by variant, net of costs unless marked gross; "
        f"{period_text(min(starts, default=None), max(ends, default=None))}; "
        f"{n_text((p.get('n_days') for p in periods), 'daily observations')}. "
        "Bold: highest net Sharpe ratio within an objective."
    )
    return Table("metrics-table", caption, table_headers, groups)


def _compare_title(results: Mapping[str, Any]) -> str:
    cost = as_float(get(results, "config", "study", "backtest", "compare_cost_bps"))
    return f"Net of {cost:g} bps per side" if cost is not None else "Net at the comparison cost"


def _adjusted_key(tests: Mapping[str, Any]) -> str:
    correction = str(tests.get("correction") or "holm").lower()
    return {"holm": "p_holm", "bh": "p_bh", "fdr_bh": "p_bh", "benjamini-hochberg": "p_bh"}.get(
        correction, "p_holm"
    )


def _p_label(adj_key: str) -> str:
    return {"p_holm": "p (Holm)", "p_bh": "p (BH)"}.get(adj_key, adj_key)


def _is_significant(row: Mapping[str, Any], adj_key: str, alpha: float) -> bool:
    p = as_float(row.get(adj_key))
    if p is None:
        return bool(row.get("significant"))
    return p < alpha


def _tests_table(
    results: Mapping[str, Any], objectives: Sequence[str], *, only_significant: bool = False
) -> Table:
    """Pairwise tests grouped by objective.

    Rows significant after Holm get class ``sig``; rows significant only after BH get ``sig-bh``.
    """
    tests = get(results, "tests", default={})
    alpha = as_float(tests.get("alpha")) or 0.05
    adj_key = _adjusted_key(tests)
    rows = [r for r in get(tests, "pairwise", default=[]) if isinstance(r, Mapping)]
    columns = [
        txt("a", "A", lambda v: swatch(str(v)) if v is not None else DASH),
        txt("b", "B", lambda v: swatch(str(v)) if v is not None else DASH),
        txt("test", "test", lambda v: TEST_LABELS.get(str(v), fmt_text(v))),
        num("statistic", "statistic", lambda v: fmt_float(v, 3)),
        num("p_value", "p", fmt_p, "Unadjusted p-value"),
        num("p_holm", "p (Holm)", fmt_p, "Holm-adjusted p-value (family-wise error)"),
        num("p_bh", "p (BH)", fmt_p, "Benjamini-Hochberg adjusted p-value (false discovery rate)"),
        num(
            "cohens_d",
            "Cohen's d",
            lambda v: fmt_float(v, 3),
            "Standardised mean difference of daily returns",
        ),
        num("mean_diff_annual", "Δ mean / yr", lambda v: fmt_pct(v, 2, signed=True), "Annualised A − B"),
        num("n", "N", fmt_int, "Daily observations"),
    ]
    table_headers = [
        *headers(columns),
        Header(
            "effect [95% CI]", "num", "The test's own effect size and confidence interval (name on hover)"
        ),
        Header("BH", "", f"p (BH) < α = {alpha:g} (false discovery rate)"),
        Header("significant", "", f"{_p_label(adj_key)} < α = {alpha:g}"),
    ]
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        grouped.setdefault(sections._objective_of(r), []).append(r)
    order = {o: i for i, o in enumerate(objectives)}
    groups = []
    n_shown = 0
    for group in sorted(grouped, key=lambda g: (order.get(g, len(order)), g)):
        out = []
        for r in grouped[group]:
            sig = _is_significant(r, adj_key, alpha)
            bh = as_float(r.get("p_bh"))
            sig_bh = bh is not None and bh < alpha
            if only_significant and not (sig or sig_bh):
                continue
            base = record_row(r, columns)
            effect = as_float(r.get("effect"))
            effect_text = (
                DASH
                if effect is None
                else f"{fmt_float(effect, 3)} "
                f"[{fmt_float(r.get('ci_low'), 3)}, {fmt_float(r.get('ci_high'), 3)}]"
            )
            cells = [
                *base.cells,
                Cell(effect_text, "num", fmt_text(r.get("effect_name")) if r.get("effect_name") else ""),
                Cell("yes" if sig_bh else "no", "flag"),
                Cell("yes" if sig else "no", "flag"),
            ]
            cls = "sig" if sig else ("sig-bh" if sig_bh else "")
            out.append(
                Row(
                    cells,
                    cls,
                    {"data-a": str(r.get("a")), "data-b": str(r.get("b")), "data-test": str(r.get("test"))},
                )
            )
        n_shown += len(out)
        if out:
            groups.append(Group(group, out))
    period = get(tests, "period", default={})
    n_values = [period.get("n_days")] if period.get("n_days") is not None else [r.get("n") for r in rows]
    family = tests.get("family_size") or len(rows)
    caption = (
        ("Significant pairwise tests" if only_significant else "Pairwise tests")
        + " of daily net returns, A vs B, "
        f"{period_text(period.get('start'), period.get('end'))}; "
        f"{n_text(n_values, 'daily observations')}; family of {family} tests. "
        f"Correction: {tests.get('correction') or 'holm'}, "
        f"α = {alpha:g}; highlighted rows have {_p_label(adj_key)} < α, lightly highlighted only p (BH) < α."
    )
    return Table(
        "tests-significant-table" if only_significant else "tests-table", caption, table_headers, groups
    )


def _forecast_section(results: Mapping[str, Any], frames: ReportFrames) -> dict[str, Any]:
    fc = get(results, "forecasts", default={})
    baseline = str(fc.get("baseline") or "zero")
    horizon = fmt_int(fc.get("horizon"))
    period = get(fc, "period", default={})
    span = period_text(period.get("start"), period.get("end"))
    overall = [r for r in get(fc, "overall", default=[]) if isinstance(r, Mapping)]
    cols = [
        txt("forecaster", "forecaster", lambda v: swatch(str(v))),
        txt("coin_id", "coin"),
        num("n", "N", fmt_int, "Forecasts with a realised value"),
        num("rmse", "RMSE", lambda v: fmt_float(v, 4), "Root mean squared error, log-return units"),
        num("mae", "MAE", lambda v: fmt_float(v, 4), "Mean absolute error, log-return units"),
        num("directional_accuracy", "DA", fmt_pct, "Share of forecasts with the right sign"),
        num("r2_oos", "R²oos", fmt_pct, "Out-of-sample R² against the zero forecast (> 0 beats zero)"),
        num("rmse_ratio", "RMSE ratio", lambda v: fmt_float(v, 3), f"RMSE / RMSE of {baseline}"),
        num("da_diff", "DA − base", fmt_pp, f"DA minus DA of {baseline}, percentage points"),
    ]
    rank = lambda r: (charts.strategy_rank(str(r.get("forecaster"))), str(r.get("coin_id")))  # noqa: E731
    pooled = sorted((r for r in overall if str(r.get("coin_id")) == "all"), key=rank)
    per_coin = sorted((r for r in overall if str(r.get("coin_id")) != "all"), key=rank)
    what = f"{horizon}-day forward log returns; ratios and differences are relative to {baseline}"
    overall_table = record_table(
        "forecast-overall-table",
        f"Forecast accuracy pooled over coins, {span}; "
        f"{n_text((r.get('n') for r in pooled), 'forecasts')} per forecaster; {what}.",
        pooled,
        cols,
    )
    per_coin_table = record_table(
        "forecast-coin-table",
        f"Forecast accuracy per coin, {span}; "
        f"{n_text((r.get('n') for r in per_coin), 'forecasts')} per forecaster and coin; {what}.",
        per_coin,
        cols,
    )
    bcq = [r for r in get(fc, "by_coin_quarter", default=[]) if isinstance(r, Mapping)]
    q_cols = [
        *cols[:2],
        txt("quarter", "quarter"),
        *cols[2:7],
        cols[7],
        num("mae_ratio", "MAE ratio", lambda v: fmt_float(v, 3), f"MAE / MAE of {baseline}"),
        cols[8],
    ]
    bcq_sorted = sorted(bcq, key=lambda r: (*rank(r), str(r.get("quarter"))))
    quarter_table = record_table(
        "forecast-quarter-table",
        f"Forecast accuracy per coin and quarter, {span}; "
        f"N = {total(bcq, 'n'):,} forecasts in {len(bcq):,} cells; {what}.",
        bcq_sorted,
        q_cols,
    )
    models = get(fc, "models", default={})
    res = charts.residuals(frames.forecasts) if not frames.forecasts.empty else None
    residual_caption = ""
    if res is not None and len(res):
        counts = res.groupby("forecaster").size()
        residual_caption = (
            f"Residual = realised − forecast ({horizon}-day log returns), one panel per coin, "
            f"forecasters overlaid; {span}; N = "
            + ", ".join(
                f"{n:,} ({f})" for f, n in sorted(counts.items(), key=lambda fn: charts.strategy_rank(fn[0]))
            )
            + " forecasts."
        )
    return {
        "overall": overall_table,
        "per_coin": per_coin_table,
        "by_quarter": quarter_table,
        "models_text": f"{fmt_int(models.get('trained'))} models trained over "
        f"{fmt_int(models.get('folds'))} walk-forward folds",
        "da_fig": figure_html(charts.directional_accuracy_figure(bcq), "da-quarter") if bcq else None,
        "da_caption": f"Directional accuracy by quarter, pooled over coins (n-weighted), {span}; "
        f"N = {total(bcq, 'n'):,} forecasts.",
        "residual_fig": (
            figure_html(charts.residual_histograms_figure(frames.forecasts), "residuals")
            if res is not None and len(res)
            else None
        ),
        "residual_caption": residual_caption,
    }


# ----------------------------------------------------------------------------- public API


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=DictLoader({_TEMPLATE: _TEMPLATE_SOURCE}),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _returns_caption(returns: pd.DataFrame, what: str) -> str:
    valid = returns.dropna(how="all")
    if valid.empty:
        return f"{what}; no data."
    return (
        f"{what}, {period_text(valid.index.min(), valid.index.max())}; "
        f"{n_text(returns.notna().sum(), 'daily observations')} per variant."
    )


_SECTION_ORDER: tuple[tuple[str, str], ...] = (
    ("summary", "Summary"),
    ("verdicts", "Primary comparisons and verdicts"),
    ("calibration", "Calibration of the primary tests"),
    ("published", "Published results beside ours"),
    ("configuration", "Configuration"),
    ("data", "Data coverage"),
    ("universe", "Universe construction"),
    ("cumulative", "Cumulative returns"),
    ("drawdowns", "Drawdowns"),
    ("rolling", "Rolling Sharpe ratio"),
    ("metrics", "Performance metrics"),
    ("weights", "Portfolio weights"),
    ("turnover", "Turnover"),
    ("fallbacks", "Decision fallbacks"),
    ("tests", "Exploratory pairwise tests"),
    ("sharpe", "Sharpe inference and overfitting"),
    ("regimes", "Market regimes"),
    ("quarters", "Quarterly breakdown"),
    ("tuning", "Hyper-parameter tuning"),
    ("forecasts", "Forecast accuracy"),
    ("forecast-evaluation", "Forecast evaluation"),
    ("residuals", "Forecast residuals"),
)
"""Table of contents; ids also in :data:`kallos.report.sections.SECTIONS` appear only when built."""


def _forecast_evaluation(section: Mapping[str, Any] | None) -> Markup | None:
    """SLOT for the forecast-evaluation section: the dict of ``kallos.report.forecasts.forecast_section``.

    ``{"title", "figures": {name: html}, "tables": {name: html}}`` (trusted HTML fragments built
    by our own code; plotly.js is not repeated) -> the section body; None leaves the section out.
    """
    if not section:
        return None
    parts = [Markup(html) for html in (section.get("tables") or {}).values()]
    parts += [
        Markup("<figure>{}</figure>").format(Markup(html)) for html in (section.get("figures") or {}).values()
    ]
    return Markup("\n").join(parts) if parts else None


def render_report(
    results: Mapping[str, Any],
    frames: ReportFrames,
    *,
    forecast_evaluation_section: Mapping[str, Any] | None = None,
) -> str:
    """Render the full study report as one self-contained HTML document.

    Parameters
    ----------
    results : mapping
        The study results, structured as in ``results.json`` (keys ``config``, ``data``,
        ``strategies``, ``tests``, ``forecasts``). Missing keys and NaN / None values are
        tolerated and shown as "–".
    frames : ReportFrames
        Daily returns, turnover, weights and forecasts behind the charts.
    forecast_evaluation_section : mapping, optional
        ``kallos.report.forecasts.forecast_section(evaluation)``; rendered as the "Forecast
        evaluation" section after "Forecast accuracy" (left out when None).

    Returns
    -------
    str
        The HTML document. It embeds the plotly.js bundle exactly once and references no
        external resource, so it works offline.
    """
    objectives, variants = _variant_order(results, frames)
    config = get(results, "config", default={})
    meta_table, config_cards = _config_section(results)
    extra = sections.build_sections(sections.SectionContext(results, frames, objectives, variants))
    forecast_evaluation = _forecast_evaluation(forecast_evaluation_section)
    toc = [
        (sid, label)
        for sid, label in _SECTION_ORDER
        if (sid not in extra or extra[sid] is not None)
        and (sid != "forecast-evaluation" or forecast_evaluation is not None)
    ]
    returns = frames.returns_net.loc[:, [c for c in variants if c in frames.returns_net.columns]]
    has_weights = not frames.weights.empty and (frames.weights["objective"].astype(str) != "none").any()
    context = {
        "title": "Kallos study report",
        "run_id": fmt_text(config.get("run_id")),
        "created_at": fmt_text(config.get("created_at")),
        "version": fmt_text(config.get("kallos_version")),
        "plotlyjs": Markup(get_plotlyjs()),
        "sections": toc,
        "extra": extra,
        "headline": sections.headline(results, objectives),
        "forecast_evaluation": forecast_evaluation,
        "summary": _summary(results, objectives, variants),
        "meta_table": meta_table,
        "config_cards": config_cards,
        "data": _data_section(results),
        "cumulative_fig": figure_html(charts.cumulative_returns_figure(returns, objectives), "cumulative"),
        "cumulative_caption": _returns_caption(
            returns, "Wealth index (1 + r).cumprod() of daily net returns, log scale, one panel per objective"
        ),
        "drawdown_fig": figure_html(charts.drawdown_figure(returns, objectives), "drawdowns"),
        "drawdown_caption": _returns_caption(returns, "Drawdown from the running peak, net of costs"),
        "metrics": _metrics_table(results, objectives, variants),
        "metrics_compare": sections.net_compare_table(results, objectives, variants),
        "metrics_compare_title": _compare_title(results),
        "weights_fig": (
            figure_html(charts.weights_figure(frames.weights, objectives), "weights") if has_weights else None
        ),
        "weights_caption": (
            "Target weights at each decision date, "
            f"{period_text(frames.weights['date'].min(), frames.weights['date'].max())}; "
            f"N = {frames.weights['date'].nunique():,} decision dates."
            if has_weights
            else ""
        ),
        "tests": _tests_table(results, objectives),
        "tests_significant": _tests_table(results, objectives, only_significant=True),
        "forecast": _forecast_section(results, frames),
    }
    return _environment().get_template(_TEMPLATE).render(**context)


def write_report(
    path: Path | str,
    results: Mapping[str, Any],
    frames: ReportFrames,
    *,
    forecast_evaluation_section: Mapping[str, Any] | None = None,
) -> Path:
    """Render the report and write it atomically.

    The HTML goes to a temporary file in the destination folder, which then replaces ``path``
    in one ``os.replace``; a reader never sees a half-written report and a failure leaves no
    temporary file behind.

    Parameters
    ----------
    path : Path or str
        Destination file; its parent folders are created if needed.
    results : mapping
        The study results (see :func:`render_report`).
    frames : ReportFrames
        Daily series behind the charts.
    forecast_evaluation_section : mapping, optional
        See :func:`render_report`.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    text = render_report(results, frames, forecast_evaluation_section=forecast_evaluation_section)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline="\n"))
