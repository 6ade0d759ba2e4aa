"""Binance spot daily klines (1d candles on UTC days).

Two layouts are accepted, one file per pair named ``<PAIR>_1d.csv`` or ``<PAIR>-1d-*.csv``
(gzip allowed):

* with a header ``timestamp,open,high,low,close,volume`` (``timestamp`` a UTC date in
  ISO 8601 or epoch milliseconds, ``volume`` in base-asset units; any other date layout,
  such as ``11/04/2020``, is an error naming the row, never a guess);
* Binance's official headerless dump (data.binance.vision) of 12 columns:
  open_time, open, high, low, close, volume, close_time, quote_volume, trades,
  taker_buy_base, taker_buy_quote, ignore.

Date convention (where the data enters Kallos)
----------------------------------------------
A 1d kline opened at 00:00 UTC of day D closes at the end of D, so it is stored with
``date = D``: the same close-of-day stamp as every other source.

``volume`` is stored as quote (USDT ~ USD) traded value: the official ``quote_volume``
when present, else ``volume * close`` (an estimate, noted in the import notes).
The last kline of an export is usually the still-open candle of the download day and
is dropped by default (``drop_last=True``; noted).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import ClassVar

import pandas as pd

from kallos.data.categories import default_category
from kallos.data.sources._files import (
    ISO_EXAMPLE,
    check_dates,
    check_duplicate_dates,
    fail_rows,
    list_csv_files,
    numeric,
    parse_iso_dates,
    read_csv,
    strip_suffix,
    utc_today,
)
from kallos.data.sources.base import COIN_COLUMNS, MARKET_COLUMNS, ImportBatch, concat_batches
from kallos.exceptions import ImportFormatError

__all__ = ["QUOTE_ASSETS", "BinanceKlinesImporter", "coin_id_from_pair"]

QUOTE_ASSETS = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD")
EXPECTED_DATES = f"epoch milliseconds (or microseconds) or {ISO_EXAMPLE}"
OFFICIAL_COLUMNS = [
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_base",
    "taker_buy_quote",
    "ignore",
]


def coin_id_from_pair(pair: str) -> str:
    """``BTCUSDT`` -> ``btc``. Only USD-pegged quotes are accepted.

    Raises
    ------
    ImportFormatError
        If the pair is not quoted in a USD stablecoin.
    """
    p = pair.upper()
    for quote in QUOTE_ASSETS:
        if p.endswith(quote) and len(p) > len(quote):
            return p[: -len(quote)].lower()
    raise ImportFormatError(f"pair {pair!r} is not quoted in USD ({', '.join(QUOTE_ASSETS)})")


def _pair_from_filename(path: Path) -> str:
    stem = strip_suffix(path.name)
    m = re.match(r"([A-Za-z0-9]+?)[_-]1d", stem)
    if not m:
        raise ImportFormatError(f"{path}: cannot read a pair from the file name (want PAIR_1d.csv)")
    return m.group(1).upper()


class BinanceKlinesImporter:
    """Import Binance daily klines from a file or a directory of ``*_1d.csv[.gz]`` files.

    Parameters
    ----------
    drop_last : drop the last kline of each file (usually the still-open day).
    today : the newest calendar date a kline may open on (default: today, UTC; for tests).
    """

    source: ClassVar[str] = "binance"

    def __init__(self, drop_last: bool = True, today: dt.date | None = None) -> None:
        self.drop_last = drop_last
        self.today = today

    def read(self, path: Path) -> ImportBatch:
        files = list_csv_files(Path(path), ("*_1d.csv", "*_1d.csv.gz", "*-1d-*.csv", "*-1d-*.csv.gz"))
        return concat_batches([self._read_file(f) for f in files])

    def _read_file(self, f: Path) -> ImportBatch:
        pair = _pair_from_filename(f)
        try:
            coin_id = coin_id_from_pair(pair)
        except ImportFormatError as err:
            raise ImportFormatError(f"{f}: {err}; only USD-quoted pairs are imported") from None
        head = read_csv(f, (), nrows=1, header=None)
        official = str(head.iloc[0, 0]).strip().isdigit() and head.shape[1] >= 12
        if official:
            raw = read_csv(f, OFFICIAL_COLUMNS[:6], header=None, names=OFFICIAL_COLUMNS)
            stamp = raw["open_time"]
        else:
            raw = read_csv(f, ("timestamp", "open", "high", "low", "close", "volume"))
            stamp = raw["timestamp"]
        if raw.empty:
            raise ImportFormatError(f"{f}: no rows")
        date = self._parse_dates(stamp, f, raw, self.today or utc_today())
        check_duplicate_dates(f, date, raw)
        px = {c: numeric(raw, c, f) for c in ("open", "high", "low", "close", "volume")}
        for c in ("open", "high", "low", "close"):
            fail_rows(f, px[c].isna(), f"missing {c}", raw)
            fail_rows(f, px[c] <= 0, f"non-positive {c}", raw)
        fail_rows(f, px["volume"] < 0, "negative volume", raw)
        tol = 1e-9
        body_top = pd.concat([px["open"], px["close"]], axis=1).max(axis=1)
        body_bottom = pd.concat([px["open"], px["close"]], axis=1).min(axis=1)
        fail_rows(f, px["high"] < body_top * (1 - tol), "high below open/close", raw)
        fail_rows(f, px["low"] > body_bottom * (1 + tol), "low above open/close", raw)
        notes = []
        if official:
            quote_volume = numeric(raw, "quote_volume", f)
        else:
            quote_volume = px["volume"] * px["close"]
            notes.append(f"{f.name}: volume converted to quote value as volume x close (estimate)")
        market = pd.DataFrame(
            {
                "coin_id": coin_id,
                "date": date.to_numpy(),
                "source": self.source,
                "open": px["open"].to_numpy(),
                "high": px["high"].to_numpy(),
                "low": px["low"].to_numpy(),
                "close": px["close"].to_numpy(),
                "volume": quote_volume.to_numpy(),
                "market_cap": float("nan"),
            },
            columns=MARKET_COLUMNS,
        ).sort_values("date", ignore_index=True)
        if self.drop_last and len(market):
            last = market["date"].iloc[-1]
            market = market.iloc[:-1]
            notes.append(f"{f.name}: last kline {last.date()} dropped as a possibly partial day")
        coins = pd.DataFrame(
            [[coin_id, coin_id.upper(), None, default_category(coin_id), self.source]],
            columns=COIN_COLUMNS,
        )
        return ImportBatch(
            market=market, coins=coins, files=(f,), notes=tuple(notes), origins={(self.source, coin_id): f}
        )

    @staticmethod
    def _parse_dates(stamp: pd.Series, f: Path, raw: pd.DataFrame, today: dt.date) -> pd.Series:
        s = stamp.astype(str).str.strip()
        if s.str.fullmatch(r"\d{12,16}").all():
            ms = pd.to_numeric(s)
            unit = "us" if ms.iloc[0] > 1e14 else "ms"  # Binance moved to microseconds in 2025
            ts = pd.to_datetime(ms, unit=unit, utc=True)
        else:
            ts = parse_iso_dates(s)
        column = "open_time" if "open_time" in raw.columns else "timestamp"
        check_dates(f, ts, raw, column, EXPECTED_DATES, today)
        fail_rows(f, ts != ts.dt.normalize(), "timestamp is not 00:00 UTC (not a daily kline)", raw)
        return ts.dt.tz_localize(None)
