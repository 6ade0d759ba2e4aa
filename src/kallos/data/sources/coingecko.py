"""CoinGecko per-coin "historical data" CSV export.

Format: ``snapped_at,price,market_cap,total_volume``, one file per coin named
``<ticker>-usd-max.csv`` (gzip allowed). ``snapped_at`` is a UTC timestamp such as
``2021-01-01 00:00:00 UTC``.

Date convention (where the data enters Kallos)
----------------------------------------------
A CoinGecko row snapped on calendar day D (normally at 00:00 UTC) is the price at the
start of D, which is the **close of UTC day D-1**. Kallos stamps every row at the close
of the day it describes, so the row snapped on D is stored with ``date = D - 1``.
A few snapshots are taken late on D (e.g. 23:29); they fill the slot of D, so the
calendar date of ``snapped_at`` is used, never a rounded one.

Values: ``price`` must be positive. ``market_cap`` and ``total_volume`` of 0 mean
"unknown" in this export and are stored as NULL (counted in the import notes);
negative values are errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pandas as pd

from kallos.data.categories import default_category, resolve_category
from kallos.data.sources._files import (
    check_duplicate_dates,
    fail_rows,
    list_csv_files,
    numeric,
    read_csv,
    strip_suffix,
)
from kallos.data.sources.base import COIN_COLUMNS, MARKET_COLUMNS, ImportBatch, concat_batches
from kallos.exceptions import ImportFormatError

__all__ = ["CoinGeckoCsvImporter", "coin_id_from_filename"]

REQUIRED = ("snapped_at", "price", "market_cap", "total_volume")
METADATA_FILE = "coins.csv"


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
    """

    source: ClassVar[str] = "coingecko"

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
        # The export's own layout first (vectorised); anything else goes through the slow
        # per-row parser, so an unusual but valid timestamp still imports.
        snapped = pd.to_datetime(raw["snapped_at"], utc=True, errors="coerce", format="%Y-%m-%d %H:%M:%S UTC")
        odd = snapped.isna()
        if odd.any():
            rest = raw.loc[odd, "snapped_at"]
            snapped[odd] = pd.to_datetime(rest, utc=True, errors="coerce", format="mixed")
        fail_rows(f, snapped.isna(), "unparseable snapped_at", raw)
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
        return ImportBatch(market=market, coins=coins, files=(f,), notes=tuple(notes))
