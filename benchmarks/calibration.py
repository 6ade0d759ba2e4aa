"""Size and power of the primary tests on a study's own returns: the full-size calibration.

Usage::

    kallos run                                   # once: the default study on the real data
    python benchmarks/calibration.py [--run out/<run-id>] [--size-reps 500] [--power-reps 200]
                                     [--inner-reps 1000] [--workers 2]

Reads the run's daily net returns (``returns.parquet``; default: the newest run under ``out/``)
and its configuration, declares the same primary family, and runs
:func:`kallos.evaluation.calibration.calibrate`: rejection rates under the equal-Sharpe and
equal-mean nulls (and SPA's least favourable null), and power against planted Sharpe gaps of
0.5, 1, 1.5, 2 and 3 as a mean shift and as a volatility reduction, beside the oracle that knows
the true standard deviation of the gap. The report's calibration section is a short version of
this run. Prints the tables and the wall time; replications run in ``--workers`` processes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import pandas as pd

from kallos.config import build_config
from kallos.evaluation.calibration import SIZE_BAND, CalibrationSettings, calibrate
from kallos.pipeline.study import primary_family


def newest_run(root: Path) -> Path:
    runs = sorted(p for p in root.glob("2*") if (p / "returns.parquet").is_file())
    if not runs:
        sys.exit(f"no run under {root}: run `kallos run --out {root}` first, or pass --run")
    return runs[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=None, help="run directory (default: newest under out/)")
    parser.add_argument("--size-reps", type=int, default=500)
    parser.add_argument("--power-reps", type=int, default=200)
    parser.add_argument("--inner-reps", type=int, default=1000)
    parser.add_argument("--gaps", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0, 3.0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--level",
        type=float,
        default=None,
        help="nominal level of the tests (default: the run's primary_level)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    args = parser.parse_args()

    run = args.run or newest_run(Path("out"))
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    config = build_config(results["config"]["study"], origin=str(run / "results.json"))
    long = pd.read_parquet(run / "returns.parquet")
    net = long.pivot(index="date", columns="key", values="return_net")
    net = net.loc[pd.Timestamp(config.backtest.start) : pd.Timestamp(config.backtest.end)]
    family = primary_family(config)
    settings = CalibrationSettings(
        size_reps=args.size_reps,
        power_reps=args.power_reps,
        gaps=tuple(args.gaps),
        inner_reps=args.inner_reps,
        alpha=args.level if args.level is not None else config.evaluation.primary_level,
        spa_alpha=config.evaluation.spa_level,
        target=config.evaluation.alpha,
        seed=args.seed,
    )
    total = 3 * args.size_reps + 2 * len(args.gaps) * args.power_reps
    print(
        f"run {run.name}: {net.shape[0]} days x {net.shape[1]} variants; family of "
        f"{len(family.comparisons)} comparisons ({2 * len(family.comparisons)} hypotheses); "
        f"{total} replications x {args.inner_reps} bootstrap resamples on {args.workers} workers"
    )
    done = [0]
    t0 = time.perf_counter()

    def tick() -> None:
        done[0] += 1
        if done[0] % 100 == 0:
            rate = done[0] / (time.perf_counter() - t0)
            print(f"  {done[0]}/{total} replications, {rate:.1f}/s", flush=True)

    with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn")) as pool:
        result = calibrate(net, family, settings, map_fn=partial(pool.map, chunksize=8), on_replication=tick)
    wall = time.perf_counter() - t0

    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    print(
        f"\nSize at nominal level {settings.alpha} (target {settings.target}; band "
        f"{SIZE_BAND[0]:.2f}-{SIZE_BAND[1]:.2f} where the test's H0 is the simulated null); "
        f"null Sharpe {result.null_sharpe:.2f}, block {result.block_size:.1f} days"
    )
    print(result.size.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"\nPower against a gap planted on {result.planted} (vs {', '.join(result.comparators)})")
    cols = [
        "form",
        "gap",
        "verdict_all",
        "verdict_min_pair",
        "false_verdicts",
        "spa",
        "oracle_family",
        "oracle_single",
        "predicted",
        "sd_sharpe_diff",
        "hardest_comparator",
    ]
    if len(result.power):
        print(result.power[cols].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    applies = result.size[result.size["applies"]]
    print(
        "\nsizes where H0 holds: "
        f"{applies['rejection_rate'].min():.3f}-{applies['rejection_rate'].max():.3f}; "
        f"all in band: {bool(applies['within_band'].all())}; wall {wall:.0f} s"
    )
    if args.json:
        args.json.write_text(json.dumps(result.to_results(), default=str, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
