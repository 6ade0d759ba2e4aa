"""Kallos: do deep-learning return forecasts build better crypto portfolios than simple estimates?

The public API a notebook needs, at the top level (loaded on first use, so ``import kallos`` stays
light and the command line starts fast):

* ``load_config(path, overrides)`` -> :class:`~kallos.config.StudyConfig`;
* ``load_panel(data_dir)`` -> the cleaned daily :class:`~kallos.data.panel.MarketPanel`;
* ``Store(url)``: the database (SQLite or PostgreSQL);
* ``run_study(panel, config)`` -> :class:`~kallos.pipeline.results.StudyResult`, whose
  ``portfolios`` are :class:`PortfolioResult` objects, ``comparison`` a :class:`Comparison`, and
  ``to_html(path)`` writes the report without a database;
* ``evaluate(returns)`` -> :class:`Comparison` of any daily strategy returns;
* ``MeanVariance``: the constrained portfolio optimiser;
* ``forecasters``: the forecaster registry (``forecasters.FORECASTERS``, ``forecasters.register``).

See ``docs/notebook.md`` for a worked example.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("kallos")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

PUBLIC: dict[str, tuple[str, str | None]] = {
    "load_config": ("kallos.config", "load_config"),
    "StudyConfig": ("kallos.config", "StudyConfig"),
    "Store": ("kallos.data.store", "Store"),
    "load_panel": ("kallos.data.load", "load_panel"),
    "run_study": ("kallos.pipeline.study", "run_study"),
    "StudyResult": ("kallos.pipeline.results", "StudyResult"),
    "evaluate": ("kallos.api", "evaluate"),
    "MeanVariance": ("kallos.portfolio.optimizer", "MeanVariance"),
    "forecasters": ("kallos.forecast.registry", None),
    "Variant": ("kallos.types", "Variant"),
    "PortfolioResult": ("kallos.report.results", "PortfolioResult"),
    "Comparison": ("kallos.report.results", "Comparison"),
    "Verdict": ("kallos.report.results", "Verdict"),
}
"""Top-level name -> (module, attribute; None for the module itself)."""

__all__ = ["__version__", *sorted(PUBLIC)]


def __getattr__(name: str) -> Any:
    """Load a public name on first use (PEP 562)."""
    if name not in PUBLIC:
        raise AttributeError(f"module 'kallos' has no attribute {name!r}")
    module, attr = PUBLIC[name]
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *PUBLIC})
