"""The ``daily_technical_indicators`` table and its incremental update.

One row per coin per UTC day, one FLOAT column per feature of
:func:`kallos.features.compute_indicators` (units in :mod:`kallos.features.indicators`). The
value stored for day ``t`` is computed from bars up to and including ``t`` (the indicators are
causal), so a row never changes when later days arrive and the table can be extended one day at
a time by :func:`update_indicators`.

The table lives on the shared :data:`kallos.data.schema.metadata` (features may import data,
never the reverse); Alembic revision 0002 creates it with the same columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy import Column, Date, Float, Index, String, Table, func, select

from kallos.data import schema
from kallos.data.panel import MarketPanel
from kallos.data.store import Store
from kallos.features.indicators import FEATURE_NAMES, compute_indicators, warmup_days

__all__ = [
    "INCREMENTAL_CONTEXT_DAYS",
    "daily_technical_indicators",
    "indicator_rows",
    "last_indicator_dates",
    "read_indicators",
    "update_indicators",
]

daily_technical_indicators = Table(
    "daily_technical_indicators",
    schema.metadata,
    Column("coin_id", String(64), primary_key=True),
    Column("date", Date, primary_key=True, doc="UTC day whose close the row describes"),
    *(Column(name, Float, doc=f"kallos.features.INDICATORS[{name!r}]") for name in FEATURE_NAMES),
)
Index("ix_daily_technical_indicators_date", daily_technical_indicators.c.date)

INCREMENTAL_CONTEXT_DAYS: int = 20 * warmup_days()
"""Days of history fed before the first new day in an incremental update (1,200).

Most features look back at most :func:`warmup_days` (60) days, but the recursive ones (EMA,
Wilder smoothing in RSI/ADX/ATR, MACD, TRIX, A/D oscillator) depend on all earlier bars with a
weight that decays like ``(1 - alpha) ** n``; with ``alpha >= 2/31`` (TRIX 15 is the slowest)
and ``n = 1,200`` that weight is below ``1e-30``, so an incremental update equals a full
recompute to floating-point rounding (``tests/features/test_indicator_store.py`` checks it).
"""


def indicator_rows(coin_id: str, bars: pd.DataFrame, since: pd.Timestamp | None = None) -> pd.DataFrame:
    """Rows of ``daily_technical_indicators`` for one coin: day ``t`` from bars ``<= t``.

    Parameters
    ----------
    coin_id : the coin the bars belong to.
    bars : one coin's daily OHLCV bars, as :meth:`kallos.data.MarketPanel.bars` returns them
        (complete daily ``DatetimeIndex``; see :func:`compute_indicators`).
    since : return only days strictly after this one; ``None`` returns every day.

    Returns
    -------
    pd.DataFrame of shape (n_new_days, 2 + len(FEATURE_NAMES))
        Columns ``coin_id``, ``date`` and the features, NaN during warm-up and gaps.

    Raises
    ------
    DataValidationError
        From :func:`compute_indicators` on malformed bars (names the coin and date).
    """
    if since is not None:
        first_new = int(bars.index.searchsorted(since, side="right"))
        bars = bars.iloc[max(0, first_new - INCREMENTAL_CONTEXT_DAYS) :]
    features = compute_indicators(bars, coin_id=coin_id)
    if since is not None:
        features = features.loc[features.index > since]
    out = features.reset_index(names="date")
    out.insert(0, "coin_id", coin_id)
    return out


def last_indicator_dates(store: Store) -> dict[str, pd.Timestamp]:
    """Last stored day per coin in ``daily_technical_indicators`` (coins without rows absent)."""
    t = daily_technical_indicators
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.c.coin_id, func.max(t.c.date)).group_by(t.c.coin_id)).fetchall()
    return {coin: pd.Timestamp(day) for coin, day in rows}


def update_indicators(store: Store, panel: MarketPanel, coins: Sequence[str] | None = None) -> int:
    """Compute and upsert the indicator rows missing from ``store`` for every coin of ``panel``.

    Per coin only the days after its last stored day are computed (with
    :data:`INCREMENTAL_CONTEXT_DAYS` of earlier bars as context) and written, all coins in one
    transaction. A coin without stored rows gets its whole history. Running it twice writes
    nothing the second time.

    Parameters
    ----------
    store : an open store (schema at head).
    panel : the cleaned market panel; its ``bars(coin)`` feed :func:`compute_indicators`.
    coins : restrict to these coins (default: all of ``panel.coins``).

    Returns
    -------
    int
        Number of rows written.

    Raises
    ------
    DataValidationError
        On malformed bars of a coin (nothing is written then).
    StoreError
        When the write fails (nothing is written then).
    """
    last = last_indicator_dates(store)
    frames = []
    for coin in coins if coins is not None else panel.coins:
        bars = panel.bars(coin)
        if bars.empty or (coin in last and bars.index[-1] <= last[coin]):
            continue
        frames.append(indicator_rows(coin, bars, since=last.get(coin)))
    if not frames:
        return 0
    rows = pd.concat(frames, ignore_index=True)
    return store.upsert(daily_technical_indicators, rows)


def read_indicators(store: Store, coin_id: str | None = None) -> pd.DataFrame:
    """Stored indicator rows (one coin or all), sorted by coin and date; ``date`` as datetime64.

    Returns
    -------
    pd.DataFrame of shape (n_rows, 2 + len(FEATURE_NAMES)); NULL features read as NaN.
    """
    t = daily_technical_indicators
    frame = store.read_table(t, where=None if coin_id is None else t.c.coin_id == coin_id)
    return frame.sort_values(["coin_id", "date"], ignore_index=True)
