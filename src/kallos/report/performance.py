"""Performance sections: cumulative returns, drawdowns, rolling Sharpe, metrics, weights, turnover.

Each builder reads the daily frames (:class:`~kallos.report.blocks.ReportFrames`) and the
``strategies`` block of ``results.json``; the ordered registry that places them is
:data:`kallos.report.html.SECTIONS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
from markupsafe import Markup

import kallos.report.charts as charts
from kallos.report.blocks import Block, Figure, Heading, Section, SectionContext, TableBlock
from kallos.report.sections import net_compare_table
from kallos.report.tables import (
    Cell,
    Group,
    Header,
    Row,
    Table,
    as_float,
    figure_html,
    fmt_float,
    fmt_int,
    fmt_pct,
    get,
    n_text,
    period_text,
    split,
    swatch,
)

__all__ = [
    "ROLLING_WINDOW",
    "cumulative_section",
    "drawdowns_section",
    "metrics_section",
    "rolling_section",
    "turnover_section",
    "weights_section",
]

ROLLING_WINDOW = 90


def _returns(ctx: SectionContext) -> pd.DataFrame:
    """Daily net returns of the shown variants (their :class:`PortfolioResult`), in display order."""
    keys = [k for k in ctx.variants if k in ctx.portfolios]
    if not keys:
        return pd.DataFrame(index=ctx.frames.returns_net.index)
    return pd.DataFrame({k: ctx.portfolios[k].returns for k in keys})


def _returns_caption(returns: pd.DataFrame, what: str) -> str:
    valid = returns.dropna(how="all")
    if valid.empty:
        return f"{what}; no data."
    return (
        f"{what}, {period_text(valid.index.min(), valid.index.max())}; "
        f"{n_text(returns.notna().sum(), 'daily observations')} per variant."
    )


def cumulative_section(ctx: SectionContext) -> Section:
    returns = _returns(ctx)
    caption = _returns_caption(
        returns, "Wealth index (1 + r).cumprod() of daily net returns, log scale, one panel per objective"
    )
    fig = figure_html(charts.cumulative_returns_figure(returns, ctx.objectives), "cumulative")
    return Section("cumulative", "Cumulative returns", [Figure(fig, caption)])


def drawdowns_section(ctx: SectionContext) -> Section:
    returns = _returns(ctx)
    caption = _returns_caption(returns, "Drawdown from the running peak, net of costs")
    fig = figure_html(charts.drawdown_figure(returns, ctx.objectives), "drawdowns")
    return Section("drawdowns", "Drawdowns", [Figure(fig, caption)])


def rolling_section(ctx: SectionContext) -> Section | None:
    returns = _returns(ctx)
    n = int(returns.notna().sum().max()) if returns.shape[1] else 0
    window = ROLLING_WINDOW if n >= 2 * ROLLING_WINDOW else max(10, n // 4)
    if returns.empty or n <= window:
        return None
    fig = charts.rolling_sharpe_figure(returns, ctx.objectives, window=window)
    valid = returns.dropna(how="all")
    caption = (
        f"Trailing {window}-day Sharpe ratio of daily net returns, annualised with 365 days (risk-free 0), "
        f"{period_text(valid.index.min(), valid.index.max())}; first value after {window} days."
    )
    return Section("rolling", "Rolling Sharpe ratio", [Figure(figure_html(fig, "rolling-sharpe"), caption)])


def turnover_section(ctx: SectionContext) -> Section | None:
    turnover = ctx.frames.turnover
    cols = [c for c in ctx.variants if c in turnover.columns]
    if turnover.empty or not cols or not (turnover[cols].fillna(0.0) > 0).any().any():
        return None
    t = turnover.loc[:, cols]
    n = int((t.fillna(0.0) > 0).sum().max())
    caption = (
        "One-way turnover (fraction of capital traded) at each rebalance, "
        f"{period_text(t.index.min(), t.index.max())}; up to N = {n:,} rebalances per variant. "
        "Costs are charged on this turnover."
    )
    return Section(
        "turnover",
        "Turnover",
        [Figure(figure_html(charts.turnover_figure(t, ctx.objectives), "turnover"), caption)],
    )


# ----------------------------------------------------------------------------- metrics


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


def metrics_section(ctx: SectionContext) -> Section:
    """The metrics table, and the same variants net of the comparison cost when the run has one."""
    blocks: list[Block] = [TableBlock(_metrics_table(ctx.results, ctx.objectives, ctx.variants))]
    compare = net_compare_table(ctx.results, ctx.objectives, ctx.variants)
    if compare is not None:
        blocks += [Heading(_compare_title(ctx.results)), TableBlock(compare)]
    return Section("metrics", "Performance metrics", blocks)


# ----------------------------------------------------------------------------- weights


def weights_section(ctx: SectionContext) -> Section:
    """Target weights of the forecast-driven variants (benchmarks are not drawn)."""
    weights = ctx.frames.weights
    if weights.empty or not (weights["objective"].astype(str) != "none").any():
        return Section("weights", "Portfolio weights", [Figure(None, "")])
    caption = (
        "Target weights at each decision date, "
        f"{period_text(weights['date'].min(), weights['date'].max())}; "
        f"N = {weights['date'].nunique():,} decision dates."
    )
    fig = figure_html(charts.weights_figure(weights, ctx.objectives), "weights")
    return Section("weights", "Portfolio weights", [Figure(fig, caption)])
