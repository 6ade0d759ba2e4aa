"""Time the statistics battery and its vectorised parts against straightforward reference loops.

Usage::

    python benchmarks/statistics_battery.py [--days 1096] [--reps 1000] [--forecasters 3]

The default layout is the default study's: 3 forecasters x 2 objectives + 2 benchmarks
= 5 strategies under each of 2 objectives (8 variants, 19 pairs), over a 36-month test
period of daily returns with fat tails and a common factor. Speed is measured here, never in
tests. Each row prints ours next to the reference way of computing the same numbers, and the
largest absolute difference of their outputs where both produce numbers.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import pandas as pd
from arch.bootstrap import CircularBlockBootstrap
from statsmodels.stats.multitest import multipletests

from kallos.config import EvaluationConfig
from kallos.evaluation.battery import evaluate
from kallos.evaluation.bootstrap import Resampler
from kallos.evaluation.dominance import integrated_cdf
from kallos.evaluation.overfitting import probability_of_backtest_overfitting
from kallos.evaluation.sharpe import ledoit_wolf_2008
from kallos.evaluation.significance import adjust_pvalues


def synthetic_returns(days: int, forecasters: int, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    rng = np.random.default_rng(seed)
    market = 0.001 + 0.03 * rng.standard_t(4, days) / np.sqrt(2.0)
    data, variants = {}, {}
    for objective in ("max_sharpe", "max_quadratic_utility"):
        for f in range(forecasters):
            key = f"f{f}/{objective}"
            data[key] = 0.9 * market + 0.01 * rng.standard_t(4, days) / np.sqrt(2.0)
            variants[key] = (f"f{f}", objective)
    data["market_cap"], variants["market_cap"] = market, ("market_cap", None)
    data["equal_weight"] = 1.1 * market + 0.005 * rng.standard_normal(days)
    variants["equal_weight"] = ("equal_weight", None)
    index = pd.date_range("2022-01-01", periods=days, freq="D")
    return pd.DataFrame(data, index=index), variants


def timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def lw_reference(x: np.ndarray, y: np.ndarray, block: int, reps: int, seed: int) -> np.ndarray:
    """Bootstrap Sharpe differences by arch's own per-resample loop (``bs.apply``)."""

    def sharpe_diff(a: np.ndarray, b: np.ndarray) -> float:
        return a.mean() / a.std() - b.mean() / b.std()

    bs = CircularBlockBootstrap(block, x, y, seed=np.random.default_rng([seed, x.size]))
    return bs.apply(sharpe_diff, reps)[:, 0]


def pbo_reference(data: np.ndarray, splits: int) -> float:
    """CSCV with an explicit loop over the C(S, S/2) splits (Bailey et al. 2017, section 2)."""
    blocks = np.array_split(np.arange(data.shape[0]), splits)
    n = data.shape[1]
    below = 0
    combos = list(itertools.combinations(range(splits), splits // 2))
    for combo in combos:
        is_rows = np.concatenate([blocks[i] for i in combo])
        oos_rows = np.concatenate([blocks[i] for i in range(splits) if i not in combo])
        sr_is = data[is_rows].mean(0) / data[is_rows].std(0, ddof=1)
        sr_oos = data[oos_rows].mean(0) / data[oos_rows].std(0, ddof=1)
        winner = int(np.argmax(sr_is))
        rank = pd.Series(sr_oos).rank().iloc[winner]
        below += rank / (n + 1) <= 0.5
    return below / len(combos)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=1096)
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--forecasters", type=int, default=3)
    args = parser.parse_args()

    returns, variants = synthetic_returns(args.days, args.forecasters)
    cfg = EvaluationConfig(bootstrap_reps=args.reps)
    rows: list[tuple[str, float, float | None, str]] = []

    learned, baselines = ["f0"], [f"f{i}" for i in range(1, args.forecasters)]
    kw = {"learned": learned, "baselines": baselines}
    evaluate(returns.iloc[:200], variants, "market_cap", cfg, **kw)  # warm caches and imports
    cpu0 = time.process_time()
    secs, stats_ = timed(lambda: evaluate(returns, variants, "market_cap", cfg, 50, **kw))
    cpu = time.process_time() - cpu0
    n_pairs = stats_.effects.shape[0]
    rows.append(
        (
            f"full statistics: primary family ({len(stats_.primary.verdicts)} comparisons, StepM x2, "
            f"SPA, MCS) + battery of {len(variants)} variants, {n_pairs} pairs, {args.days} days, "
            f"{args.reps} reps, 3 regimes",
            secs,
            None,
            f"{len(stats_.tests)} test rows + {len(stats_.regime_tests)} regime rows; CPU {cpu:.2f} s; "
            "budget < 5 s",
        )
    )

    x, y = returns.iloc[:, 0].to_numpy(), returns.iloc[:, -2].to_numpy()
    block = stats_.block_length
    draws = Resampler(block, args.reps, 0).draws(x.size)
    ours, lw = timed(lambda: ledoit_wolf_2008(x, y, draws), repeat=3)
    ref, boot = timed(lambda: lw_reference(x, y, block, args.reps, 0))
    diff = float(np.max(np.abs(np.sort(lw.boot_sharpe_diff) - np.sort(boot))))
    rows.append(
        ("Ledoit-Wolf bootstrap, one pair (ours incl. studentising)", ours, ref, f"max |diff| {diff:.1e}")
    )

    grid = np.linspace(min(x.min(), y.min()), max(x.max(), y.max()), 200)
    ours, curves = timed(lambda: integrated_cdf(x, grid, 2, draws.indices), repeat=3)
    ref, naive = timed(
        lambda: np.stack([np.maximum(grid - x[i][:, None], 0.0).mean(axis=0) for i in draws.indices])
    )
    rows.append(
        ("SD2 bootstrap curves, one series", ours, ref, f"max |diff| {np.abs(curves - naive).max():.1e}")
    )

    forecast = returns[[k for k, (_, o) in variants.items() if o is not None]]
    ours, pbo = timed(lambda: probability_of_backtest_overfitting(forecast, 16), repeat=3)
    ref, pbo_ref = timed(lambda: pbo_reference(forecast.to_numpy(), 16))
    rows.append(("PBO, CSCV 16 splits (12,870)", ours, ref, f"PBO {pbo.pbo:.4f} vs {pbo_ref:.4f}"))

    p = stats_.tests["p_value"].dropna().to_numpy()
    ours, holm = timed(lambda: adjust_pvalues(p, "holm"), repeat=5)
    ref, holm_ref = timed(lambda: multipletests(p, method="holm")[1])
    rows.append(("Holm over the family", ours, ref, f"max |diff| {np.abs(holm - holm_ref).max():.1e}"))

    print(f"{'step':<78} {'ours [s]':>9} {'reference [s]':>14}  note")
    for label, ours_s, ref_s, note in rows:
        ref_text = "" if ref_s is None else f"{ref_s:14.3f}"
        print(f"{label:<78} {ours_s:9.3f} {ref_text:>14}  {note}")


if __name__ == "__main__":
    main()
