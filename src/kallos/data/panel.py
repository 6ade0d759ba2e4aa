"""The canonical cleaned panel: one row per coin per UTC day, stamped at that day's close.

Sources are merged field by field with an explicit precedence (:data:`FIELD_PRECEDENCE`):
the close, market cap and volume come from CoinGecko where it has them (full history,
market caps); open/high/low come from Binance where it has them, so OHLC-based indicators
use real exchange bars. Where no exchange bar exists, a close-only bar is synthesised
(open = previous close, high/low = the larger/smaller of the two) and marked in
:attr:`MarketPanel.bar_source`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kallos.config import QualityConfig
from kallos.data.quality import (
    QualityEvent,
    clean_close,
    drop_known_bad_windows,
    events_frame,
    exclude_categories,
)
from kallos.exceptions import DataValidationError

__all__ = ["FIELD_PRECEDENCE", "MarketPanel", "build_panel", "validate_market_rows"]

FIELD_PRECEDENCE: dict[str, tuple[str, ...]] = {
    "close": ("coingecko", "binance"),
    "market_cap": ("coingecko",),
    "volume": ("coingecko", "binance"),
    "bar": ("binance",),  # open, high, low and the bar's own close
}
SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class MarketPanel:
    """Cleaned daily market data, wide frames indexed by date with one column per coin.

    Attributes
    ----------
    close : USD close after cleaning (NaN where unknown).
    returns : daily simple returns of ``close`` (capped; NaN where unknown).
    market_cap : USD market cap (NaN where unknown; short gaps filled forward).
    volume : USD traded value per day.
    bar_open, bar_high, bar_low, bar_close : OHLC of the bar used by indicators.
    bar_source : per coin and day, the source of the bar (``binance`` or ``synthetic``).
    categories : category per coin.
    events : data-quality events (see :mod:`kallos.data.quality`).
    """

    close: pd.DataFrame
    returns: pd.DataFrame
    market_cap: pd.DataFrame
    volume: pd.DataFrame
    bar_open: pd.DataFrame
    bar_high: pd.DataFrame
    bar_low: pd.DataFrame
    bar_close: pd.DataFrame
    bar_source: pd.DataFrame
    categories: pd.Series
    events: pd.DataFrame = field(repr=False)

    @property
    def coins(self) -> list[str]:
        return list(self.close.columns)

    @property
    def dates(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.close.index)

    def bars(self, coin_id: str) -> pd.DataFrame:
        """OHLCV of one coin over its own history: columns open, high, low, close, volume."""
        frame = pd.DataFrame(
            {
                "open": self.bar_open[coin_id],
                "high": self.bar_high[coin_id],
                "low": self.bar_low[coin_id],
                "close": self.bar_close[coin_id],
                "volume": self.volume[coin_id],
            }
        )
        valid = self.close[coin_id].notna()
        if not valid.any():
            return frame.iloc[0:0]
        return frame.loc[valid.idxmax() : valid[::-1].idxmax()]

    def history_days(self) -> pd.DataFrame:
        """Number of days with a known close up to and including each date."""
        return self.close.notna().cumsum()

    def truncate(self, end: pd.Timestamp) -> MarketPanel:
        """The panel as it was known at the close of ``end`` (rows after it removed)."""
        frames = {
            name: getattr(self, name).loc[:end]
            for name in (
                "close returns market_cap volume bar_open bar_high bar_low bar_close bar_source".split()
            )
        }
        return MarketPanel(**frames, categories=self.categories, events=self.events)

    def data_hash(self) -> str:
        """Short hash of the cleaned close, returns and market caps (identifies the data of a run)."""
        h = hashlib.sha256()
        for frame in (self.close, self.market_cap):
            h.update(",".join(map(str, frame.columns)).encode())
            h.update(frame.index.asi8.tobytes())
            h.update(np.nan_to_num(frame.to_numpy(dtype=float), nan=-1.0).tobytes())
        return h.hexdigest()[:12]


def validate_market_rows(market: pd.DataFrame) -> None:
    """Check the long market rows: unique (coin, date, source), positive closes, day-resolution dates.

    Raises
    ------
    DataValidationError
        Naming the coin, date and source at fault.
    """
    if market.empty:
        raise DataValidationError("no market data: import some with `kallos ingest`")
    dup = market.duplicated(["coin_id", "date", "source"])
    if dup.any():
        r = market[dup].iloc[0]
        raise DataValidationError(f"duplicated row for {r.coin_id} on {r.date.date()} from {r.source}")
    bad = ~(market["close"] > 0)
    if bad.any():
        r = market[bad].iloc[0]
        raise DataValidationError(
            f"non-positive or missing close for {r.coin_id} on {r.date.date()} from {r.source}"
        )
    dates = pd.DatetimeIndex(market["date"])
    if dates.tz is not None or not (dates == dates.normalize()).all():
        raise DataValidationError("market dates must be tz-naive UTC calendar days (no time of day)")


def _by_precedence(market: pd.DataFrame, column: str, sources: tuple[str, ...]) -> pd.DataFrame:
    """Wide date × coin frame of ``column``, first non-null value in ``sources`` order."""
    out: pd.DataFrame | None = None
    for source in sources:
        part = market[(market["source"] == source) & market[column].notna()]
        if part.empty:
            continue
        wide = part.pivot(index="date", columns="coin_id", values=column)
        out = wide if out is None else out.combine_first(wide)
    return out if out is not None else pd.DataFrame(dtype=float)


def build_panel(market: pd.DataFrame, coins: pd.DataFrame, cfg: QualityConfig) -> MarketPanel:
    """Merge sources, apply the data-quality rules and return the cleaned panel.

    Parameters
    ----------
    market : long ``daily_market_data`` rows (every source).
    coins : the ``coins`` table (``coin_id``, ``category``).
    cfg : quality rules and limits.

    Raises
    ------
    DataValidationError
        If the rows break the panel contract (see :func:`validate_market_rows`) or a
        configured rule names a coin the data does not hold.
    """
    market = market.copy()
    market["date"] = pd.to_datetime(market["date"])
    validate_market_rows(market)
    known = set(market["coin_id"])
    for i, window in enumerate(cfg.known_bad_windows):
        if window.coin_id not in known:
            raise DataValidationError(
                f"quality.known_bad_windows[{i}].coin_id: unknown coin {window.coin_id!r}; "
                f"the store holds {sorted(known)}"
            )
    categories = coins.set_index("coin_id")["category"] if len(coins) else pd.Series(dtype=str)
    market, events = exclude_categories(market, categories, cfg.exclude_categories)
    market, bad = drop_known_bad_windows(market, cfg.known_bad_windows)
    events = list(events) + bad

    close_raw = _by_precedence(market, "close", FIELD_PRECEDENCE["close"])
    mcap_raw = _by_precedence(market, "market_cap", FIELD_PRECEDENCE["market_cap"])
    volume_raw = _by_precedence(market, "volume", FIELD_PRECEDENCE["volume"])
    bars = {c: _by_precedence(market, c, FIELD_PRECEDENCE["bar"]) for c in ("open", "high", "low", "close")}
    calendar = pd.date_range(close_raw.index.min(), close_raw.index.max(), freq="D")
    columns = sorted(close_raw.columns)

    def wide(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.reindex(index=calendar, columns=columns).astype(float)

    close_raw, mcap_raw, volume_raw = wide(close_raw), wide(mcap_raw), wide(volume_raw)
    bars = {k: wide(v) for k, v in bars.items()}

    close = pd.DataFrame(np.nan, index=calendar, columns=columns)
    returns = close.copy()
    adjustment = close.copy()
    for coin in columns:
        cleaned = clean_close(close_raw[coin].dropna(), coin, cfg, end=calendar[-1])
        close[coin] = cleaned.close.reindex(calendar)
        returns[coin] = cleaned.returns.reindex(calendar)
        adjustment[coin] = cleaned.adjustment.reindex(calendar)
        events.extend(cleaned.events)

    known = close.notna()
    limit = cfg.max_ffill_days or None
    market_cap = mcap_raw.ffill(limit=limit).where(known)
    volume = volume_raw.ffill(limit=limit).where(known)
    has_bar = bars["close"].notna() & known
    prev_close = close.shift(1)
    synth_open = prev_close.fillna(close)
    bar_close = bars["close"].where(has_bar, close / adjustment) * adjustment
    bar_open = (bars["open"] * adjustment).where(has_bar, synth_open)
    bar_high = (bars["high"] * adjustment).where(has_bar, np.fmax(synth_open, close))
    bar_low = (bars["low"] * adjustment).where(has_bar, np.fmin(synth_open, close))
    bar_source = pd.DataFrame(
        np.where(has_bar, FIELD_PRECEDENCE["bar"][0], SYNTHETIC), index=calendar, columns=columns
    ).where(known)

    return MarketPanel(
        close=close,
        returns=returns,
        market_cap=market_cap,
        volume=volume,
        bar_open=bar_open.where(known),
        bar_high=bar_high.where(known),
        bar_low=bar_low.where(known),
        bar_close=bar_close.where(known),
        bar_source=bar_source,
        categories=categories.reindex(columns).fillna("crypto"),
        events=_sorted_events(events),
    )


def _sorted_events(events: list[QualityEvent]) -> pd.DataFrame:
    frame = events_frame(events)
    if frame.empty:
        return frame
    return frame.sort_values(["rule", "coin_id", "start"], ignore_index=True)
