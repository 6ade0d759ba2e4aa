"""Time each stage of the default study on the real data and print a table.

Usage::

    python benchmarks/stages.py [--data-dir ../shared/data]

Speed is measured here, never in tests. Each row is one stage, timed once on this
machine (the GRU row is one default-size model, the unit the walk-forward repeats).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from kallos.backtest import run_backtest
from kallos.config import StudyConfig
from kallos.data import Store, build_panel, ingest_data_dir, month_starts, monthly_universe
from kallos.features import compute_indicators
from kallos.forecast import CoinHistory, ExpandingWalkForward, make_forecaster
from kallos.portfolio import MeanVariance, cov_matrix


def timed(label: str, rows: list, fn, note: str = ""):
    t0 = time.perf_counter()
    out = fn()
    rows.append((label, time.perf_counter() - t0, note))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=os.environ.get("KALLOS_DATA_DIR", "../shared/data"))
    args = parser.parse_args()
    cfg = StudyConfig()
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'k.db'}")
        report = timed("import 3 datasets into SQLite", rows, lambda: ingest_data_dir(store, args.data_dir))
        rows[-1] = (*rows[-1][:2], f"{sum(report.rows.values()):,} rows")
        market, coins = store.read_market_data(), store.read_coins()
        panel = timed("clean + build panel", rows, lambda: build_panel(market, coins, cfg.quality))
        months = month_starts(cfg.backtest.start, cfg.backtest.end)
        universe = timed(
            "monthly universe (36 months)",
            rows,
            lambda: monthly_universe(panel, months, cfg.universe.top_n, cfg.universe.min_history_days),
        )
        members = sorted(universe["coin_id"].unique())
        feats = timed(
            f"45 indicators x {len(members)} coins",
            rows,
            lambda: {c: compute_indicators(panel.bars(c)) for c in members},
        )
        fold = ExpandingWalkForward(cfg.forecast.train_start, 7, 91).fold(pd.Timestamp("2023-06-30"))
        hist = CoinHistory("btc", panel.close["btc"], feats["btc"]).upto(fold.cutoff)
        model = make_forecaster("gru", cfg.forecast, seed=1)
        timed("one default GRU fit (btc, cutoff 2023-06-30)", rows, lambda: model.fit(hist, fold))
        rows[-1] = (
            *rows[-1][:2],
            f"{model.training_['epochs']} epochs, {model.training_['n_train']} samples",
        )
        dates = pd.date_range("2023-06-30", "2023-09-29", freq="D")
        timed(
            "GRU forecasts for 92 days",
            rows,
            lambda: model.predict(CoinHistory("btc", panel.close["btc"], feats["btc"]), dates),
        )
        window = panel.returns.loc["2022-06-30":"2023-06-30", members[:5]]
        cov = cov_matrix(window)
        mu = pd.Series([0.3, -0.1, 0.2, 0.05, 0.1], index=members[:5])
        opt = MeanVariance("max_sharpe")
        n = 50
        timed(f"{n} max_sharpe solves (5 assets)", rows, lambda: [opt.fit(mu, cov) for _ in range(n)])
        w = pd.DataFrame(
            0.2, index=pd.date_range("2021-12-31", "2024-12-29", freq="W-SUN"), columns=members[:5]
        )
        timed(
            "backtest 3 years weekly, 5 assets",
            rows,
            lambda: run_backtest(w, panel.returns, pd.Timestamp("2024-12-31")),
        )
    width = max(len(r[0]) for r in rows)
    print(f"{'stage':<{width}}  {'seconds':>8}  note")
    for label, seconds, note in rows:
        print(f"{label:<{width}}  {seconds:8.3f}  {note}")


if __name__ == "__main__":
    main()
