"""The canonical cleaned panel: one row per coin per UTC day, stamped at that day's close.

Per-field source precedence
---------------------------
Sources are merged field by field; :data:`FIELD_PRECEDENCE` is the single source of truth,
and for each coin and day the first source in its tuple that has a value wins:

=============  ===============================================  ==========================================
field          precedence                                       why
=============  ===============================================  ==========================================
close          ``coingecko``, ``binance``                       CoinGecko has the longest history; Binance
                                                                carries coins CoinGecko's file lacks
                                                                (MATIC, ATOM, ETC, ...).
market_cap     ``coingecko``, ``binance_close_x_cmc_supply``    CoinGecko's circulating-supply market cap;
                                                                else Binance close × the circulating supply
                                                                of the latest CoinMarketCap snapshot at or
                                                                before the day (point in time, at most
                                                                :data:`SNAPSHOT_MAX_AGE_DAYS` old).
volume         ``coingecko``, ``binance``                       USD traded value.
bar            ``binance``                                      open/high/low/close of real exchange bars.
=============  ===============================================  ==========================================

Where no exchange bar exists a close-only bar is synthesised (open = previous close,
high/low = the larger/smaller of the two) and marked in :attr:`MarketPanel.bar_source`.
Which source supplied each close and market cap is recorded per coin and day in
:attr:`MarketPanel.close_source` and :attr:`MarketPanel.market_cap_source`
(:data:`SOURCE_DESCRIPTIONS` says what each name means).

CoinMarketCap names to Kallos coin ids (:func:`map_cmc_coins`)
-------------------------------------------------------------
CMC symbols are not unique, so a CMC row is keyed on (Name, Symbol):

1. an entry of :data:`CMC_ALIASES` decides (renames such as "Binance Coin" -> ``bnb``;
   ``None`` marks a different coin that merely shares a Kallos symbol);
2. otherwise the lower-case symbol must be a coin id in the store, and its name must equal
   the coin's stored name (case and punctuation ignored); a coin with no stored name (a
   Binance-only coin such as ``atom``) matches when the symbol has a single CMC name;
3. a symbol that matches a coin id but not its name is an error (add it to the table);
   two rows of one snapshot mapping to one coin are an error; symbols of coins Kallos
   has no prices for stay unmapped (``coin_id`` None).
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

__all__ = [
    "CMC_ALIASES",
    "CMC_SUPPLY_SOURCE",
    "FIELD_PRECEDENCE",
    "SNAPSHOT_MAX_AGE_DAYS",
    "SOURCE_DESCRIPTIONS",
    "MarketPanel",
    "build_panel",
    "map_cmc_coins",
    "snapshot_on",
    "validate_market_rows",
]

CMC_SUPPLY_SOURCE = "binance_close_x_cmc_supply"
FIELD_PRECEDENCE: dict[str, tuple[str, ...]] = {
    "close": ("coingecko", "binance"),
    "market_cap": ("coingecko", CMC_SUPPLY_SOURCE),
    "volume": ("coingecko", "binance"),
    "bar": ("binance",),  # open, high, low and the bar's own close
}
SOURCE_DESCRIPTIONS: dict[str, str] = {
    "coingecko": "coingecko {field}",
    "binance": "binance {field}",
    CMC_SUPPLY_SOURCE: "binance close × cmc circulating_supply",
}
SYNTHETIC = "synthetic"
SNAPSHOT_MAX_AGE_DAYS = 62
"""A CoinMarketCap snapshot's supply and ranking serve at most this many days (one missed month)."""

