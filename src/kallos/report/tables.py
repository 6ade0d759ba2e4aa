"""Formatting and the table model shared by the report's section builders.

Formatters turn numbers from ``results.json`` into display text (NaN / None / missing -> "–");
the frozen ``_Table`` / ``_Row`` / ``_Cell`` model is what the Jinja template renders.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from markupsafe import Markup

from kallos.report import charts

DASH = "–"
_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"scale": 2}}

# ----------------------------------------------------------------------------- formatting


def _as_float(value: Any) -> float | None:
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


def _fmt_pct(value: Any, digits: int = 1, signed: bool = False) -> str:
    """Format a fraction as a percentage (0.1234 -> "12.3%")."""
    x = _as_float(value)
    if x is None:
        return DASH
    if (s := _inf(x)) is not None:
        return s
    text = f"{x * 100:{'+' if signed else ''},.{digits}f}%"
    return text.replace("-", "−")


def _fmt_float(value: Any, digits: int = 2, signed: bool = False) -> str:
    """Format a plain number with fixed decimals."""
    x = _as_float(value)
    if x is None:
        return DASH
    if (s := _inf(x)) is not None:
        return s
    return f"{x:{'+' if signed else ''},.{digits}f}".replace("-", "−")


def _fmt_pp(value: Any, digits: int = 1) -> str:
    """Format a difference of two fractions in percentage points (0.021 -> "+2.1 pp")."""
    x = _as_float(value)
    return DASH if x is None else f"{_fmt_float(x * 100, digits, signed=True)} pp"


def _fmt_p(value: Any) -> str:
    """Format a p-value: 4 decimals, or scientific notation below 1e-4."""
    x = _as_float(value)
    if x is None:
        return DASH
    if 0 < x < 1e-4:
        return f"{x:.1e}".replace("-", "−")
    return f"{x:.4f}"


def _fmt_int(value: Any) -> str:
    x = _as_float(value)
    if x is None or math.isinf(x):
        return DASH
    return f"{round(x):,}"


def _fmt_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt_text(v) for v in value) if value else DASH
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _fmt_date(value: Any) -> str:
    """Dates as ``YYYY-MM-DD``; anything unparsable as text."""
    if value is None or value == "":
        return DASH
    try:
        return pd.Timestamp(value).strftime("%Y-%m-%d")
    except (TypeError, ValueError):
        return str(value)


# ----------------------------------------------------------------------------- table model


@dataclass(frozen=True)
class _Cell:
    text: str
    cls: str = ""
    title: str = ""


@dataclass(frozen=True)
class _Header:
    label: str
    cls: str = ""
    title: str = ""


@dataclass(frozen=True)
class _Row:
    cells: Sequence[_Cell]
    cls: str = ""
    attrs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Group:
    label: str | None
    rows: Sequence[_Row]


@dataclass(frozen=True)
class _Table:
    id: str
    caption: str
    headers: Sequence[_Header]
    groups: Sequence[_Group]
    note: str = ""

    @property
    def n_rows(self) -> int:
        return sum(len(g.rows) for g in self.groups)


@dataclass(frozen=True)
class _Column:
    """How one column of a record table is labelled and formatted."""

    key: str
    label: str
    fmt: Callable[[Any], str]
    numeric: bool = True
    title: str = ""


def _num(key: str, label: str, fmt: Callable[[Any], str], title: str = "") -> _Column:
    return _Column(key, label, fmt, True, title)


def _txt(key: str, label: str, fmt: Callable[[Any], str] = _fmt_text, title: str = "") -> _Column:
    return _Column(key, label, fmt, False, title)


def _headers(columns: Sequence[_Column]) -> list[_Header]:
    return [_Header(c.label, "num" if c.numeric else "", c.title) for c in columns]


def _record_row(record: Mapping[str, Any], columns: Sequence[_Column], **kwargs: Any) -> _Row:
    return _Row([_Cell(c.fmt(record.get(c.key)), "num" if c.numeric else "") for c in columns], **kwargs)


def _record_table(
    table_id: str, caption: str, records: Iterable[Mapping[str, Any]], columns: Sequence[_Column]
) -> _Table:
    rows = [_record_row(r, columns) for r in records]
    return _Table(table_id, caption, _headers(columns), [_Group(None, rows)])


def _swatch(key: str) -> Markup:
    return Markup('<span class="sw" style="background:{}"></span><code>{}</code>').format(
        charts.strategy_colour(key), key
    )


# ----------------------------------------------------------------------------- helpers


def _get(mapping: Any, *keys: str, default: Any = None) -> Any:
    """Nested ``dict.get`` that tolerates missing levels and non-dict values."""
    cur = mapping
    for key in keys:
        if not isinstance(cur, Mapping) or key not in cur:
            return default
        cur = cur[key]
    return default if cur is None else cur


def _period_text(start: Any, end: Any) -> str:
    return f"{_fmt_date(start)} – {_fmt_date(end)}"


def _n_text(values: Iterable[Any], unit: str) -> str:
    ns = sorted({int(x) for v in values if (x := _as_float(v)) is not None and not math.isinf(x)})
    if not ns:
        return f"N = {DASH}"
    if len(ns) == 1:
        return f"N = {ns[0]:,} {unit}"
    return f"N = {ns[0]:,}–{ns[-1]:,} {unit}"


def _total(records: Iterable[Mapping[str, Any]], key: str) -> int:
    """Sum of an integer field over records, ignoring missing values."""
    return sum(int(x) for r in records if (x := _as_float(r.get(key))) is not None and not math.isinf(x))


def _split(key: str) -> tuple[str, str | None]:
    strategy, _, objective = key.partition("/")
    return strategy, objective or None


def _figure_html(fig: go.Figure, name: str) -> Markup:
    return Markup(
        fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{name}", config=_PLOTLY_CONFIG)
    )


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        out: list[tuple[str, str]] = []
        for k, v in value.items():
            out.extend(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return [(prefix, _fmt_text(value))]
