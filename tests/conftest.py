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


# ------------------------------------------------------------------ database backends (H2)
PG_URL = os.environ.get("KALLOS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The test PostgreSQL server (``$KALLOS_TEST_PG_URL`` or the local one)."""
    return PG_URL


@pytest.fixture
def pg_schema():
    """A unique, not yet existing PostgreSQL schema name; dropped (CASCADE) afterwards."""
    from uuid import uuid4

    from sqlalchemy import create_engine, text

    name = f"t_{uuid4().hex[:8]}"
    yield name
    engine = create_engine("postgresql+psycopg://" + PG_URL.split("://", 1)[1])
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend_url(request, tmp_path):
    """``(url, schema_name)`` of a fresh, empty database: a SQLite file or a unique PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'k.db'}", None
    return PG_URL, request.getfixturevalue("pg_schema")


@pytest.fixture
def any_store(backend_url):
    """A :class:`Store` at schema head on each backend (the test runs once per backend)."""
    store = Store(*backend_url)
    yield store
    store.dispose()


# ------------------------------------------------------------------ Dask execution engines
@pytest.fixture(scope="session")
def dask_engine():
    """A LocalCluster engine with two single-threaded worker processes, shared by the session."""
    from kallos.compute import open_engine

    with open_engine("local", n_workers=2) as engine:
        yield engine


@pytest.fixture(scope="session")
def tcp_cluster():
    """``dask scheduler`` + two ``dask worker`` processes on 127.0.0.1, started and stopped by the session."""
    from kallos.compute.processes import process_cluster

    with process_cluster(n_workers=2) as cluster:
        yield cluster


# ------------------------------------------------------------------ results.json of a study
@pytest.fixture(scope="session")
def results_document(real_store):
    """``doc(result)``: the validated results.json document of a StudyResult, JSON round-tripped
    (non-finite numbers refused), with a fixed run identity and the real store's coverage."""
    import json

    from kallos.pipeline.results import build_results
    from kallos.report.schema import validate_results

    run = {
        "run_id": "r",
        "kallos_version": "0",
        "created_at": "2024-01-01T00:00:00+00:00",
        "config_hash": "h",
    }

    def doc(result, database: str = "sqlite://") -> dict:
        built = build_results(result, run, real_store.coverage(), database)
        out = json.loads(json.dumps(built, allow_nan=False))
        validate_results(out)
        return out

    return doc
