"""Cross-source reconciliation: how far CoinGecko's close is from Binance's, per coin-month.

Alignment (the one-day CoinGecko shift)
---------------------------------------
CoinGecko's row snapped at 00:00 UTC on day D is the close of day D-1; the importer
(:mod:`kallos.data.sources.coingecko`) already stores it with ``date = D - 1``, the close
stamp every source uses. So frames read from the store are compared on equal dates here:
the CoinGecko row snapped on 2021-01-01 (29,022 USD) meets Binance's 2020-12-31 close
(28,924 USD), a divergence of 0.34 %. Comparing unshifted rows (CoinGecko D against
Binance D) would mix two different closes (the data README measures -0.07 return
correlation that way).

Divergence of day t: ``|close_cg(t) / close_bn(t) - 1|`` on days both sources have a
close; per coin and calendar month: its mean, max and number of days. A coin-month is
flagged when the **mean** exceeds ``threshold`` (default 2 %), so systematic disagreement
is caught while one stray print is not (the max is reported beside it).
"""

from __future__ import annotations

import pandas as pd

__all__ = ["DEFAULT_DIVERGENCE_THRESHOLD", "RECONCILE_COLUMNS", "divergence_from_market", "price_divergence"]

DEFAULT_DIVERGENCE_THRESHOLD = 0.02
RECONCILE_COLUMNS = ["coin_id", "month", "mean_abs_divergence", "max_abs_divergence", "n_days", "flagged"]


def price_divergence(
    close: pd.DataFrame, reference: pd.DataFrame, threshold: float = DEFAULT_DIVERGENCE_THRESHOLD
) -> pd.DataFrame:
    """Per coin-month divergence of ``close`` from ``reference`` (both date × coin, close-stamped).

    Parameters
    ----------
    close : closes of the source under test (e.g. CoinGecko), USD, dates = the close they describe.
    reference : closes of the reference source (e.g. Binance), same convention.
    threshold : a coin-month is ``flagged`` when its mean absolute divergence exceeds this
        (a fraction: 0.02 = 2 %).

    Returns
    -------
    DataFrame with :data:`RECONCILE_COLUMNS`: ``month`` as ``YYYY-MM``; divergences as
    fractions; one row per coin-month with at least one overlapping day, sorted by coin and month.

    Raises
    ------
    ValueError
        If ``threshold`` is negative.
    """
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    coins = sorted(set(close.columns) & set(reference.columns))
    if not coins:
        return pd.DataFrame(columns=RECONCILE_COLUMNS)
    a = close[coins].astype(float)
    b = reference[coins].astype(float).reindex(a.index)
    div = (a / b - 1.0).abs().where(a.gt(0) & b.gt(0))
    long = div.stack().dropna().rename("d").reset_index()
    long.columns = ["date", "coin_id", "d"]
    if long.empty:
        return pd.DataFrame(columns=RECONCILE_COLUMNS)
    long["month"] = pd.DatetimeIndex(long["date"]).strftime("%Y-%m")
    out = (
        long.groupby(["coin_id", "month"])["d"]
        .agg(mean_abs_divergence="mean", max_abs_divergence="max", n_days="size")
        .reset_index()
    )
    out["n_days"] = out["n_days"].astype(int)
    out["flagged"] = out["mean_abs_divergence"] > threshold
    return out[RECONCILE_COLUMNS]


def divergence_from_market(
    market: pd.DataFrame,
    threshold: float = DEFAULT_DIVERGENCE_THRESHOLD,
    source: str = "coingecko",
    reference: str = "binance",
) -> pd.DataFrame:
    """:func:`price_divergence` of ``source`` against ``reference`` from long ``daily_market_data`` rows."""

    def wide(name: str) -> pd.DataFrame:
        rows = market[market["source"] == name]
        return rows.pivot(index="date", columns="coin_id", values="close")

    return price_divergence(wide(source), wide(reference), threshold)
