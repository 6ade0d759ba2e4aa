"""CoinGecko per-coin "historical data" CSV export.

Format: ``snapped_at,price,market_cap,total_volume``, one file per coin named
``<ticker>-usd-max.csv`` (gzip allowed). ``snapped_at`` is a UTC timestamp such as
``2021-01-01 00:00:00 UTC``; ISO 8601 (``2021-01-01``, ``2021-01-01T00:00:00Z``) is also
accepted. Any other layout (``01/01/2021``: day or month first?) is an error naming the row,
never a guess; so is a date after today (UTC).

Date convention (where the data enters Kallos)
----------------------------------------------
A CoinGecko row snapped on calendar day D (normally at 00:00 UTC) is the price at the
start of D, which is the **close of UTC day D-1**. Kallos stamps every row at the close
of the day it describes, so the row snapped on D is stored with ``date = D - 1``.
A few snapshots are taken late on D (e.g. 23:29); they fill the slot of D, so the
calendar date of ``snapped_at`` is used, never a rounded one.

Values: ``price`` must be positive. ``market_cap`` and ``total_volume`` of 0 mean
"unknown" in this export and are stored as NULL (counted in the import notes);
negative and non-finite values (``inf``, ``1e400``) are errors.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import ClassVar

import pandas as pd

from kallos.data.categories import default_category, resolve_category
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

__all__ = ["CoinGeckoCsvImporter", "coin_id_from_filename"]

REQUIRED = ("snapped_at", "price", "market_cap", "total_volume")
METADATA_FILE = "coins.csv"
EXPORT_LAYOUT = "%Y-%m-%d %H:%M:%S UTC"
EXPECTED_DATES = f"'YYYY-MM-DD HH:MM:SS UTC' (CoinGecko's export) or {ISO_EXAMPLE}"


def coin_id_from_filename(path: Path) -> str:
    """``btc-usd-max.csv.gz`` -> ``btc``; ``Uni-usd-max.csv`` -> ``uni``."""
    stem = strip_suffix(path.name)
    for tail in ("-usd-max", "-usd"):
        if stem.lower().endswith(tail):
            stem = stem[: -len(tail)]
    return stem.lower()


class CoinGeckoCsvImporter:
    """Import CoinGecko CSV exports from a file or a directory of them.

    If the directory (or its parent) holds ``coins.csv`` with columns ``coin_id`` and ``category``
    (optionally ``symbol``, ``name``), its categories are used; otherwise coins get
    :func:`kallos.data.categories.default_category`.

    Parameters
    ----------
    today : the newest calendar date a row may carry (default: today, UTC; injectable for tests).
    """

    source: ClassVar[str] = "coingecko"

    def __init__(self, today: dt.date | None = None) -> None:
        self.today = today

    def read(self, path: Path) -> ImportBatch:
        path = Path(path)
        files = [f for f in list_csv_files(path, ("*.csv", "*.csv.gz")) if f.name != METADATA_FILE]
        meta = self._metadata(path) if path.is_dir() else None
        batches = [self._read_file(f, meta) for f in files]
        ids = [b.coins["coin_id"].iloc[0] for b in batches]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ImportFormatError(f"{path}: several files map to coin id(s) {sorted(dup)}")
        return concat_batches(batches)

    def _metadata(self, directory: Path) -> pd.DataFrame | None:
        """``coins.csv`` beside the exports or one level up, if there is one."""
        for f in (directory / METADATA_FILE, directory.parent / METADATA_FILE):
            if f.exists():
                meta = read_csv(f, ("coin_id", "category"))
                meta["coin_id"] = meta["coin_id"].astype(str).str.lower()
                return meta.set_index("coin_id")
        return None

    def _read_file(self, f: Path, meta: pd.DataFrame | None) -> ImportBatch:
        coin_id = coin_id_from_filename(f)
        raw = read_csv(f, REQUIRED, dtype={"snapped_at": str})
        if raw.empty:
            raise ImportFormatError(f"{f}: no rows")
        # The export's own layout, else ISO 8601; nothing is guessed (11/04/2020 is refused).
        snapped = pd.to_datetime(raw["snapped_at"], utc=True, errors="coerce", format=EXPORT_LAYOUT)
        odd = snapped.isna() & raw["snapped_at"].notna()
        if odd.any():
            snapped[odd] = parse_iso_dates(raw.loc[odd, "snapped_at"])
        check_dates(f, snapped, raw, "snapped_at", EXPECTED_DATES, self.today or utc_today())
        # Row snapped on day D describes the close of D-1 (see module docstring).
        date = snapped.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize() - pd.Timedelta(days=1)
        check_duplicate_dates(f, date, raw)
        price = numeric(raw, "price", f)
        fail_rows(f, price.isna(), "missing price", raw)
        fail_rows(f, price <= 0, "non-positive price", raw)
        notes = []
        out = {}
        for col, name in (("market_cap", "market_cap"), ("total_volume", "volume")):
            v = numeric(raw, col, f)
            fail_rows(f, v < 0, f"negative {col}", raw)
            zero = int((v == 0).sum())
            if zero:
                notes.append(f"{f.name}: {zero} row(s) with {col}=0 stored as unknown (NULL)")
            out[name] = v.where(v > 0)
        market = pd.DataFrame(
            {
                "coin_id": coin_id,
                "date": date.to_numpy(),
                "source": self.source,
                "open": float("nan"),
                "high": float("nan"),
                "low": float("nan"),
                "close": price.to_numpy(),
                "volume": out["volume"].to_numpy(),
                "market_cap": out["market_cap"].to_numpy(),
            },
            columns=MARKET_COLUMNS,
        ).sort_values("date", ignore_index=True)
        symbol, name, category = coin_id.upper(), None, default_category(coin_id)
        if meta is not None and coin_id in meta.index:
            row = meta.loc[coin_id]
            category = resolve_category(coin_id, str(row["category"]))
            symbol = str(row.get("symbol", symbol))
            name = row.get("name")
        coins = pd.DataFrame([[coin_id, symbol, name, category, self.source]], columns=COIN_COLUMNS)
        return ImportBatch(
            market=market, coins=coins, files=(f,), notes=tuple(notes), origins={(self.source, coin_id): f}
        )
