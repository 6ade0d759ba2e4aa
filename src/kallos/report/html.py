"""Render the study results as one HTML report, built from one ordered registry of sections.

Every section of the report, and of its table of contents, is one entry of :data:`SECTIONS`:
``id -> SectionSpec(title, build)``, in page order. A builder takes a
:class:`~kallos.report.blocks.SectionContext` and returns a :class:`~kallos.report.blocks.Section`
of blocks (paragraphs, tables, figures), or None when its stage is absent from the run; then the
section and its table-of-contents entry are left out. The Jinja template renders the sections
with one loop and every block kind with one macro, so adding a section is one builder function
and one line in :data:`SECTIONS`.

Inputs are the ``results`` dictionary (exactly what is written to ``results.json``), a
:class:`ReportFrames` holding the daily series the charts need, and optionally the typed forecast
evaluation. Missing keys and NaN / None values never raise; they render as an en dash ("–").

Assets: with ``assets="inline"`` (the default) the plotly.js bundle is inlined once in the
``<head>`` and the file references no external resource, so it works offline on its own. With
``assets="shared"`` the report loads ``plotly.min.js`` from beside it (a relative
``<script src>``), and :func:`write_report` writes that file next to the HTML. Every figure is a
``<div>`` plus a small ``Plotly.newPlot`` call, and all CSS is inline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import DictLoader, Environment, StrictUndefined
from markupsafe import Markup
from plotly.offline import get_plotlyjs

import kallos.report.charts as charts
from kallos.config import REPORT_ASSETS
from kallos.exceptions import ConfigError
from kallos.report.blocks import ReportFrames, Section, SectionContext, SectionSpec
from kallos.report.files import atomic_write
from kallos.report.forecasts import evaluation_section, forecast_accuracy_section, residuals_section
from kallos.report.inputs import configuration_section, data_section
from kallos.report.performance import (
    cumulative_section,
    drawdowns_section,
    metrics_section,
    rolling_section,
    turnover_section,
    weights_section,
)
from kallos.report.published import published_section
from kallos.report.results import Comparison, portfolio_results
from kallos.report.sections import (
    fallbacks_section,
    quarters_section,
    regimes_section,
    sharpe_section,
    tests_section,
    universe_section,
)
from kallos.report.summary import summary_section
from kallos.report.tables import fmt_text, get, split
from kallos.report.tuning import tuning_section
from kallos.report.verdicts import calibration_section, primary_section

if TYPE_CHECKING:
    from kallos.evaluation.forecast_metrics import ForecastEvaluation

__all__ = [
    "PLOTLY_JS",
    "SECTIONS",
    "ReportFrames",
    "build_sections",
    "render_report",
    "report_assets",
    "section_context",
    "write_report",
]

_TEMPLATE = "report.html.j2"
# Read once at import, with the code that fills it: a long-running process never pairs this
# module with a template edited on disk after it started (a missing variable would abort the run).
_TEMPLATE_SOURCE = Path(__file__).with_name("templates").joinpath(_TEMPLATE).read_text(encoding="utf-8")

PLOTLY_JS = "plotly.min.js"
"""The plotly.js bundle's file name beside report.html under ``assets="shared"``."""

SECTIONS: Mapping[str, SectionSpec] = {
    "summary": SectionSpec("Summary", summary_section),
    "verdicts": SectionSpec("Primary comparisons and verdicts", primary_section),
    "calibration": SectionSpec(
        "Calibration: size and power of the primary tests",
        calibration_section,
        toc="Calibration of the primary tests",
    ),
    "published": SectionSpec("Published results beside ours", published_section),
    "configuration": SectionSpec("Configuration", configuration_section),
    "data": SectionSpec("Data coverage", data_section),
    "universe": SectionSpec("Universe construction", universe_section),
    "cumulative": SectionSpec("Cumulative returns", cumulative_section),
    "drawdowns": SectionSpec("Drawdowns", drawdowns_section),
    "rolling": SectionSpec("Rolling Sharpe ratio", rolling_section),
    "metrics": SectionSpec("Performance metrics", metrics_section),
    "weights": SectionSpec("Portfolio weights", weights_section),
    "turnover": SectionSpec("Turnover", turnover_section),
    "fallbacks": SectionSpec("Decision fallbacks", fallbacks_section),
    "tests": SectionSpec("Exploratory pairwise tests", tests_section),
    "sharpe": SectionSpec("Sharpe inference and overfitting", sharpe_section),
    "regimes": SectionSpec("Market regimes", regimes_section),
    "quarters": SectionSpec("Quarterly breakdown", quarters_section),
    "tuning": SectionSpec("Hyper-parameter tuning", tuning_section),
    "forecasts": SectionSpec("Forecast accuracy", forecast_accuracy_section),
    "forecast-evaluation": SectionSpec("Forecast evaluation", evaluation_section),
    "residuals": SectionSpec("Forecast residuals", residuals_section),
}
"""Every section of the report, in page order: id -> (title, builder). The only source of sections."""


# ----------------------------------------------------------------------------- context and sections


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


