"""What went into the run: the configuration and the data coverage sections.

Both read ``results.json`` only (``config`` and ``data``); the ordered registry that places them
is :data:`kallos.report.html.SECTIONS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup

import kallos.report.charts as charts
from kallos.report.blocks import Cards, Figure, Heading, Section, SectionContext, TableBlock, Text
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
    fmt_int,
    fmt_pct,
    fmt_text,
    get,
    num,
    period_text,
    record_table,
    total,
    txt,
)

__all__ = ["MAX_EVENT_ROWS", "configuration_section", "data_section"]

MAX_EVENT_ROWS = 1000
"""Data-quality events shown in the report; all of them are in results.json."""


def _config_tables(results: Mapping[str, Any]) -> tuple[Table, list[Table]]:
    """The run-identity table and one key/value card per block of the study config."""
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


def _data_parts(results: Mapping[str, Any]) -> dict[str, Any]:
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
    shown = events[:MAX_EVENT_ROWS]
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


def configuration_section(ctx: SectionContext) -> Section:
    meta_table, cards = _config_tables(ctx.results)
    return Section(
        "configuration",
        "Configuration",
        [TableBlock(meta_table), Heading("Study configuration"), Cards(cards)],
    )


def data_section(ctx: SectionContext) -> Section:
    data = _data_parts(ctx.results)
    return Section(
        "data",
        "Data coverage",
        [
            Text(Markup("Panel: <strong>{}</strong>.").format(data["panel_text"])),
            Heading("Sources"),
            TableBlock(data["sources"], "Rows per source and coin", 12),
            Heading("Data quality"),
            TableBlock(data["quality_summary"]),
            TableBlock(data["events"], "Data-quality events", 10),
            Heading("Monthly universe"),
            Figure(data["universe_fig"], data["universe"].caption),
            TableBlock(data["universe"], "Constituents by month", 0),
        ],
    )
