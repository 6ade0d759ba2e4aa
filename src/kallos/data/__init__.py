"""Data stage: sources, store, quality rules, the canonical panel and the universe."""

from kallos.data.ingest import DATA_DIR_ENV, IngestReport, ingest, ingest_data_dir, resolve_data_dir
from kallos.data.load import load_panel
from kallos.data.panel import FIELD_PRECEDENCE, MarketPanel, build_panel
from kallos.data.quality import QualityEvent
from kallos.data.store import DATABASE_URL_ENV, Store, default_database_url
from kallos.data.universe import capped_weights, month_starts, monthly_universe, universe_on

__all__ = [
    "DATABASE_URL_ENV",
    "DATA_DIR_ENV",
    "FIELD_PRECEDENCE",
    "IngestReport",
    "MarketPanel",
    "QualityEvent",
    "Store",
    "build_panel",
    "capped_weights",
    "default_database_url",
    "ingest",
    "ingest_data_dir",
    "load_panel",
    "month_starts",
    "monthly_universe",
    "resolve_data_dir",
    "universe_on",
]
