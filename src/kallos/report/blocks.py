"""The block model of a report section: figures, paragraphs and tables, and the builder context.

A section builder takes a :class:`SectionContext` (the ``results.json`` document, the daily frames
behind the charts, the display order of objectives and variants, and optional typed inputs such as
the forecast evaluation) and returns a :class:`Section` of blocks, or None when its stage did not
run. The Jinja template renders every block kind with one macro and every section with one loop;
the ordered registry of sections is :data:`kallos.report.html.SECTIONS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
from markupsafe import Markup

from kallos.report.results import Comparison, PortfolioResult
from kallos.report.tables import Table

if TYPE_CHECKING:  # typing only: the report never needs the evaluation module to load
    from kallos.evaluation.forecast_metrics import ForecastEvaluation

__all__ = [
    "Block",
    "Builder",
    "Cards",
    "Figure",
    "Heading",
    "Headline",
    "Html",
    "ReportFrames",
    "Section",
    "SectionContext",
    "SectionSpec",
    "TableBlock",
    "Text",
    "records",
]


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


# ----------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class Figure:
    """A plotly figure (``<div>`` + ``Plotly.newPlot``, no bundle) and its caption.

    ``html`` None renders "No data for this chart."; an empty caption renders no ``<figcaption>``.
    """

    html: Markup | None
    caption: str
    kind: str = "figure"


@dataclass(frozen=True)
class Text:
    """One paragraph of trusted markup; ``cls`` is the ``<p>`` class (``"note"``, ``"meta"``)."""

    html: Markup
    cls: str = ""
    kind: str = "text"


@dataclass(frozen=True)
class Heading:
    """A sub-heading (``<h3>``) inside a section."""

    text: str
    kind: str = "heading"


@dataclass(frozen=True)
class TableBlock:
    """A table; with ``collapse_label`` it folds into ``<details>`` above ``threshold`` rows."""

    table: Table
    collapse_label: str | None = None
    threshold: int = 0
    kind: str = "table"


@dataclass(frozen=True)
class Cards:
    """Small key/value tables laid out in columns (the configuration cards)."""

    tables: Sequence[Table]
    kind: str = "cards"


@dataclass(frozen=True)
class Headline:
    """The boxed list of first-screen findings (``<div class="headline" id="headline">``)."""

    items: Sequence[Markup]
    title: str = "The answer"
    kind: str = "headline"


@dataclass(frozen=True)
class Html:
    """A trusted HTML fragment built by our own code (tables of :mod:`kallos.report.forecasts`)."""

    html: Markup
    kind: str = "html"


Block = Figure | Text | Heading | TableBlock | Cards | Headline | Html


@dataclass(frozen=True)
class Section:
    """One ``<section>`` of the report: ``<h2>title</h2>`` and its blocks.

    ``id`` and ``title`` are set from the registry entry when the report is built
    (:func:`kallos.report.html.build_sections`); ``cls`` is the ``<section>`` class.
    """

    id: str
    title: str
    blocks: Sequence[Block] = field(default_factory=tuple)
    cls: str = ""


# ----------------------------------------------------------------------------- builders


@dataclass(frozen=True)
class SectionContext:
    """Everything a section builder reads.

    Attributes
    ----------
    results : mapping
        The ``results.json`` document.
    frames : ReportFrames
        The daily series behind the charts.
    objectives, variants : sequence of str
        Display order: objectives (config order first) and variant keys grouped by objective,
        benchmarks last.
    forecast_evaluation : ForecastEvaluation or mapping, optional
        The forecast evaluation (:class:`kallos.evaluation.forecast_metrics.ForecastEvaluation`),
        or its fragments as :func:`kallos.report.forecasts.forecast_section` returns them; None
        leaves the "Forecast evaluation" section out.
    portfolios : mapping of str to PortfolioResult
        The typed result of every variant (:mod:`kallos.report.results`), by key; the
        performance and fallback sections draw from these.
    comparison : Comparison, optional
        The primary and exploratory families as a typed object (None without statistics).

    Notes
    -----
    Optional inputs are keyword-only with defaults, so a new one is one more field here and
    every existing builder and caller keeps working.
    """

    results: Mapping[str, Any]
    frames: ReportFrames
    objectives: Sequence[str]
    variants: Sequence[str]
    forecast_evaluation: ForecastEvaluation | Mapping[str, Any] | None = field(default=None, kw_only=True)
    portfolios: Mapping[str, PortfolioResult] = field(default_factory=dict, kw_only=True)
    comparison: Comparison | None = field(default=None, kw_only=True)


Builder = Callable[[SectionContext], Section | None]


@dataclass(frozen=True)
class SectionSpec:
    """One entry of the section registry: where the section goes and who builds it.

    ``title`` is the section's heading and, unless ``toc`` gives a shorter label, its
    table-of-contents entry.
    """

    title: str
    build: Builder
    toc: str | None = None

    @property
    def label(self) -> str:
        return self.toc or self.title


def records(value: Any) -> list[Mapping[str, Any]]:
    """The mappings of a list from ``results.json`` (anything else: an empty list)."""
    return [r for r in value or [] if isinstance(r, Mapping)] if isinstance(value, list) else []
