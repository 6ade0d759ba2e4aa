"""Load the cleaned daily panel a study runs on, from a store or straight from a data folder."""

from __future__ import annotations

from pathlib import Path

from kallos.config import QualityConfig, StudyConfig
from kallos.data import schema
from kallos.data.ingest import ingest_data_dir, resolve_data_dir
from kallos.data.panel import MarketPanel, build_panel
from kallos.data.store import Store

__all__ = ["load_panel"]


def load_panel(
    data_dir: str | Path | None = None,
    *,
    store: Store | None = None,
    quality: QualityConfig | StudyConfig | None = None,
) -> MarketPanel:
    """The cleaned daily panel (one row per coin per UTC day) that a study runs on.

    With ``store`` the panel is built from its tables; without one, the exports in ``data_dir``
    (default ``$KALLOS_DATA_DIR``) are imported into an in-memory SQLite store first, exactly as
    ``kallos run`` imports them, and nothing is written to disk.

    Parameters
    ----------
    data_dir : folder of CoinGecko/Binance/CMC exports (see the data README); ignored with ``store``.
    store : an open :class:`~kallos.data.store.Store` holding market data.
    quality : the data-quality rules (``StudyConfig.quality`` or a StudyConfig); default rules if None.

    Raises
    ------
    DataSourceError
        If ``data_dir`` is missing or its files are malformed (the message names the file and row).
    DataValidationError
        If the store holds no market data.
    """
    rules = quality.quality if isinstance(quality, StudyConfig) else (quality or QualityConfig())
    if store is None:
        store = Store("sqlite://")
        store.create_schema()
        ingest_data_dir(store, resolve_data_dir(data_dir))
    return build_panel(
        store.read_market_data(),
        store.read_coins(),
        rules,
        snapshots=store.read_table(schema.market_cap_snapshots),
    )
