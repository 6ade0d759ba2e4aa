"""``kallos trade report``: one HTML page of an account beside its shadow backtest.

A chart of the account's value and the backtest's over the same weeks (daily, with the decision
closes marked), a chart of their difference at each decision close, a table per period (values,
fees against the backtest's costs, turnover, the cycle's status and any guard) and a table per
order with every deviation explained (:func:`kallos.trading.parity.compute_parity`). The page is
self-contained: plotly.js is inlined once, nothing is fetched when it is opened.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from kallos.report.files import atomic_write
from kallos.trading.parity import Parity

__all__ = ["PARITY_TOLERANCE", "render_trade_report", "write_trade_report"]

PARITY_TOLERANCE = 1e-9
"""A paper account agrees with its backtest when every value differs by less than this (quote)."""

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:1200px;color:#222;padding:0 1rem}h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem;width:100%}
th,td{padding:.25rem .5rem;border-bottom:1px solid #ddd;text-align:right}th{background:#f4f4f4}
td.l,th.l{text-align:left}.ok{color:#1a7f37}.bad{color:#c62828}
.summary li{margin:.2rem 0}.muted{color:#666}
"""
_CONFIG = {"displaylogo": False, "responsive": True}
_LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 50, "b": 40}, "height": 420}


def _nav_figure(p: Parity) -> go.Figure:
    fig = go.Figure()
    d = p.daily
    fig.add_trace(
        go.Scatter(x=d.index, y=d["nav_backtest"], name="shadow backtest", line={"color": "#2b2d42"})
    )
    fig.add_trace(
        go.Scatter(
            x=d.index, y=d["nav"], name=f"{p.account.mode} account", line={"color": "#e4572e", "dash": "dot"}
        )
    )
    traded = p.periods[p.periods["status"] != "missed"]
    fig.add_trace(
        go.Scatter(
            x=traded["period"],
            y=traded["nav"],
            mode="markers",
            name="decision closes",
            marker={"color": "#e4572e", "size": 7},
        )
    )
    fig.update_layout(title="Account value and the shadow backtest", yaxis_title=p.account.quote, **_LAYOUT)
    return fig


def _difference_figure(p: Parity) -> go.Figure:
    traded = p.periods[p.periods["status"] != "missed"]
    fig = go.Figure(
        go.Bar(
            x=traded["period"], y=traded["difference"], name="account − backtest", marker={"color": "#2e86ab"}
        )
    )
    fig.update_layout(
        title="Difference at each decision close (before trading)", yaxis_title=p.account.quote, **_LAYOUT
    )
    return fig


def _figure_html(fig: go.Figure, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=_CONFIG)


def _num(x: object, fmt: str = "{:,.2f}") -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return fmt.format(x)


