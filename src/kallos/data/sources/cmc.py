"""CoinMarketCap historical monthly snapshots (top-N ranking pages).

Format: a CSV with columns ``Rank, Name, Symbol, Market Cap, Price, Circulating Supply,
Volume (24h), snapshot_date`` (``snapshot_date`` as ``YYYYMMDD``); extra columns such as
``% 1h`` are ignored. Money is USD; a non-finite number or a snapshot dated after today
(UTC) is an error naming the row.

Date convention (where the data enters Kallos)
----------------------------------------------
A snapshot page ``/historical/YYYYMMDD/`` shows values at about the end of that UTC day,
i.e. the **close of day YYYYMMDD**, so it is stored with ``snapshot_date = YYYYMMDD``.
Symbols are not unique; key coins on (Name, Symbol).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import ClassVar

import pandas as pd

from kallos.data.sources._files import check_dates, fail_rows, list_csv_files, numeric, read_csv, utc_today
from kallos.data.sources.base import ImportBatch

__all__ = ["CmcSnapshotsImporter"]

COLUMNS = {
    "Rank": "rank",
    "Name": "name",
    "Symbol": "symbol",
    "Market Cap": "market_cap",
    "Price": "price",
    "Circulating Supply": "circulating_supply",
    "Volume (24h)": "volume_24h",
    "snapshot_date": "snapshot_date",
}


class CmcSnapshotsImporter:
    """Import CoinMarketCap snapshot CSVs from a file or a directory of them.

    Parameters
    ----------
    today : the newest snapshot date accepted (default: today, UTC; injectable for tests).
    """

    source: ClassVar[str] = "coinmarketcap"

    def __init__(self, today: dt.date | None = None) -> None:
        self.today = today

    def read(self, path: Path) -> ImportBatch:
        files = list_csv_files(Path(path), ("*snapshot*.csv", "*snapshot*.csv.gz"))
        frames = [self._read_file(f) for f in files]
        snaps = pd.concat(frames, ignore_index=True).drop_duplicates(["snapshot_date", "rank"], keep="last")
        return ImportBatch(snapshots=snaps, files=tuple(files))

    def _read_file(self, f: Path) -> pd.DataFrame:
        raw = read_csv(f, COLUMNS, dtype={"snapshot_date": str, "Symbol": str, "Name": str})
        date = pd.to_datetime(raw["snapshot_date"].str.strip(), format="%Y%m%d", errors="coerce")
        fail_rows(f, date.isna(), "snapshot_date is not YYYYMMDD", raw)
        today = self.today or utc_today()
        check_dates(f, date.dt.tz_localize("UTC"), raw, "snapshot_date", "YYYYMMDD", today)
        out = pd.DataFrame({"snapshot_date": date, "source": self.source})
        for src, dst in COLUMNS.items():
            if dst in ("snapshot_date",):
                continue
            if dst in ("name", "symbol"):
                out[dst] = raw[src].astype(str).str.strip()
                fail_rows(f, raw[src].isna(), f"missing {src}", raw)
            else:
                out[dst] = numeric(raw, src, f)
        fail_rows(f, out["rank"].isna() | (out["rank"] < 1), "missing or non-positive Rank", raw)
        fail_rows(f, out["market_cap"] < 0, "negative Market Cap", raw)
        fail_rows(f, out["price"] < 0, "negative Price", raw)
        dup = out.duplicated(["snapshot_date", "rank"])
        fail_rows(f, dup, "duplicated (snapshot_date, Rank)", raw)
        out["rank"] = out["rank"].astype(int)
        return out
