"""Load provider exports into the store: one transaction per call, idempotent upserts.

Every file is read and validated before anything is written; the write then runs under the
same per-source ingest lock as the live ingest (:func:`kallos.data.locks.ingest_lock`), so a
CSV import and a live ingest of one source never interleave.

Overwrites are checked. Re-importing an export changes nothing, and a provider's revisions
change a few rows, which are reported in the notes. A file that would change the stored close
of more than :data:`REPLACE_MAX_SHARE` of the days it shares with the store by more than
:data:`REPLACE_TOLERANCE` (typically another coin's export under this coin's file name) is
refused unless ``replace=True`` (``kallos ingest --replace``).

Live APIs (CoinGecko, Binance) are ingested incrementally by :mod:`kallos.data.live`.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import and_

from kallos.data import schema
from kallos.data.locks import ingest_lock
from kallos.data.sources import DATASET_LAYOUT, IMPORTERS, ImportBatch
from kallos.data.sources.base import concat_batches
from kallos.data.store import Store
from kallos.exceptions import DataValidationError, ImportFormatError, StoreError

__all__ = [
    "DATA_DIR_ENV",
    "REPLACE_MAX_SHARE",
    "REPLACE_TOLERANCE",
    "IngestReport",
    "ingest",
    "ingest_data_dir",
    "merge_coins",
    "overwritten_rows",
    "resolve_data_dir",
]

DATA_DIR_ENV = "KALLOS_DATA_DIR"
EMPTY_STORE_HELP = (
    "the store holds no market data and no data directory is set. Get data first: "
    "`kallos ingest --source binance --coins btc,eth,sol` fetches daily klines (no API key needed), "
    "`kallos ingest --source coingecko` uses CoinGecko's API; or pass --data-dir DIR (or set "
    f"${DATA_DIR_ENV}) to a directory of provider exports (CoinGecko CSV exports, Binance klines, "
    "CoinMarketCap snapshots) laid out as described in the README"
)
#: Relative change of a stored close that counts as a different price, not a revision.
REPLACE_TOLERANCE = 0.01
#: Largest share of a coin's overlapping days whose close may change that much without --replace.
REPLACE_MAX_SHARE = 0.05
VALUE_COLUMNS = ("open", "high", "low", "close", "volume", "market_cap")


@dataclass(frozen=True)
class IngestReport:
    """What one ingest wrote: rows per table, files read and notes.

    ``changed`` maps (source, coin_id) to the number of stored rows whose values the import
    changed (re-importing the same file changes none).
    """

    rows: dict[str, int]
    files: tuple[Path, ...]
    notes: tuple[str, ...]
    changed: dict[tuple[str, str], int] = field(default_factory=dict)


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """``data_dir`` if given, else ``$KALLOS_DATA_DIR``.

    Raises
    ------
    StoreError
        If neither is set or the directory does not exist, saying how to fix it.
    """
    value = data_dir or os.environ.get(DATA_DIR_ENV)
    if not value:
        raise StoreError(EMPTY_STORE_HELP)
    path = Path(value).expanduser()
    if not path.is_dir():
        raise StoreError(f"data directory {path} does not exist (from --data-dir or ${DATA_DIR_ENV})")
    return path


def merge_coins(store: Store, incoming: pd.DataFrame) -> pd.DataFrame:
    """Keep coins already described by another source; a source may refresh its own rows."""
    if incoming.empty:
        return incoming
    incoming = incoming.drop_duplicates("coin_id", keep="first")
    existing = store.read_coins().set_index("coin_id")["source"] if store.count(schema.coins) else None
    if existing is None:
        return incoming
    known = incoming["coin_id"].map(existing)
    keep = known.isna() | (known == incoming["source"])
    return incoming[keep]


def overwritten_rows(store: Store, market: pd.DataFrame) -> pd.DataFrame:
    """Stored rows of ``daily_market_data`` whose values ``market`` would change.

    Returns
    -------
    DataFrame with ``source, coin_id, date``, the stored and new ``close``, ``close_change``
    (relative, ``|new / stored - 1|``) and ``overlap`` (rows of that source and coin in both),
    one row per changed key. A value changes when it differs by more than 1e-9 relative or
    becomes known or unknown.
    """
    cols = ["source", "coin_id", "date", "stored_close", "close", "close_change", "overlap"]
    if market.empty:
        return pd.DataFrame(columns=cols)
    t = schema.daily_market_data
    pairs = market[["source", "coin_id"]].drop_duplicates()
    stored = []
    for source, group in pairs.groupby("source"):
        where = and_(t.c.source == source, t.c.coin_id.in_(sorted(group["coin_id"])))
        stored.append(store.read_table(t, where=where))
    old = pd.concat(stored, ignore_index=True) if stored else pd.DataFrame()
    if old.empty:
        return pd.DataFrame(columns=cols)
    new = market.assign(date=pd.to_datetime(market["date"])).drop_duplicates(
        ["source", "coin_id", "date"], keep="last"
    )
    both = new.merge(old, on=["source", "coin_id", "date"], suffixes=("", "_stored"))
    changed = np.zeros(len(both), dtype=bool)
    for c in VALUE_COLUMNS:
        a = pd.to_numeric(both[c], errors="coerce").to_numpy(dtype=float)
        b = pd.to_numeric(both[f"{c}_stored"], errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            differ = np.abs(a - b) > 1e-9 * np.maximum(np.abs(a), np.abs(b))
        changed |= differ | (np.isnan(a) != np.isnan(b))
    overlap = both.groupby(["source", "coin_id"])["date"].transform("size")
    out = both.assign(stored_close=both["close_stored"], overlap=overlap)[changed]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = out.assign(close_change=(out["close"] / out["stored_close"] - 1).abs())
    return out[cols].reset_index(drop=True)


def _check_overwrites(store: Store, batch: ImportBatch, replace: bool) -> tuple[dict, list[str]]:
    """Count the stored rows the batch changes; refuse a wholesale change unless ``replace``."""
    changes = overwritten_rows(store, batch.market)
    counts: dict[tuple[str, str], int] = {}
    notes: list[str] = []
    for (source, coin), g in changes.groupby(["source", "coin_id"], sort=True):
        counts[(source, coin)] = len(g)
        big = g[~(g["close_change"] <= REPLACE_TOLERANCE)]
        overlap = int(g["overlap"].iloc[0])
        origin = batch.origins.get((source, coin))
        where = f"{origin}: " if origin else ""
        first = g.iloc[0]
        example = f"e.g. {first['date']:%Y-%m-%d}: close {first['stored_close']:.6g} -> {first['close']:.6g}"
        wholesale = len(big) > max(1, REPLACE_MAX_SHARE * overlap)
        if wholesale and not replace:
            e = big.iloc[0]
            raise DataValidationError(
                f"{where}importing would change the stored {source} close of {coin} on {len(big)} of the "
                f"{overlap} days already stored by more than {REPLACE_TOLERANCE:.0%} (e.g. "
                f"{e['date']:%Y-%m-%d}: {e['stored_close']:.6g} -> {e['close']:.6g}); is the file another "
                "coin's export? Check the file name, or pass --replace to overwrite the stored rows. "
                "Nothing was written."
            )
        verb = "overwritten (--replace)" if wholesale else "changed"
        notes.append(f"{where}{coin} ({source}): {len(g)} of {overlap} stored row(s) {verb}, {example}")
    return counts, notes


def _write(
    store: Store, batch: ImportBatch, replace: bool = False, lock_timeout: float | None = None
) -> IngestReport:
    # ingested_at: the column's server default stamps a row when it is first inserted; a re-import
    # of the same file leaves it (and every other value) unchanged
    sources = set(batch.market["source"])
    if batch.snapshots is not None and len(batch.snapshots):
        sources |= set(batch.snapshots["source"])
    store.create_schema()
    with contextlib.ExitStack() as locks:
        for source in sorted(sources):  # one order everywhere: no two imports wait on each other
            locks.enter_context(ingest_lock(store, source, timeout=lock_timeout))
        changed, notes = _check_overwrites(store, batch, replace)
        frames = {schema.daily_market_data: batch.market}
        if batch.snapshots is not None and len(batch.snapshots):
            frames[schema.market_cap_snapshots] = batch.snapshots
        frames[schema.coins] = merge_coins(store, batch.coins)
        rows = store.upsert_many(frames)
    return IngestReport(rows=rows, files=batch.files, notes=(*batch.notes, *notes), changed=changed)


def ingest(
    store: Store,
    source: str,
    path: str | Path,
    *,
    replace: bool = False,
    lock_timeout: float | None = None,
    **importer_kwargs,
) -> IngestReport:
    """Import one source's files into ``store`` atomically, under the source's ingest lock.

    Parameters
    ----------
    source : a key of :data:`kallos.data.sources.IMPORTERS` (coingecko, binance, cmc).
    path : a file or a directory of the source's export files.
    replace : allow a file to change most of a coin's stored closes (see the module docstring).
    lock_timeout : seconds to wait for a concurrent ingest of the same source (None = forever).

    Raises
    ------
    ImportFormatError
        For a malformed file (naming file and row); nothing is written then (the schema is
        not even created in a new database).
    DataValidationError
        If the file would overwrite most of a coin's stored closes and ``replace`` is False.
    StoreError
        If the lock is not obtained within ``lock_timeout`` or the write fails.
    """
    if source not in IMPORTERS:
        raise ImportFormatError(f"unknown source {source!r}; choose from {sorted(IMPORTERS)}")
    batch = IMPORTERS[source](**importer_kwargs).read(Path(path))
    return _write(store, batch, replace, lock_timeout)


def ingest_data_dir(
    store: Store,
    data_dir: str | Path,
    sources: tuple[str, ...] | None = None,
    *,
    replace: bool = False,
    lock_timeout: float | None = None,
) -> IngestReport:
    """Import every source found in a directory laid out like ``../shared/data``.

    All files are read and validated first, then written in a single transaction under every
    source's ingest lock, so a bad file leaves the store untouched. ``replace`` and
    ``lock_timeout`` as in :func:`ingest`.

    Raises
    ------
    StoreError
        If the directory does not exist or holds none of the datasets.
    ImportFormatError, DataValidationError
        As :func:`ingest`.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise StoreError(f"data directory {data_dir} does not exist")
    sources = sources or tuple(DATASET_LAYOUT)
    batches = []
    for source in sources:
        sub = data_dir / DATASET_LAYOUT[source]
        if sub.exists():
            batches.append(IMPORTERS[source]().read(sub))
    if not batches:
        raise StoreError(f"{data_dir} holds none of {[str(data_dir / DATASET_LAYOUT[s]) for s in sources]}")
    return _write(store, concat_batches(batches), replace, lock_timeout)
