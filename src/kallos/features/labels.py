"""Forward (label) and trailing log returns on a complete daily close series.

Both functions count horizons in *rows*; they are only horizons in *days* because they insist on
a complete daily index (one row per calendar day, no gaps, no duplicates). A coin with a missing
day must be reindexed to the full calendar first, with NaN on the missing day, so that the label
spanning the gap is NaN rather than silently a ``horizon + 1``-day return.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kallos.exceptions import DataValidationError

__all__ = ["check_daily_index", "forward_log_return", "trailing_log_return"]

_ONE_DAY = pd.Timedelta(days=1)


def _who(name: object) -> str:
    return f" for coin {name!r}" if isinstance(name, str) and name else ""


def _fmt(ts: pd.Timestamp) -> str:
    return "NaT" if pd.isna(ts) else ts.date().isoformat()


def check_daily_index(index: pd.Index, *, what: str, coin_id: str | None = None) -> None:
    """Raise unless ``index`` is a DatetimeIndex stepping exactly one calendar day per row.

    The guard that makes a horizon or lookback counted in rows one counted in days: the labels
    here and :func:`kallos.features.indicators.compute_indicators` call it on their input.

    Parameters
    ----------
    index : pd.Index
        Index to check.
    what : str
        Name of the object being checked, used in the message (e.g. ``"bars"``).
    coin_id : str, optional
        Coin named in the message.

    Raises
    ------
    DataValidationError
        If the index is not a DatetimeIndex, or at the first row whose timestamp is not the
        previous row's plus exactly one day (missing day, duplicate, unsorted, NaT). The message
        names that row's date and the previous one.
    """
    if not isinstance(index, pd.DatetimeIndex):
        raise DataValidationError(
            f"{what}{_who(coin_id)}: index must be a DatetimeIndex, got {type(index).__name__}"
        )
    if len(index) < 2:
        return
    steps = index[1:] - index[:-1]
    bad = np.flatnonzero(np.asarray(steps != _ONE_DAY))
    if not bad.size:
        return
    i = int(bad[0]) + 1
    prev, cur, step = index[i - 1], index[i], steps[i - 1]
    if pd.isna(step):
        problem = "missing timestamp (NaT)"
    elif step == pd.Timedelta(0):
        problem = "duplicate date"
    elif step < pd.Timedelta(0):
        problem = "dates out of order"
    else:
        problem = f"expected {_fmt(prev + _ONE_DAY)}: missing day(s) or a step that is not one day"
    raise DataValidationError(
        f"{what}{_who(coin_id)}: index is not strictly daily consecutive at {_fmt(cur)} "
        f"(previous row {_fmt(prev)}; {problem}); pass one row per calendar day, NaN on missing days"
    )


def _checked_close(close: pd.Series, horizon: int, *, what: str) -> np.ndarray:
    """Validate ``close`` and ``horizon``; return the closes as a float64 array."""
    if not isinstance(close, pd.Series):
        raise DataValidationError(f"{what}: close must be a pandas Series, got {type(close).__name__}")
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise DataValidationError(
            f"{what}: horizon must be a positive integer number of days, got {horizon!r}"
        )
    coin = close.name if isinstance(close.name, str) else None
    check_daily_index(close.index, what=what, coin_id=coin)
    values = close.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(~np.isnan(values) & ~(np.isfinite(values) & (values > 0)))
    if bad.size:
        i = int(bad[0])
        raise DataValidationError(
            f"{what}{_who(coin)}: close must be positive and finite, got {values[i]!r} "
            f"on {_fmt(close.index[i])}"
        )
    return values


def forward_log_return(close: pd.Series, horizon: int) -> pd.Series:
    """Label: log return from the close of ``t`` to the close of ``t + horizon``.

    ``y_t = log(close_{t+h} / close_t)``. The return starts strictly after the decision bar
    ``t`` (it is earned over days ``t+1 .. t+h``), so it is a valid target for a forecast made
    at the close of ``t`` and it must never be used as a feature.

    Parameters
    ----------
    close : pd.Series of shape (n_days,)
        Daily close prices (any currency, positive), indexed by a complete daily
        ``DatetimeIndex``: one row per calendar day, sorted, no gaps. Missing closes are NaN.
    horizon : int
        Horizon ``h`` in days (= rows), ``h >= 1``.

    Returns
    -------
    pd.Series of shape (n_days,)
        Forward log returns (not percent, not annualised), same index as ``close``, named
        ``"fwd_logret_{h}"``. NaN for the last ``h`` rows and wherever either endpoint is NaN.

    Raises
    ------
    DataValidationError
        If ``horizon`` is not a positive integer, if the index is not strictly daily consecutive
        (the message names the first offending date), or if a close is non-positive or infinite.

    Notes
    -----
    The function shifts by ``h`` *rows*; the daily-index check is what makes that ``h`` days.
    Purge at least ``h`` days between a training window and what follows it, since the last
    ``h`` labels of a window overlap the next window's prices.
    """
    values = _checked_close(close, horizon, what="forward_log_return")
    out = np.full(values.shape, np.nan)
    if horizon < values.size:
        out[:-horizon] = np.log(values[horizon:] / values[:-horizon])
    return pd.Series(out, index=close.index, name=f"fwd_logret_{horizon}")


def trailing_log_return(close: pd.Series, horizon: int) -> pd.Series:
    """Trailing log return from the close of ``t - horizon`` to the close of ``t``.

    ``r_t = log(close_t / close_{t-h})``; it uses data up to ``t`` only, so it is a causal
    feature (naive persistence forecasts ``forward_log_return`` by it).

    Parameters
    ----------
    close : pd.Series of shape (n_days,)
        Daily close prices (positive), indexed by a complete daily ``DatetimeIndex``.
    horizon : int
        Lookback ``h`` in days (= rows), ``h >= 1``.

    Returns
    -------
    pd.Series of shape (n_days,)
        Trailing log returns (not percent, not annualised), same index as ``close``, named
        ``"logret_{h}"``. NaN for the first ``h`` rows and wherever either endpoint is NaN.

    Raises
    ------
    DataValidationError
        Same conditions as :func:`forward_log_return`.
    """
    values = _checked_close(close, horizon, what="trailing_log_return")
    out = np.full(values.shape, np.nan)
    if horizon < values.size:
        out[horizon:] = np.log(values[horizon:] / values[:-horizon])
    return pd.Series(out, index=close.index, name=f"logret_{horizon}")
