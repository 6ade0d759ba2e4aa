"""Load provider exports into the store: one transaction per call, idempotent upserts.

Live APIs (CoinGecko, Binance) are ingested incrementally by :mod:`kallos.data.live`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kallos.data import schema
from kallos.data.sources import DATASET_LAYOUT, IMPORTERS, ImportBatch
from kallos.data.sources.base import concat_batches
from kallos.data.store import Store
from kallos.exceptions import ImportFormatError, StoreError

__all__ = ["DATA_DIR_ENV", "IngestReport", "ingest", "ingest_data_dir", "merge_coins", "resolve_data_dir"]

DATA_DIR_ENV = "KALLOS_DATA_DIR"


@dataclass(frozen=True)
class IngestReport:
    """What one ingest wrote: rows per table, files read and notes."""

    rows: dict[str, int]
    files: tuple[Path, ...]
    notes: tuple[str, ...]


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """``data_dir`` if given, else ``$KALLOS_DATA_DIR``.

    Raises
    ------
    StoreError
        If neither is set or the directory does not exist, saying how to fix it.
    """
    value = data_dir or os.environ.get(DATA_DIR_ENV)
    if not value:
        raise StoreError(
            f"the store is empty and no data directory is set: export {DATA_DIR_ENV}=../shared/data "
            "(or pass --data-dir), or run `kallos ingest` first"
        )
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


def _write(store: Store, batch: ImportBatch) -> IngestReport:
    # ingested_at: the column's server default stamps a row when it is first inserted; a re-import
    # of the same file leaves it (and every other value) unchanged
    frames = {schema.daily_market_data: batch.market}
    if batch.snapshots is not None and len(batch.snapshots):
        frames[schema.market_cap_snapshots] = batch.snapshots
    frames[schema.coins] = merge_coins(store, batch.coins)
    rows = store.upsert_many(frames)
    return IngestReport(rows=rows, files=batch.files, notes=batch.notes)


def ingest(store: Store, source: str, path: str | Path, **importer_kwargs) -> IngestReport:
    """Import one source's files into ``store`` atomically.

    Parameters
    ----------
    source : a key of :data:`kallos.data.sources.IMPORTERS` (coingecko, binance, cmc).
    path : a file or a directory of the source's export files.

    Raises
    ------
    ImportFormatError
        For a malformed file (naming file and row); nothing is written then.
    """
    if source not in IMPORTERS:
        raise ImportFormatError(f"unknown source {source!r}; choose from {sorted(IMPORTERS)}")
    store.create_schema()
    batch = IMPORTERS[source](**importer_kwargs).read(Path(path))
    return _write(store, batch)


def ingest_data_dir(
    store: Store, data_dir: str | Path, sources: tuple[str, ...] | None = None
) -> IngestReport:
    """Import every source found in a directory laid out like ``../shared/data``.

    All files are read and validated first, then written in a single transaction, so a
    bad file leaves the store untouched.
    """
    data_dir = Path(data_dir)
    sources = sources or tuple(DATASET_LAYOUT)
    batches = []
    for source in sources:
        sub = data_dir / DATASET_LAYOUT[source]
        if sub.exists():
            batches.append(IMPORTERS[source]().read(sub))
    if not batches:
        raise StoreError(f"{data_dir} holds none of {[str(data_dir / DATASET_LAYOUT[s]) for s in sources]}")
    store.create_schema()
    return _write(store, concat_batches(batches))