# (CMC Name, CMC Symbol) -> Kallos coin id; None = not the Kallos coin sharing that symbol.
CMC_ALIASES: dict[tuple[str, str], str | None] = {
    ("Binance Coin", "BNB"): "bnb",
    ("Crypto.com Coin", "CRO"): "cro",
    ("Hedera Hashgraph", "HBAR"): "hbar",
    ("Matic Network", "MATIC"): "matic",
    ("Polygon", "MATIC"): "matic",
    ("Pi", "PI"): "pi",
    ("Multi-collateral DAI", "DAI"): "dai",
    ("Tether USDt", "USDT"): "usdt",
    ("USDC", "USDC"): "usdc",
    ("World Liberty Financial USD", "USD1"): "usd1",
}


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
    close_source, market_cap_source : per coin and day, the :data:`FIELD_PRECEDENCE` source
        that supplied the value (NaN where unknown; forward-filled days keep their source).
    snapshots : CoinMarketCap snapshots with a ``coin_id`` column (None where the row is a
        coin without Kallos prices); empty when none were imported.
    source_close : per source, the raw observed close (date × coin), for reconciliation.
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
    close_source: pd.DataFrame | None = field(default=None, repr=False)
    market_cap_source: pd.DataFrame | None = field(default=None, repr=False)
    snapshots: pd.DataFrame | None = field(default=None, repr=False)
    source_close: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

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
        end = pd.Timestamp(end)
        names = "close returns market_cap volume bar_open bar_high bar_low bar_close bar_source"
        frames = {name: getattr(self, name).loc[:end] for name in names.split()}
        for name in ("close_source", "market_cap_source"):
            frame = getattr(self, name)
            frames[name] = None if frame is None else frame.loc[:end]
        snaps = self.snapshots
        if snaps is not None:
            snaps = snaps[snaps["snapshot_date"] <= end]
        return MarketPanel(
            **frames,
            categories=self.categories,
            events=self.events,
            snapshots=snaps,
            source_close={k: v.loc[:end] for k, v in self.source_close.items()},
        )

    def in_source(self, coin_id: str, source: str = "coingecko") -> bool:
        """Whether any close of ``coin_id`` came from ``source``."""
        if self.close_source is None or coin_id not in self.close_source:
            return False
        return bool((self.close_source[coin_id] == source).any())

    def market_cap_origin(self, coin_id: str, date: pd.Timestamp) -> str:
        """How the market cap of ``coin_id`` on ``date`` was obtained, in words.

        E.g. ``"coingecko market_cap"`` or ``"binance close × cmc circulating_supply
        (snapshot 2022-03-01)"``; ``"unknown"`` where the panel has no market cap.
        """
        date = pd.Timestamp(date)
        source = None
        if self.market_cap_source is not None and coin_id in self.market_cap_source:
            source = self.market_cap_source.at[date, coin_id]
        if not isinstance(source, str):
            return "unknown"
        text = SOURCE_DESCRIPTIONS.get(source, source).format(field="market_cap")
        if source == CMC_SUPPLY_SOURCE and self.snapshots is not None:
            snap = snapshot_on(self.snapshots, date)
            if snap is not None:
                text += f" (snapshot {snap.date().isoformat()})"
        return text

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


def _norm(name: object) -> str:
    return "".join(ch for ch in str(name).casefold() if ch.isalnum())


