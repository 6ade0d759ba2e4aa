"""Point-in-time monthly universe and the capped market-cap benchmark weights.

The universe held during month ``m+1`` is chosen at the close of the last day of month
``m`` from what was known then: the top ``top_n`` eligible coins by market cap. A coin is
eligible when it is in the cleaned panel (non-crypto categories are already excluded),
has a known close and market cap on the selection date, and has at least
``min_history_days`` days of known closes up to it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kallos.data.panel import MarketPanel
from kallos.exceptions import DataValidationError

__all__ = ["UNIVERSE_COLUMNS", "capped_weights", "month_starts", "monthly_universe", "universe_on"]

UNIVERSE_COLUMNS = ["month", "selection_date", "coin_id", "rank", "market_cap"]


def month_starts(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """First day of every month that intersects ``[start, end]``."""
    first = pd.Timestamp(start).to_period("M").to_timestamp()
    return pd.date_range(first, pd.Timestamp(end), freq="MS")


def monthly_universe(
    panel: MarketPanel, months: pd.DatetimeIndex, top_n: int, min_history_days: int
) -> pd.DataFrame:
    """Top-``top_n`` eligible coins by market cap for each month, selected the day before it starts.

    Parameters
    ----------
    panel : cleaned panel.
    months : first day of each month to select for.
    top_n : number of coins per month.
    min_history_days : days of known closes a coin needs at the selection date.

    Returns
    -------
    DataFrame with :data:`UNIVERSE_COLUMNS`, one row per month and coin, ``rank`` 1 = largest.

    Raises
    ------
    DataValidationError
        If a selection date lies outside the panel or no coin is eligible.
    """
    history = panel.history_days()
    rows = []
    for month in months:
        sel = pd.Timestamp(month) - pd.Timedelta(days=1)
        if sel not in panel.close.index:
            raise DataValidationError(
                f"universe for {month:%Y-%m} needs data on {sel.date()}, outside the panel "
                f"{panel.dates[0].date()}..{panel.dates[-1].date()}"
            )
        mcap = panel.market_cap.loc[sel]
        eligible = mcap.notna() & (mcap > 0) & panel.close.loc[sel].notna()
        eligible &= history.loc[sel] >= min_history_days
        ranked = mcap[eligible].sort_values(ascending=False, kind="stable").head(top_n)
        if ranked.empty:
            raise DataValidationError(f"no eligible coin for {month:%Y-%m} (selection {sel.date()})")
        for rank, (coin, cap) in enumerate(ranked.items(), start=1):
            rows.append((pd.Timestamp(month), sel, coin, rank, float(cap)))
    return pd.DataFrame(rows, columns=UNIVERSE_COLUMNS)


def universe_on(universe: pd.DataFrame, decision_date: pd.Timestamp) -> list[str]:
    """Coins investable by a decision at the close of ``decision_date``.

    The trade goes into ``decision_date + 1``, so it uses the universe of that day's month.
    """
    month = (pd.Timestamp(decision_date) + pd.Timedelta(days=1)).to_period("M").to_timestamp()
    coins = universe.loc[universe["month"] == month].sort_values("rank")["coin_id"]
    return list(coins)


def capped_weights(values: pd.Series, cap: float, tol: float = 1e-12) -> pd.Series:
    """Weights proportional to ``values`` with no weight above ``cap``.

    The excess over the cap is redistributed iteratively to the uncapped names in
    proportion to their values, until no weight exceeds the cap (as in capped index
    methodologies such as the MSCI Capped Indexes).

    Parameters
    ----------
    values : positive numbers (e.g. market caps), indexed by coin.
    cap : maximum weight, with ``cap * len(values) >= 1``.

    Raises
    ------
    ValueError
        If the cap cannot be met (``cap * n < 1``) or a value is not positive.
    """
    v = values.astype(float)
    if (v <= 0).any() or v.isna().any():
        raise ValueError(f"weights need positive values, got {v[(v <= 0) | v.isna()].to_dict()}")
    n = len(v)
    if cap * n < 1 - tol:
        raise ValueError(f"cap {cap} x {n} names < 1: the weights cannot sum to 1")
    w = v / v.sum()
    capped = pd.Series(False, index=v.index)
    for _ in range(n):
        over = (w > cap + tol) & ~capped
        if not over.any():
            break
        capped |= over
        free = ~capped
        remaining = 1.0 - cap * capped.sum()
        w = pd.Series(np.where(capped, cap, 0.0), index=v.index)
        if free.any():
            w[free] = remaining * v[free] / v[free].sum()
    return w
