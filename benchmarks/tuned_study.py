"""The tuned walk-forward on each execution engine, side by side, and the full tuned study projected.

One run, on the real data (``$KALLOS_DATA_DIR``):

1. **A tuned slice** (default 2 coins x 4 folds x 10 trials of the GRU, 2024 cutoffs) through
   :func:`kallos.forecast.tuned.tune_jobs` then the final fits, timed on four engines: in-process
   (``--scheduler none``), a ``LocalCluster`` with 1 worker, one with 2 workers, and a ``tcp://``
   scheduler with 2 ``dask worker`` processes (:func:`kallos.compute.processes.process_cluster`).
   Each engine gets a fresh Optuna storage; their chosen trials must agree (checked, printed).
2. **Scaling efficiency** ``wall(1 worker) / (2 x wall(2 workers))`` for the local cluster and the
   tcp one (target >= 0.8).
3. **Projection of the full default tuned study**: 50 trials x every (model, coin, fold) job of the
   default study (counted from its walk-forward on the real data), from the per-trial cost of the
   *default* search space measured here in-process (``--full-trials`` trials), for this machine's
   workers and for 8 such machines at the measured efficiency.

The slice uses a small space (``--small``, default on: hidden 8-32, 1-2 layers, 5 epochs) so that it
runs in minutes; the projection uses the measured default-space trial cost, not the slice's.

Run: ``python benchmarks/tuned_study.py [--coins 2 --folds 4 --trials 10 --full-trials 3]``.
Figures are timings of this machine; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd

from kallos.compute import open_engine
from kallos.compute.processes import process_cluster
from kallos.config import StudyConfig, load_config
from kallos.data import Store, build_panel, ingest_data_dir, resolve_data_dir
from kallos.forecast import (
    ExpandingWalkForward,
    ForecastJob,
    coin_history,
    make_forecaster,
    run_jobs,
    stable_seed,
)
from kallos.forecast.tuned import TuningStorage, tune_jobs
from kallos.forecast.tuning import tune
from kallos.pipeline.study import decide_jobs

SMALL = {"hidden_size": [8, 32], "num_layers": [1, 2], "lookback": [10, 30], "batch_size": [64, 128]}


def _config(trials: int, small: bool) -> StudyConfig:
    overrides = {"forecast.tuning.enabled": True, "forecast.tuning.n_trials": trials}
    if small:
        overrides |= {"forecast.tuning.space": SMALL, "forecast.training.max_epochs": 5}
    return load_config(None, overrides)


def _slice_jobs(panel, config: StudyConfig, coins: list[str], folds: int) -> list[ForecastJob]:
    splitter = ExpandingWalkForward.from_config(config.forecast)
    cutoffs = pd.date_range("2023-03-31", periods=folds, freq="QE")
    jobs = []
    for cutoff in cutoffs:
        fold = splitter.fold(cutoff)
        dates = pd.date_range(fold.test_start, periods=28, freq="D")
        for coin in coins:
            history = coin_history(panel, coin, dates[-1])
            seed = stable_seed(config.seed, "gru", coin, fold.key)
            jobs.append(ForecastJob(make_forecaster("gru", config.forecast, seed=seed), fold, history, dates))
    return jobs


def _tuned_slice(jobs, config, engine, directory: Path) -> tuple[float, list]:
    storage = TuningStorage(f"sqlite:///{directory / 'optuna.db'}")
    t0 = time.perf_counter()
    tuned, summaries = tune_jobs(jobs, config, storage, engine)
    run_jobs(tuned, engine)
    return time.perf_counter() - t0, [s.training | s.network for s in summaries]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--coins", type=int, default=2)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument(
        "--full-trials", type=int, default=3, help="default-space trials timed for the projection"
    )
    parser.add_argument(
        "--no-small", dest="small", action="store_false", help="time the slice in the default space"
    )
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    work = Path(tempfile.mkdtemp(prefix="kallos-tuned-bench-"))
    store = Store(f"sqlite:///{work / 'kallos.db'}")
    ingest_data_dir(store, resolve_data_dir(os.environ.get("KALLOS_DATA_DIR")))
    default = load_config()
    panel = build_panel(store.read_market_data(), store.read_coins(), default.quality)
    coins = ["btc", "eth", "sol", "bnb", "xrp"][: args.coins]
    config = _config(args.trials, args.small)
    jobs = _slice_jobs(panel, config, coins, args.folds)
    n_trials = len(jobs) * args.trials
    print(f"Tuned slice: {args.coins} coins x {args.folds} folds x {args.trials} trials = {n_trials} (GRU)")
    print(f"  space: {'small ' + str(SMALL) + ', max_epochs 5' if args.small else 'default'}")

    walls: dict[str, float] = {}
    chosen: dict[str, list] = {}
    for name, scheduler, workers in (
        ("in-process", "none", 1),
        ("local, 1 worker", "local", 1),
        ("local, 2 workers", "local", 2),
    ):
        with open_engine(scheduler, workers) as engine:
            d = Path(tempfile.mkdtemp(dir=work))
            walls[name], chosen[name] = _tuned_slice(jobs, config, engine, d)
    with process_cluster(n_workers=2) as cluster, open_engine(cluster.address) as engine:
        d = Path(tempfile.mkdtemp(dir=work))
        walls["tcp://, 2 workers"], chosen["tcp://, 2 workers"] = _tuned_slice(jobs, config, engine, d)
    with process_cluster(n_workers=1) as cluster, open_engine(cluster.address) as engine:
        d = Path(tempfile.mkdtemp(dir=work))
        walls["tcp://, 1 worker"], chosen["tcp://, 1 worker"] = _tuned_slice(jobs, config, engine, d)

    base = walls["in-process"]
    print(f"\n{'engine':<20} {'wall s':>8} {'s/trial':>8} {'vs in-process':>14}  same choices")
    for name, wall in walls.items():
        same = chosen[name] == chosen["in-process"]
        print(f"{name:<20} {wall:8.1f} {wall / n_trials:8.2f} {base / wall:13.2f}x  {same}")
    local_eff = walls["local, 1 worker"] / (2 * walls["local, 2 workers"])
    tcp_eff = walls["tcp://, 1 worker"] / (2 * walls["tcp://, 2 workers"])
    print(f"\nEfficiency wall(1) / (2 x wall(2)): local {local_eff:.2f}, tcp {tcp_eff:.2f} (target 0.80)")

    # Projection: the default study's tuned jobs x 50 trials at the default space's trial cost.
    study_jobs = decide_jobs(panel, default)
    tunable = [j for j in study_jobs if j.forecaster.name in ("gru", "lstm")]
    fold = ExpandingWalkForward.from_config(default.forecast).fold(pd.Timestamp("2023-12-31"))
    costs = {}
    for model in ("gru", "lstm"):
        t0 = time.perf_counter()
        tune(
            coin_history(panel, "btc", fold.cutoff),
            fold,
            default.forecast,
            f"sqlite:///{work / 'full.db'}",
            model=model,
            n_trials=args.full_trials,
            sampler_seed=0,
            name=f"full-{model}",
        )
        costs[model] = (time.perf_counter() - t0) / args.full_trials
    trials_full = {m: 50 * sum(j.forecaster.name == m for j in tunable) for m in costs}
    cpu_s = sum(trials_full[m] * costs[m] for m in costs)
    eff = tcp_eff
    workers = os.cpu_count() or 1
    print(
        f"\nDefault tuned study: {len(tunable)} (model, coin, fold) studies x 50 trials = "
        f"{sum(trials_full.values())} trials; default-space trial cost here "
        + ", ".join(f"{m} {c:.1f} s" for m, c in costs.items())
    )
    print(f"  one worker: {cpu_s / 3600:.1f} h")
    print(
        f"  this machine ({workers} workers at efficiency {eff:.2f}): {cpu_s / (workers * eff) / 3600:.1f} h"
    )
    print(
        f"  8 such machines ({8 * workers} workers at {eff:.2f}): {cpu_s / (8 * workers * eff) / 3600:.1f} h"
    )


if __name__ == "__main__":
    main()
