"""Breakdowns of daily strategy returns by calendar quarter and by market regime."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from kallos.evaluation.metrics import performance_metrics
from kallos.exceptions import ConfigError
from kallos.types import PERIODS_PER_YEAR

__all__ = ["REGIMES", "market_regimes", "quarter_breakdown", "regime_definition", "regime_metrics"]

REGIMES: tuple[str, ...] = ("bull", "bear", "sideways")
WARMUP = "warmup"


def regime_definition(lookback: int, bull: float, bear: float) -> str:
    """Human-readable rule used by :func:`market_regimes`."""
    return (
        f"market-cap benchmark's trailing {lookback}-day compounded return through the previous "
        f"day's close (t-1): > {bull:+.0%} bull, < {bear:+.0%} bear, otherwise sideways; days "
        f"with fewer than {lookback} prior benchmark returns are '{WARMUP}' and excluded"
    )


def market_regimes(
    benchmark: pd.Series, lookback: int = 90, bull: float = 0.15, bear: float = -0.15
) -> pd.Series:
    """Label each day bull / bear / sideways from the benchmark's trailing trend, known before the day.

    The regime of day ``t`` uses the compounded benchmark return over days ``t - lookback``
    to ``t - 1`` (``prod(1 + r) - 1``), so it is known at the close of ``t - 1``, before
    ``t``'s return is earned.

    Parameters
    ----------
    benchmark : pd.Series of shape (n_days,)
        Daily simple returns of the market-cap benchmark, indexed by date.
    lookback : int, default 90
        Trailing window in days.
    bull, bear : float, default +0.15 and -0.15
        Thresholds on the trailing simple return (``bull > bear``).

    Returns
    -------
    pd.Series of str, same index
        ``"bull"``, ``"bear"``, ``"sideways"``, or ``"warmup"`` for the first ``lookback`` days
        (or where the window holds a NaN).

    Raises
    ------
    ConfigError
        If ``lookback < 1`` or ``bull <= bear``.
    """
    if lookback < 1:
        raise ConfigError(f"regime lookback must be >= 1 day, got {lookback}")
    if bull <= bear:
        raise ConfigError(f"regime bull threshold {bull} must exceed bear threshold {bear}")
    r = pd.Series(benchmark, dtype=float)
    log_growth = np.log1p(r)
    trailing = np.expm1(log_growth.rolling(lookback, min_periods=lookback).sum()).shift(1)
    labels = np.select(
        [trailing > bull, trailing < bear, trailing.notna()], ["bull", "bear", "sideways"], WARMUP
    )
    return pd.Series(labels, index=r.index, name="regime")


def regime_metrics(
    returns: pd.DataFrame, regimes: pd.Series, periods_per_year: int = PERIODS_PER_YEAR
) -> pd.DataFrame:
    """CAGR, Sharpe, volatility and max drawdown per regime and strategy.

    The days of one regime are concatenated in date order (they need not be contiguous), and
    :func:`kallos.evaluation.performance_metrics` is applied to that series (annualised with
    ``periods_per_year``; drawdown of the concatenated path).

    Returns
    -------
    pd.DataFrame
        Columns ``regime, key, n_days, cagr, sharpe, volatility, max_drawdown``; regimes in
        :data:`REGIMES` order, only those with at least one day.
    """
    rows = []
    aligned = regimes.reindex(returns.index)
    for regime in REGIMES:
        days = returns.loc[aligned == regime]
        if days.empty:
            continue
        for key in returns.columns:
            m = performance_metrics(days[key], periods_per_year=periods_per_year)
            rows.append(
                {
                    "regime": regime,
                    "key": key,
                    "n_days": int(m["n_days"]),
                    "cagr": m["cagr"],
                    "sharpe": m["sharpe"],
                    "volatility": m["annual_volatility"],
                    "max_drawdown": m["max_drawdown"],
                }
            )
    return pd.DataFrame(
        rows, columns=["regime", "key", "n_days", "cagr", "sharpe", "volatility", "max_drawdown"]
    )


def quarter_breakdown(returns: pd.DataFrame, periods_per_year: int = PERIODS_PER_YEAR) -> pd.DataFrame:
    """Compounded return, annualised Sharpe and volatility per calendar quarter and strategy.

    Parameters
    ----------
    returns : pd.DataFrame of shape (n_days, n_strategies)
        Daily simple returns with a DatetimeIndex.

    Returns
    -------
    pd.DataFrame
        Columns ``quarter`` (e.g. ``"2023Q1"``), ``key``, ``return`` (``prod(1 + r) - 1`` over the
        quarter's non-NaN days), ``sharpe`` (``mean / std * sqrt(periods_per_year)``, ``ddof=1``;
        NaN with fewer than 2 days or zero spread) and ``volatility`` (``std * sqrt(periods_per_year)``).
    """
    rows = []
    if returns.empty:
        return pd.DataFrame(columns=["quarter", "key", "return", "sharpe", "volatility"])
    quarters = pd.DatetimeIndex(returns.index).to_period("Q")
    root = math.sqrt(periods_per_year)
    for quarter, frame in returns.groupby(quarters):
        for key in returns.columns:
            r = frame[key].dropna().to_numpy()
            std = float(r.std(ddof=1)) if r.size > 1 else float("nan")
            sharpe = float(r.mean()) / std * root if std > 1e-15 else float("nan")
            rows.append(
                {
                    "quarter": str(quarter),
                    "key": key,
                    "return": float(np.prod(1.0 + r) - 1.0) if r.size else float("nan"),
                    "sharpe": sharpe,
                    "volatility": std * root,
                }
            )
    return pd.DataFrame(rows, columns=["quarter", "key", "return", "sharpe", "volatility"])
