"""Portfolio-stage benchmarks: ours vs the reference, side by side, in one run.

(a) the Kallos backtest engine vs vectorbt ``Portfolio.from_orders`` (target-percent orders,
    proportional fees, shared cash, ``min_size=0``) on N_DAYS × N_ASSETS with weekly target
    rebalancing and costs: max relative equity difference and speed ratio. vectorbt's numba
    compilation is excluded by a warm-up call on the same shapes. The difference with vectorbt's
    default ``min_size`` (1e-8 shares, which rejects tiny rebalancing orders that we trade) is
    printed too.
(b) re-solving max_sharpe with ``MeanVariance.fit`` (the direct CLARABEL path: problem pattern
    assembled once, a fresh solver on the new data) vs building a fresh PyPortfolioOpt
    ``EfficientFrontier`` per rebalance (n = 20), at its default solver tolerances and at ours
    (1e-10, so that the weights are determined to ~1e-8): max |Δw| and speed ratio against each.
(c) the cardinality-constrained (mixed-integer, SCIP) problem at n = 50 with a binding
    ``min_names`` and ``min_weight_held`` 0.02: seconds per solve. SCIP stops at the optimiser's
    ``mip_time_limit`` (10 s), so a 10 s figure means "limit reached, best portfolio used".

Usage: ``python benchmarks/portfolio.py [--quick] [--part a|b|c ...]`` (``--quick``: smaller sizes for
a smoke run; ``--part``: only the named parts, repeatable).
Timings are wall-clock best-of-``repeat`` passes on whatever machine runs it; report the machine.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from kallos.backtest import run_backtest
from kallos.portfolio.direct import TOLERANCES
from kallos.portfolio.optimizer import MeanVariance

warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=FutureWarning)


def _best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _random_cov(rng: np.random.Generator, n: int, days: int = 500) -> pd.DataFrame:
    names = [f"c{i:02d}" for i in range(n)]
    factors = rng.normal(size=(days, 3)) @ rng.normal(scale=0.02, size=(3, n))
    daily = factors + rng.normal(scale=0.03, size=(days, n))
    return pd.DataFrame(np.cov(daily, rowvar=False) * 365, index=names, columns=names)


def bench_backtest(n_days: int, n_assets: int, repeat: int) -> None:
    import vectorbt as vbt

    rng = np.random.default_rng(0)
    days = pd.date_range("1990-01-01", periods=n_days + 1, freq="D")
    cols = [f"a{i:03d}" for i in range(n_assets)]
    returns = pd.DataFrame(rng.normal(0.0003, 0.02, (n_days, n_assets)), index=days[1:], columns=cols)
    decisions = days[:-1][::7]
    w = rng.random((len(decisions), n_assets))
    w[rng.random(w.shape) < 0.5] = 0.0
    w[:, 0] += 0.01
    w /= w.sum(axis=1, keepdims=True)
    targets = pd.DataFrame(w, index=decisions, columns=cols)
    cost_bps, slippage_bps = 10.0, 5.0

    t_ours, res = _best_of(
        lambda: run_backtest(targets, returns, days[-1], cost_bps=cost_bps, slippage_bps=slippage_bps), repeat
    )
    prices = pd.concat([pd.DataFrame(1.0, index=days[:1], columns=cols), (1 + returns).cumprod()])
    size = pd.DataFrame(np.nan, index=days, columns=cols)
    size.loc[decisions] = targets.mul(1 - res.costs, axis=0).to_numpy()

    def theirs(min_size: float = 0.0):
        pf = vbt.Portfolio.from_orders(
            prices,
            size=size,
            size_type="targetpercent",
            fees=(cost_bps + slippage_bps) / 1e4,
            init_cash=1.0,
            cash_sharing=True,
            group_by=True,
            call_seq="auto",
            freq="1D",
            min_size=min_size,
        )
        return pf.value()

    t0 = time.perf_counter()
    theirs()  # warm-up: numba compilation (cached on disk after the first run ever)
    t_warm = time.perf_counter() - t0
    t_vbt, value = _best_of(theirs, repeat)
    ours = (1 + res.returns_net).cumprod() * (1 - res.costs.reindex(days[1:]).fillna(0.0))

    def rel_diff(v: pd.Series) -> float:
        return float(np.max(np.abs(v.loc[days[1:]].to_numpy() / ours.to_numpy() - 1)))

    rel, rel_default = rel_diff(value), rel_diff(theirs(min_size=1e-8))
    print(f"(a) backtest {n_days} days x {n_assets} assets, {len(decisions)} weekly rebalances, 15 bps")
    print(f"    kallos run_backtest      {t_ours * 1e3:9.1f} ms")
    print(
        f"    vectorbt from_orders     {t_vbt * 1e3:9.1f} ms   (warm-up incl. numba compile {t_warm:.1f} s)"
    )
    print(f"    speed ratio              {t_vbt / t_ours:9.2f} x   max relative equity difference {rel:.2e}")
    print(f"    (with vectorbt's default min_size=1e-8 shares, which rejects tiny orders: {rel_default:.2e})")


def bench_resolve(n_assets: int, n_rebalances: int, repeat: int) -> None:
    from pypfopt import EfficientFrontier

    rng = np.random.default_rng(1)
    cov = _random_cov(rng, n_assets)
    names = list(cov.index)
    problems = [
        (pd.Series(rng.normal(0.3, 0.3, n_assets), index=names), cov * rng.uniform(0.8, 1.2))
        for _ in range(n_rebalances)
    ]
    opt = MeanVariance("max_sharpe", max_weight=0.35, min_names=1, min_weight_held=0.0)
    opt.fit(*problems[0])  # build and compile once (counted separately)
    t_ours, ours = _best_of(lambda: [opt.fit(mu, c).weights_.to_numpy() for mu, c in problems], repeat)

    def fresh(mu, c, solver_options):
        ef = EfficientFrontier(
            mu, c, weight_bounds=(0, 0.35), solver="CLARABEL", solver_options=solver_options
        )
        ef.max_sharpe(risk_free_rate=0.0)
        return pd.Series(ef.weights, index=names).to_numpy()

    print(f"(b) max_sharpe n={n_assets}, {n_rebalances} rebalances")
    per_fit = t_ours / n_rebalances * 1e3
    print(f"    kallos MeanVariance.fit  {per_fit:9.2f} ms per rebalance ({opt.result_.solver})")
    for label, options in (("default tol", {}), ("tol 1e-10", dict(TOLERANCES))):
        t_ref, ref = _best_of(lambda o=options: [fresh(mu, c, o) for mu, c in problems], repeat)
        dw = max(float(np.abs(a - b).max()) for a, b in zip(ours, ref, strict=True))
        print(f"    PyPortfolioOpt fresh EF, {label:11s} {t_ref / n_rebalances * 1e3:6.2f} ms per rebalance")
        print(f"    speed ratio              {t_ref / t_ours:9.2f} x   max |dw| {dw:.2e}")


def bench_cardinality(n_assets: int, k: int, floor: float, n_solves: int) -> None:
    rng = np.random.default_rng(2)
    cov = _random_cov(rng, n_assets)
    names = list(cov.index)
    for objective in ("min_volatility", "max_sharpe"):
        opt = MeanVariance(objective, max_weight=0.35, min_names=k, min_weight_held=floor)
        times, solvers, held = [], set(), []
        for _ in range(n_solves):
            mu = pd.Series(rng.normal(0.3, 0.3, n_assets), index=names)
            t0 = time.perf_counter()
            opt.fit(mu, cov)
            times.append(time.perf_counter() - t0)
            solvers.add(opt.result_.solver)
            held.append(int((opt.weights_ > 0).sum()))
        print(
            f"(c) {objective:15s} n={n_assets} min_names={k} min_weight_held={floor:g}: "
            f"{np.median(times):.3f} s median, "
            f"{max(times):.3f} s max per solve (incl. first build) over {n_solves}; "
            f"solver {sorted(solvers)}, names held {min(held)}-{max(held)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--part", choices=["a", "b", "c"], action="append", help="run only these parts")
    args = parser.parse_args()
    parts = set(args.part or "abc")
    if args.quick:
        runs = {
            "a": lambda: bench_backtest(1_000, 20, repeat=2),
            "b": lambda: bench_resolve(20, 20, repeat=1),
            "c": lambda: bench_cardinality(20, 8, 0.02, 3),
        }
    else:
        runs = {
            "a": lambda: bench_backtest(10_000, 100, repeat=3),
            "b": lambda: bench_resolve(20, 200, repeat=3),
            "c": lambda: (
                bench_cardinality(50, 3, 1e-4, 5),
                bench_cardinality(50, 3, 0.02, 5),
                bench_cardinality(50, 10, 0.02, 5),
            ),
        }
    for part, run in runs.items():
        if part in parts:
            run()


if __name__ == "__main__":
    main()