def _table(headers: list[str], rows: list[list[str]], left: set[int]) -> str:
    head = "".join(f"<th class='l'>{html.escape(h)}</th>" if i in left else f"<th>{html.escape(h)}</th>"
                   for i, h in enumerate(headers))  # fmt: skip
    body = "".join(
        "<tr>"
        + "".join(f"<td class='l'>{c}</td>" if i in left else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _periods_table(p: Parity) -> str:
    rows = []
    for r in p.periods.itertuples(index=False):
        rows.append(
            [
                f"{pd.Timestamp(r.period):%Y-%m-%d}",
                html.escape(str(r.status)) + (f" ({html.escape(str(r.guard))})" if r.guard else ""),
                _num(r.nav),
                _num(r.nav_backtest),
                _num(r.difference, "{:.3g}"),
                _num(r.fees, "{:,.4f}"),
                _num(r.cost_backtest, "{:,.4f}"),
                _num(r.turnover, "{:.2%}"),
                _num(r.turnover_backtest, "{:.2%}"),
            ]
        )
    headers = ["period", "cycle", "value", "backtest", "difference", "fees", "backtest cost", "turnover",
               "backtest turnover"]  # fmt: skip
    return _table(headers, rows, {0, 1})


def _orders_table(p: Parity) -> str:
    rows = []
    for o in p.orders.itertuples(index=False):
        rows.append(
            [
                f"{pd.Timestamp(o.period):%Y-%m-%d}",
                html.escape(o.client_order_id),
                html.escape(f"{o.side} {o.symbol}"),
                _num(o.target_weight, "{:.2%}"),
                _num(o.quantity, "{:.8g}"),
                _num(o.filled_quantity, "{:.8g}"),
                _num(o.reference_price, "{:.6g}"),
                _num(o.average_price, "{:.6g}"),
                _num(o.fee_quote, "{:.4f}"),
                _num(o.notional_backtest, "{:,.2f}"),
                html.escape(str(o.status)),
                html.escape(str(o.explanation)),
            ]
        )
    headers = ["period", "client order id", "order", "target", "quantity", "filled", "reference",
               "fill price", "fee", "backtest trade", "status", "deviation from the backtest"]  # fmt: skip
    return _table(headers, rows, {0, 1, 2, 10, 11})


def render_trade_report(p: Parity) -> str:
    """The report page as one HTML string (plotly.js inlined once)."""
    a = p.account
    diff = p.max_abs_difference
    traded = p.periods[p.periods["status"] != "missed"]
    missed = int((p.periods["status"] == "missed").sum())
    deviations = int((p.orders["explanation"] != "as the backtest").sum()) if len(p.orders) else 0
    if a.mode == "paper":
        if missed:
            verdict = (
                "<span class='bad'>the account skipped rebalances the backtest made: not comparable</span>"
            )
        elif np.isfinite(diff) and diff < PARITY_TOLERANCE:
            verdict = "<span class='ok'>the paper account equals the backtest to "
            verdict += f"{PARITY_TOLERANCE:g} {a.quote}</span>"
        else:
            verdict = f"<span class='bad'>the paper account is {diff:.3g} {a.quote} off the backtest</span>"
    else:
        verdict = f"{deviations} order(s) deviate from the backtest's trades; each is explained below"
    first, last = p.periods["period"].min(), p.periods["period"].max()
    summary = [
        f"account <b>{html.escape(a.account_id)}</b> ({html.escape(a.mode)}, {html.escape(a.venue)}), "
        f"strategy <b>{html.escape(a.strategy)}</b>, "
        f"initial cash {a.initial_cash:,.2f} {html.escape(a.quote)}",
        f"{len(traded)} cycle(s) from {first:%Y-%m-%d} to {last:%Y-%m-%d}"
        + (f", <span class='bad'>{missed} decision close(s) missed</span>" if missed else ""),
        f"largest difference at a decision close: {diff:.3g} {html.escape(a.quote)} "
        f"({p.max_rel_difference:.3g} of the initial cash)",
        verdict,
    ]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Kallos trading report: {html.escape(a.account_id)}</title><style>{_CSS}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        f"<h1>Trading account {html.escape(a.account_id)} against its shadow backtest</h1>",
        "<ul class='summary'>" + "".join(f"<li>{s}</li>" for s in summary) + "</ul>",
        "<p class='muted'>The shadow backtest is the study's own decision and backtest code run on the same "
        "stored data over the account's weeks; values are marked at the prices the backtest assumes "
        "(the decision closes).</p>",
        _figure_html(_nav_figure(p), "fig-nav"),
        _figure_html(_difference_figure(p), "fig-difference"),
        "<h2 id='periods'>Cycles</h2>",
        _periods_table(p),
        "<h2 id='orders'>Orders</h2>",
        _orders_table(p),
        "</body></html>",
    ]
    return "\n".join(parts)


def write_trade_report(path: str | Path, p: Parity) -> Path:
    """Write :func:`render_trade_report` to ``path`` atomically; return the path."""
    text = render_trade_report(p)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
