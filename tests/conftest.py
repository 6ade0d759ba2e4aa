"""Shared fixtures: the real data in ../shared/data, imported once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kallos.config import QualityConfig
from kallos.data import Store, build_panel, ingest_data_dir

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$KALLOS_DATA_DIR`` or ``../shared/data`` beside the repository."""
    path = Path(os.environ.get("KALLOS_DATA_DIR", REPO.parent / "shared" / "data"))
    if not (path / "coingecko_daily_top50").is_dir():
        pytest.fail(f"real data not found at {path}; set KALLOS_DATA_DIR to ../shared/data")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return shared_data_dir()


@pytest.fixture(scope="session")
def real_store(tmp_path_factory, data_dir) -> Store:
    """An embedded SQLite store holding the three real datasets."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('store') / 'kallos.db'}")
    ingest_data_dir(store, data_dir)
    return store


@pytest.fixture(scope="session")
def real_market(real_store):
    return real_store.read_market_data(), real_store.read_coins()


@pytest.fixture(scope="session")
def real_panel(real_market):
    market, coins = real_market
    return build_panel(market, coins, QualityConfig())