def section_context(
    results: Mapping[str, Any],
    frames: ReportFrames,
    *,
    forecast_evaluation: ForecastEvaluation | Mapping[str, Any] | None = None,
) -> SectionContext:
    """The builders' context: ``results``, ``frames``, the display order and the typed results
    derived from them (a :class:`~kallos.report.results.PortfolioResult` per variant, the
    :class:`~kallos.report.results.Comparison`)."""
    objectives, variants = _variant_order(results, frames)
    strategies = get(results, "strategies", default={}) or {}
    portfolios = portfolio_results(
        [k for k in variants if isinstance(strategies.get(k), Mapping)],
        strategies,
        frames.returns_net,
        frames.returns_gross,
        frames.turnover,
        frames.weights,
    )
    comparison = Comparison.from_results(results) if isinstance(get(results, "primary"), Mapping) else None
    return SectionContext(
        results,
        frames,
        objectives,
        variants,
        forecast_evaluation=forecast_evaluation,
        portfolios=portfolios,
        comparison=comparison,
    )


def build_sections(ctx: SectionContext) -> list[Section]:
    """Run every registered builder in registry order; the sections that were built.

    Each section carries its registry id and title, whichever a builder wrote.
    """
    built = []
    for sid, spec in SECTIONS.items():
        section = spec.build(ctx)
        if section is not None:
            built.append(dataclasses.replace(section, id=sid, title=spec.title))
    return built


# ----------------------------------------------------------------------------- assets


def report_assets(results: Mapping[str, Any], assets: str | None = None) -> str:
    """The asset mode: ``assets`` if given, else the run's ``report.assets`` setting, else "inline".

    Raises
    ------
    ConfigError
        For a mode other than "inline" or "shared".
    """
    mode = assets if assets is not None else get(results, "config", "study", "report", "assets")
    mode = "inline" if mode is None else str(mode)
    if mode not in REPORT_ASSETS:
        raise ConfigError(f"report.assets: {mode!r} is not one of {', '.join(REPORT_ASSETS)}")
    return mode


@lru_cache(maxsize=1)
def _plotlyjs() -> str:
    return get_plotlyjs()


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


def render_report(
    results: Mapping[str, Any],
    frames: ReportFrames,
    *,
    forecast_evaluation: ForecastEvaluation | Mapping[str, Any] | None = None,
    assets: str | None = None,
) -> str:
    """Render the full study report as one HTML document.

    Parameters
    ----------
    results : mapping
        The study results, structured as in ``results.json`` (keys ``config``, ``data``,
        ``strategies``, ``tests``, ``forecasts``). Missing keys and NaN / None values are
        tolerated and shown as "–".
    frames : ReportFrames
        Daily returns, turnover, weights and forecasts behind the charts.
    forecast_evaluation : ForecastEvaluation or mapping, optional
        Rendered as the "Forecast evaluation" section after "Forecast accuracy" (left out when
        None); a mapping is that section already rendered
        (``kallos.report.forecasts.forecast_section(evaluation)``).
    assets : {"inline", "shared"}, optional
        How the page gets plotly.js (see :func:`report_assets`; default: the run's
        ``report.assets``, else "inline"). "inline" embeds the bundle once in the ``<head>``;
        "shared" references ``plotly.min.js`` beside the report.

    Returns
    -------
    str
        The HTML document. Inline, it embeds the plotly.js bundle exactly once and references no
        external resource, so it works offline.

    Raises
    ------
    ConfigError
        For an unknown ``assets`` mode.
    """
    mode = report_assets(results, assets)
    ctx = section_context(results, frames, forecast_evaluation=forecast_evaluation)
    config = get(results, "config", default={})
    sections = build_sections(ctx)
    context = {
        "title": "Kallos study report",
        "run_id": fmt_text(config.get("run_id")),
        "created_at": fmt_text(config.get("created_at")),
        "version": fmt_text(config.get("kallos_version")),
        "plotlyjs": Markup(_plotlyjs()) if mode == "inline" else None,
        "plotlyjs_src": PLOTLY_JS,
        "toc": [(s.id, SECTIONS[s.id].label) for s in sections],
        "sections": sections,
    }
    return _environment().get_template(_TEMPLATE).render(**context)


def write_report(
    path: Path | str,
    results: Mapping[str, Any],
    frames: ReportFrames,
    *,
    forecast_evaluation: ForecastEvaluation | Mapping[str, Any] | None = None,
    assets: str | None = None,
) -> Path:
    """Render the report and write it atomically (and ``plotly.min.js`` beside it when shared).

    Each file goes to a temporary file in the destination folder, which then replaces its target
    in one ``os.replace``; a reader never sees a half-written file and a failure leaves no
    temporary file behind. Under ``assets="shared"`` the bundle is written first, so the report
    never references a missing script.

    Parameters
    ----------
    path : Path or str
        Destination file; its parent folders are created if needed.
    results : mapping
        The study results (see :func:`render_report`).
    frames : ReportFrames
        Daily series behind the charts.
    forecast_evaluation, assets
        See :func:`render_report`.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    mode = report_assets(results, assets)
    text = render_report(
        results,
        frames,
        forecast_evaluation=forecast_evaluation,
        assets=mode,
    )
    if mode == "shared":
        bundle = _plotlyjs()
        atomic_write(path.with_name(PLOTLY_JS), lambda tmp: tmp.write_text(bundle, encoding="utf-8"))
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline="\n"))