def map_cmc_coins(
    snapshots: pd.DataFrame,
    coins: pd.DataFrame,
    aliases: dict[tuple[str, str], str | None] | None = None,
) -> pd.DataFrame:
    """Add a ``coin_id`` column to CoinMarketCap snapshot rows (see the module docstring).

    Parameters
    ----------
    snapshots : ``market_cap_snapshots`` rows (``snapshot_date``, ``rank``, ``name``, ``symbol``, ...).
    coins : the ``coins`` table (``coin_id`` and ``name``; ``name`` may be null).
    aliases : (Name, Symbol) -> coin id or None; default :data:`CMC_ALIASES`.

    Returns
    -------
    The rows, sorted by snapshot date and rank, ``coin_id`` None where no Kallos coin matches.

    Raises
    ------
    DataValidationError
        A symbol that is a Kallos coin id under another name and not in the table, or two
        rows of one snapshot mapping to the same coin (naming the date, names and symbols).
    """
    aliases = CMC_ALIASES if aliases is None else aliases
    snaps = snapshots.copy()
    snaps["snapshot_date"] = pd.to_datetime(snaps["snapshot_date"])
    names: dict[str, object] = {}
    if len(coins):
        stored = coins["name"] if "name" in coins else pd.Series(None, index=coins.index)
        names = dict(zip(coins["coin_id"], stored, strict=True))
    keys = snaps[["name", "symbol"]].drop_duplicates()
    names_per_symbol = keys.groupby("symbol")["name"].nunique()
    mapping: dict[tuple[str, str], str | None] = {}
    for name, symbol in keys.itertuples(index=False):
        if (name, symbol) in aliases:
            mapping[(name, symbol)] = aliases[(name, symbol)]
            continue
        coin = str(symbol).lower()
        if coin not in names:
            mapping[(name, symbol)] = None
            continue
        known = names[coin]
        if (isinstance(known, str) and known and _norm(known) == _norm(name)) or (
            not (isinstance(known, str) and known) and names_per_symbol[symbol] == 1
        ):
            mapping[(name, symbol)] = coin
            continue
        why = (
            f"stored name {known!r}"
            if isinstance(known, str) and known
            else f"no stored name and {names_per_symbol[symbol]} CMC names"
        )
        raise DataValidationError(
            f"CoinMarketCap row (Name={name!r}, Symbol={symbol!r}) has the symbol of coin {coin!r} "
            f"({why}); add ({name!r}, {symbol!r}) to kallos.data.panel.CMC_ALIASES with the "
            "coin id, or None if it is a different coin"
        )
    snaps["coin_id"] = [mapping[k] for k in zip(snaps["name"], snaps["symbol"], strict=True)]
    mapped = snaps[snaps["coin_id"].notna()]
    dup = mapped.duplicated(["snapshot_date", "coin_id"], keep=False)
    if dup.any():
        rows = mapped[dup].iloc[:2]
        raise DataValidationError(
            f"CoinMarketCap snapshot {rows['snapshot_date'].iloc[0].date()}: rows "
            f"{list(zip(rows['name'], rows['symbol'], strict=True))} both map to coin "
            f"{rows['coin_id'].iloc[0]!r}; "
            "disambiguate them in kallos.data.panel.CMC_ALIASES"
        )
    snaps["coin_id"] = snaps["coin_id"].astype(object).where(snaps["coin_id"].notna(), None)
    return snaps.sort_values(["snapshot_date", "rank"], ignore_index=True)


def snapshot_on(
    snapshots: pd.DataFrame, date: pd.Timestamp, max_age_days: int = SNAPSHOT_MAX_AGE_DAYS
) -> pd.Timestamp | None:
    """Date of the latest snapshot at or before ``date`` and at most ``max_age_days`` old, else None."""
    dates = pd.DatetimeIndex(snapshots["snapshot_date"].unique()).sort_values()
    date = pd.Timestamp(date)
    i = dates.searchsorted(date, side="right") - 1
    if i < 0 or (date - dates[i]).days > max_age_days:
        return None
    return dates[i]


def _supply_as_of(snapshots: pd.DataFrame, dates: pd.DatetimeIndex) -> pd.DataFrame:
    """Date × coin circulating supply from the latest snapshot at or before each date.

    A coin absent from that snapshot has no supply (it is not carried from older snapshots);
    snapshots older than :data:`SNAPSHOT_MAX_AGE_DAYS` are not used.
    """
    mapped = snapshots[snapshots["coin_id"].notna() & (snapshots["circulating_supply"] > 0)]
    if mapped.empty or len(dates) == 0:
        return pd.DataFrame(index=dates, dtype=float)
    supply = mapped.pivot(index="snapshot_date", columns="coin_id", values="circulating_supply")
    snap_dates = pd.DatetimeIndex(supply.index)
    i = snap_dates.searchsorted(dates, side="right") - 1
    ok = i >= 0
    age = np.where(ok, (dates - snap_dates[np.clip(i, 0, None)]).days, np.inf)
    ok &= age <= SNAPSHOT_MAX_AGE_DAYS
    out = supply.iloc[np.clip(i, 0, None)].set_axis(dates)
    return out.where(pd.Series(ok, index=dates), axis=0)


