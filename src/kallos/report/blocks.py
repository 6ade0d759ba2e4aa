"""The block model of a report section: figures, paragraphs and tables, and the builder context.

A section builder takes a :class:`SectionContext` (the ``results.json`` document, the daily frames
behind the charts, and the display order of objectives and variants) and returns a
:class:`Section` of blocks, or None when its stage did not run. The Jinja template renders every
block kind with one macro.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from markupsafe import Markup

from kallos.report.tables import Table

__all__ = ["Builder", "Figure", "ReportFrames", "Section", "SectionContext", "TableBlock", "Text", "records"]


@dataclass(frozen=True)
class ReportFrames:
    """Daily series behind the report's charts.

    Attributes
    ----------
    returns_net : pd.DataFrame of shape (n_days, n_variants)
        Daily simple returns after costs (not percent); index dates, columns variant keys
        (``"gru/max_sharpe"``, ..., ``"market_cap"``, ``"equal_weight"``).
    returns_gross : pd.DataFrame of shape (n_days, n_variants)
        Same as ``returns_net`` but before costs.
    turnover : pd.DataFrame of shape (n_decision_days, n_variants)
        One-way turnover (fraction of capital traded) per decision date; 0 between rebalances.
    weights : pd.DataFrame
        Long frame ``strategy, objective, date, coin_id, weight``: target weights decided at
        ``date``. Benchmarks carry objective ``"none"``.
    forecasts : pd.DataFrame
        Long frame ``forecaster, coin_id, as_of, horizon, forecast, realised, fold_cutoff``:
        h-day forward log returns; ``realised`` is NaN where the horizon runs past the data.
    """

    returns_net: pd.DataFrame
    returns_gross: pd.DataFrame
    turnover: pd.DataFrame
    weights: pd.DataFrame
    forecasts: pd.DataFrame


@dataclass(frozen=True)
class Figure:
    html: Markup
    caption: str
    kind: str = "figure"


@dataclass(frozen=True)
class Text:
    html: Markup
    kind: str = "text"


@dataclass(frozen=True)
class TableBlock:
    table: Table
    collapse_label: str | None = None
    threshold: int = 0
    kind: str = "table"


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    blocks: Sequence[Figure | Text | TableBlock] = field(default_factory=tuple)


@dataclass(frozen=True)
class SectionContext:
    results: Mapping[str, Any]
    frames: ReportFrames
    objectives: Sequence[str]
    variants: Sequence[str]


Builder = Callable[[SectionContext], Section | None]


def records(value: Any) -> list[Mapping[str, Any]]:
    """The mappings of a list from ``results.json`` (anything else: an empty list)."""
    return [r for r in value or [] if isinstance(r, Mapping)] if isinstance(value, list) else []
