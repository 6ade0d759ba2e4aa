"""Formatting and the table model shared by the report's section builders.

Formatters turn numbers from ``results.json`` into display text (NaN / None / missing -> "–");
the frozen ``Table`` / ``Row`` / ``Cell`` model is what the Jinja template renders.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from markupsafe import Markup

from kallos.report.charts import strategy_colour, variant_parts

DASH = "–"
_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"scale": 2}}

# ----------------------------------------------------------------------------- formatting


def as_float(value: Any) -> float | None:
    """A finite or infinite float, or None for None / NaN / non-numeric values."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def _inf(x: float) -> str | None:
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return None


def fmt_pct(value: Any, digits: int = 1, signed: bool = False) -> str:
    """Format a fraction as a percentage (0.1234 -> "12.3%")."""
    x = as_float(value)
    if x is None:
        return DASH
    if (s := _inf(x)) is not None:
        return s
    text = f"{x * 100:{'+' if signed else ''},.{digits}f}%"
    return text.replace("-", "−")


def fmt_float(value: Any, digits: int = 2, signed: bool = False) -> str:
    """Format a plain number with fixed decimals."""
    x = as_float(value)
    if x is None:
        return DASH
    if (s := _inf(x)) is not None:
        return s
    return f"{x:{'+' if signed else ''},.{digits}f}".replace("-", "−")


def fmt_pp(value: Any, digits: int = 1) -> str:
    """Format a difference of two fractions in percentage points (0.021 -> "+2.1 pp")."""
    x = as_float(value)
    return DASH if x is None else f"{fmt_float(x * 100, digits, signed=True)} pp"


def fmt_p(value: Any) -> str:
    """Format a p-value: 4 decimals, or scientific notation below 1e-4."""
    x = as_float(value)
    if x is None:
        return DASH
    if 0 < x < 1e-4:
        return f"{x:.1e}".replace("-", "−")
    return f"{x:.4f}"


def fmt_int(value: Any) -> str:
    x = as_float(value)
    if x is None or math.isinf(x):
        return DASH
    return f"{round(x):,}"


def fmt_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt_text(v) for v in value) if value else DASH
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def fmt_date(value: Any) -> str:
    """Dates as ``YYYY-MM-DD``; anything unparsable as text."""
    if value is None or value == "":
        return DASH
    try:
        return pd.Timestamp(value).strftime("%Y-%m-%d")
    except (TypeError, ValueError):
        return str(value)


# ----------------------------------------------------------------------------- table model


@dataclass(frozen=True)
class Cell:
    text: str
    cls: str = ""
    title: str = ""


@dataclass(frozen=True)
class Header:
    label: str
    cls: str = ""
    title: str = ""


@dataclass(frozen=True)
class Row:
    cells: Sequence[Cell]
    cls: str = ""
    attrs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Group:
    label: str | None
    rows: Sequence[Row]


@dataclass(frozen=True)
class Table:
    id: str
    caption: str
    headers: Sequence[Header]
    groups: Sequence[Group]
    note: str = ""

    @property
    def n_rows(self) -> int:
        return sum(len(g.rows) for g in self.groups)


@dataclass(frozen=True)
class Column:
    """How one column of a record table is labelled and formatted."""

    key: str
    label: str
    fmt: Callable[[Any], str]
    numeric: bool = True
    title: str = ""


def num(key: str, label: str, fmt: Callable[[Any], str], title: str = "") -> Column:
    return Column(key, label, fmt, True, title)


def txt(key: str, label: str, fmt: Callable[[Any], str] = fmt_text, title: str = "") -> Column:
    return Column(key, label, fmt, False, title)


def headers(columns: Sequence[Column]) -> list[Header]:
    return [Header(c.label, "num" if c.numeric else "", c.title) for c in columns]


def record_row(record: Mapping[str, Any], columns: Sequence[Column], **kwargs: Any) -> Row:
    return Row([Cell(c.fmt(record.get(c.key)), "num" if c.numeric else "") for c in columns], **kwargs)


def record_table(
    table_id: str, caption: str, records: Iterable[Mapping[str, Any]], columns: Sequence[Column]
) -> Table:
    rows = [record_row(r, columns) for r in records]
    return Table(table_id, caption, headers(columns), [Group(None, rows)])


def swatch(key: str) -> Markup:
    return Markup('<span class="sw" style="background:{}"></span><code>{}</code>').format(
        strategy_colour(key), key
    )


# ----------------------------------------------------------------------------- helpers


def get(mapping: Any, *keys: str, default: Any = None) -> Any:
    """Nested ``dict.get`` that tolerates missing levels and non-dict values."""
    cur = mapping
    for key in keys:
        if not isinstance(cur, Mapping) or key not in cur:
            return default
        cur = cur[key]
    return default if cur is None else cur


def period_text(start: Any, end: Any) -> str:
    return f"{fmt_date(start)} – {fmt_date(end)}"


def n_text(values: Iterable[Any], unit: str) -> str:
    ns = sorted({int(x) for v in values if (x := as_float(v)) is not None and not math.isinf(x)})
    if not ns:
        return f"N = {DASH}"
    if len(ns) == 1:
        return f"N = {ns[0]:,} {unit}"
    return f"N = {ns[0]:,}–{ns[-1]:,} {unit}"


def total(records: Iterable[Mapping[str, Any]], key: str) -> int:
    """Sum of an integer field over records, ignoring missing values."""
    return sum(int(x) for r in records if (x := as_float(r.get(key))) is not None and not math.isinf(x))


split = variant_parts
"""``(strategy, objective or None)`` of a variant key (:func:`kallos.report.charts.variant_parts`)."""


def figure_html(fig: go.Figure, name: str) -> Markup:
    return Markup(
        fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{name}", config=_PLOTLY_CONFIG)
    )


def flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        out: list[tuple[str, str]] = []
        for k, v in value.items():
            out.extend(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return [(prefix, fmt_text(value))]