def _binance_close_x_cmc_supply(market: pd.DataFrame, snapshots: pd.DataFrame | None) -> pd.DataFrame | None:
    """Market cap = Binance close × CMC circulating supply (latest snapshot at or before the day)."""
    if snapshots is None or snapshots.empty:
        return None
    bn = market[market["source"] == "binance"]
    if bn.empty:
        return None
    close = bn.pivot(index="date", columns="coin_id", values="close")
    supply = _supply_as_of(snapshots, pd.DatetimeIndex(close.index))
    cap = close * supply.reindex(columns=close.columns)
    cap = cap.dropna(how="all", axis=1)
    return cap if cap.notna().any().any() else None


# Sources computed from other data rather than read from rows (a registry, not if/elif).
DERIVED_SOURCES = {CMC_SUPPLY_SOURCE: _binance_close_x_cmc_supply}


def _by_precedence(
    market: pd.DataFrame, column: str, sources: tuple[str, ...], snapshots: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Wide date × coin frames: first non-null value in ``sources`` order, and its source name."""
    out: pd.DataFrame | None = None
    label: pd.DataFrame | None = None
    for source in sources:
        if source in DERIVED_SOURCES:
            wide = DERIVED_SOURCES[source](market, snapshots)
        else:
            part = market[(market["source"] == source) & market[column].notna()]
            wide = None if part.empty else part.pivot(index="date", columns="coin_id", values=column)
        if wide is None:
            continue
        this = pd.DataFrame(np.where(wide.notna(), source, None), index=wide.index, columns=wide.columns)
        if out is None:
            out, label = wide, this
        else:
            out = out.combine_first(wide)
            label = label.combine_first(this)
    if out is None:
        return pd.DataFrame(dtype=float), pd.DataFrame(dtype=object)
    return out, label


def build_panel(
    market: pd.DataFrame,
    coins: pd.DataFrame,
    cfg: QualityConfig,
    snapshots: pd.DataFrame | None = None,
) -> MarketPanel:
    """Merge sources by :data:`FIELD_PRECEDENCE`, apply the data-quality rules, return the panel.

    Parameters
    ----------
    market : long ``daily_market_data`` rows (every source).
    coins : the ``coins`` table (``coin_id``, ``category``, ``name``).
    cfg : quality rules and limits.
    snapshots : optional ``market_cap_snapshots`` rows (CoinMarketCap); they supply the
        ``binance_close_x_cmc_supply`` market caps and the ``cmc_snapshots`` universe.

    Raises
    ------
    DataValidationError
        If the rows break the panel contract (see :func:`validate_market_rows`) or a
        configured rule names a coin the data does not hold, or a CoinMarketCap name cannot
        be mapped unambiguously (see :func:`map_cmc_coins`).
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

    mapped = None
    if snapshots is not None and len(snapshots):
        mapped = map_cmc_coins(snapshots, coins)
    close_raw, close_src = _by_precedence(market, "close", FIELD_PRECEDENCE["close"])
    mcap_raw, mcap_src = _by_precedence(market, "market_cap", FIELD_PRECEDENCE["market_cap"], mapped)
    volume_raw, _ = _by_precedence(market, "volume", FIELD_PRECEDENCE["volume"])
    bars = {
        c: _by_precedence(market, c, FIELD_PRECEDENCE["bar"])[0] for c in ("open", "high", "low", "close")
    }
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
    mcap_source = (
        mcap_src.reindex(index=calendar, columns=columns).ffill(limit=limit).where(market_cap.notna())
    )
    close_source = close_src.reindex(index=calendar, columns=columns).ffill(limit=limit).where(known)
    source_close = {
        source: market[market["source"] == source]
        .pivot(index="date", columns="coin_id", values="close")
        .reindex(index=calendar)
        for source in FIELD_PRECEDENCE["close"]
        if (market["source"] == source).any()
    }
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
        close_source=close_source,
        market_cap_source=mcap_source,
        snapshots=mapped if mapped is not None else None,
        source_close=source_close,
    )


def _sorted_events(events: list[QualityEvent]) -> pd.DataFrame:
    frame = events_frame(events)
    if frame.empty:
        return frame
    return frame.sort_values(["rule", "coin_id", "start"], ignore_index=True)
