"""Importers for provider export formats, by name (a registry, not an if/elif chain)."""

from __future__ import annotations

from kallos.data.sources.base import ImportBatch, Importer
from kallos.data.sources.binance import BinanceKlinesImporter
from kallos.data.sources.cmc import CmcSnapshotsImporter
from kallos.data.sources.coingecko import CoinGeckoCsvImporter

__all__ = ["DATASET_LAYOUT", "IMPORTERS", "ImportBatch", "Importer"]

IMPORTERS: dict[str, type] = {
    "coingecko": CoinGeckoCsvImporter,
    "binance": BinanceKlinesImporter,
    "cmc": CmcSnapshotsImporter,
}

# Where each importer looks inside a data directory laid out like ../shared/data.
DATASET_LAYOUT: dict[str, str] = {
    "coingecko": "coingecko_daily_top50/original",
    "binance": "binance_spot_daily/original",
    "cmc": "cmc_monthly_top200",
}
