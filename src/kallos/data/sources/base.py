"""The importer interface and the batch it produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

import pandas as pd

MARKET_COLUMNS = ["coin_id", "date", "source", "open", "high", "low", "close", "volume", "market_cap"]
COIN_COLUMNS = ["coin_id", "symbol", "name", "category", "source"]


@dataclass(frozen=True)
class ImportBatch:
    """Normalised rows from one source, ready to upsert.

    Attributes
    ----------
    market : rows for ``daily_market_data`` (:data:`MARKET_COLUMNS`); ``date`` is the UTC
        day whose close the row describes.
    coins : rows for ``coins`` (:data:`COIN_COLUMNS`).
    snapshots : rows for ``market_cap_snapshots`` (CoinMarketCap only).
    files : the files read.
    notes : what the importer changed or dropped, one line each (nothing silently).
    origins : (source, coin_id) -> the file its market rows came from (for messages).
    """

    market: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=MARKET_COLUMNS))
    coins: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COIN_COLUMNS))
    snapshots: pd.DataFrame | None = None
    files: tuple[Path, ...] = ()
    notes: tuple[str, ...] = ()
    origins: dict[tuple[str, str], Path] = field(default_factory=dict)


class Importer(Protocol):
    """Reads one provider's export format from a file or a directory of files."""

    source: ClassVar[str]

    def read(self, path: Path) -> ImportBatch: ...


def concat_batches(batches: list[ImportBatch]) -> ImportBatch:
    def cat(frames: list[pd.DataFrame | None], cols: list[str] | None) -> pd.DataFrame | None:
        frames = [f for f in frames if f is not None and len(f)]
        if not frames:
            return pd.DataFrame(columns=cols) if cols is not None else None
        return pd.concat(frames, ignore_index=True)

    return ImportBatch(
        market=cat([b.market for b in batches], MARKET_COLUMNS),
        coins=cat([b.coins for b in batches], COIN_COLUMNS),
        snapshots=cat([b.snapshots for b in batches], None),
        files=tuple(f for b in batches for f in b.files),
        notes=tuple(n for b in batches for n in b.notes),
        origins={k: v for b in batches for k, v in b.origins.items()},
    )
