"""QuantStats tearsheets: one HTML page per variant against the market-cap benchmark.

Thin wrapper over :func:`quantstats.reports.html` (QuantStats 0.0.86): daily simple net returns,
``periods_per_year=365``, risk-free rate 0, compounded. QuantStats draws its charts with
matplotlib (Agg backend, SVG embedded), so a page is self-contained apart from its favicon and a
link back to quantstats.io. Library deprecation warnings and matplotlib font messages raised while
rendering are silenced; they are not about our data.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from kallos.exceptions import DataValidationError
from kallos.report.files import atomic_write

__all__ = ["BENCHMARK_KEY", "PERIODS_PER_YEAR", "tearsheet_name", "write_tearsheet", "write_tearsheets"]

BENCHMARK_KEY = "market_cap"
PERIODS_PER_YEAR = 365
TEARSHEET_DIR = "tearsheets"


def tearsheet_name(key: str) -> str:
    """File name of a variant's tearsheet: ``"gru/max_sharpe"`` -> ``"gru__max_sharpe.html"``."""
    return key.replace("/", "__") + ".html"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence third-party warnings and matplotlib's font-fallback log lines, restoring both after."""
    import matplotlib

    matplotlib.use("Agg")
    loggers = [logging.getLogger(n) for n in ("matplotlib", "matplotlib.font_manager")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _series(returns: pd.Series, what: str) -> pd.Series:
    s = pd.to_numeric(returns, errors="coerce").dropna()
    if s.empty:
        raise DataValidationError(f"tearsheet: {what} has no finite daily returns")
    index = pd.DatetimeIndex(s.index)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return pd.Series(s.to_numpy(dtype=float), index=index, name=what)


def write_tearsheet(path: Path | str, returns: pd.Series, benchmark: pd.Series, *, title: str) -> Path:
    """Write one QuantStats tearsheet of ``returns`` against ``benchmark``.

    Parameters
    ----------
    path : Path or str
        Destination HTML file (written atomically: temporary file, then rename).
    returns, benchmark : pd.Series
        Daily simple returns (fractions), indexed by UTC date; NaN days are dropped, and
        QuantStats compares the two on their common dates (``match_dates=True``).
    title : str
        Page title; the series are labelled by their ``name``.

    Raises
    ------
    DataValidationError
        If either series has no finite return.
    """
    import matplotlib.pyplot as plt
    import quantstats as qs

    path = Path(path)
    strategy = _series(returns, str(returns.name or "strategy"))
    bench = _series(benchmark, str(benchmark.name or BENCHMARK_KEY))

    def write(tmp: Path) -> None:
        with _quiet():
            qs.reports.html(
                strategy,
                bench,
                rf=0.0,
                title=title,
                output=str(tmp),
                compounded=True,
                periods_per_year=PERIODS_PER_YEAR,
                match_dates=True,
                benchmark_title=str(bench.name),
                strategy_title=str(strategy.name),
            )

    try:
        atomic_write(path, write)
    finally:
        plt.close("all")
    return path


def write_tearsheets(
    directory: Path | str,
    returns: pd.DataFrame,
    *,
    benchmark: str = BENCHMARK_KEY,
    keys: Iterable[str] | None = None,
) -> dict[str, str]:
    """Write ``<directory>/tearsheets/<name>.html`` for each variant against the benchmark column.

    Parameters
    ----------
    directory : Path or str
        The run directory.
    returns : pd.DataFrame of shape (n_days, n_variants)
        Daily simple net returns, columns variant keys; must hold the ``benchmark`` column.
    benchmark : str, default "market_cap"
        Benchmark column; it gets no tearsheet of its own.
    keys : iterable of str, optional
        Variants to render (default: every column but the benchmark).

    Returns
    -------
    dict of str to str
        Variant key -> path relative to ``directory`` (``"tearsheets/gru__max_sharpe.html"``),
        the value stored under ``results["tearsheets"]``.

    Raises
    ------
    DataValidationError
        If the benchmark column is missing, or a series has no finite return.
    """
    if benchmark not in returns.columns:
        raise DataValidationError(
            f"tearsheets: benchmark column {benchmark!r} not in returns (columns: {list(returns.columns)})"
        )
    directory = Path(directory)
    wanted = [str(c) for c in returns.columns if str(c) != benchmark] if keys is None else list(keys)
    bench = returns[benchmark].rename(benchmark)
    written: dict[str, str] = {}
    for key in wanted:
        relative = f"{TEARSHEET_DIR}/{tearsheet_name(key)}"
        write_tearsheet(directory / relative, returns[key].rename(key), bench, title=f"{key} vs {benchmark}")
        written[key] = relative
    return written
