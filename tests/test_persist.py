"""A run is all or nothing: a failure while recording it leaves no directory and no rows."""

from __future__ import annotations

import pytest

from kallos.config import load_config
from kallos.data import Store, build_panel
from kallos.data import schema as s
from kallos.exceptions import StoreError
from kallos.pipeline.persist import persist_study
from kallos.pipeline.study import run_study


@pytest.fixture(scope="module")
def small_result(real_market):
    market, coins = real_market
    cfg = load_config(
        None,
        {
            "n_jobs": 1,
            "universe.top_n": 3,
            "backtest.start": "2023-04-01",
            "backtest.end": "2023-05-31",
            "forecast.forecasters": ["historical_mean", "naive_persistence"],
            "portfolio.objectives": ["min_volatility"],
        },
    )
    return run_study(build_panel(market, coins, cfg.quality), cfg)


def test_failed_database_write_leaves_nothing(tmp_path, small_result, monkeypatch):
    store = Store(f"sqlite:///{tmp_path / 'k.db'}")
    store.create_schema()

    def broken(*args, **kwargs):
        raise StoreError("disk full")

    monkeypatch.setattr(store, "write_run", broken)
    with pytest.raises(StoreError, match="disk full"):
        persist_study(small_result, store, tmp_path / "out", wall_seconds=1.0, tearsheets=False)
    assert list((tmp_path / "out").iterdir()) == []  # no run directory, no partial one
    assert store.count(s.runs) == 0 and store.count(s.portfolio_weights) == 0


def test_successful_run_is_recorded_once(tmp_path, small_result):
    store = Store(f"sqlite:///{tmp_path / 'k.db'}")
    store.create_schema()
    run_dir = persist_study(small_result, store, tmp_path / "out", wall_seconds=1.0, tearsheets=False)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [run_dir.name]
    assert store.run_ids() == [run_dir.name]
    # Two strategies (min_volatility) + two benchmarks, 61 days each.
    assert store.count(s.portfolio_daily_returns) == 4 * 61
    assert not (run_dir / "models").exists()  # no recurrent model in this study
