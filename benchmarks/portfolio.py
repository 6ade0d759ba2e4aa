"""Portfolio-stage benchmarks: ours vs the reference, side by side, in one run.

(a) the Kallos backtest engine vs vectorbt ``Portfolio.from_orders`` (target-percent orders,
    proportional fees, shared cash, ``min_size=0``) on N_DAYS × N_ASSETS with weekly target
    rebalancing and costs: max relative equity difference and speed ratio. vectorbt's numba
    compilation is excluded by a warm-up call on the same shapes. The difference with vectorbt's
    default ``min_size`` (1e-8 shares, which rejects tiny rebalancing orders that we trade) is
    printed too.
(b) re-solving max_sharpe with ``MeanVariance.fit`` (the direct CLARABEL back-end: pattern
    compiled once, a fresh solver on the new data) vs the same Problem compiled by the cvxpy
    back-end and vs building a fresh PyPortfolioOpt ``EfficientFrontier`` per rebalance, at its
    default solver tolerances and at ours (1e-10, so that the weights are determined to ~1e-8),
    at the default study's universe size (``universe.top_n`` = 5) and at n = 20: time per
    rebalance, each as a multiple of the direct path's, and max |Δw|. Each problem is timed best of
    ``repeat`` with the runs interleaved, so a busy machine slows them alike. The direct path is
    kept while it is >= 10x faster than PyPortfolioOpt at the default size (issue 14).
(c) the cardinality-constrained (mixed-integer, SCIP) problem at n = 50 with a binding
    ``min_names`` and ``min_weight_held`` 0.02: seconds per solve. SCIP stops at the optimiser's
    ``mip_time_limit`` (10 s), so a 10 s figure means "limit reached, best portfolio used".

(d) ``min_cvar`` (n = 5, T = 365 fat-tailed daily scenarios) vs a fresh PyPortfolioOpt
    ``EfficientCVaR(..., beta=0.95).min_cvar()`` per rebalance: time and max |Δw|.

Usage: ``python benchmarks/portfolio.py [--quick] [--part a|b|c|d ...]`` (``--quick``: smaller sizes for
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
from kallos.config import UniverseConfig
from kallos.portfolio.backends import TOLERANCES, solve_cvxpy
from kallos.portfolio.constraints import PortfolioConstraints, formulate
from kallos.portfolio.optimizer import OBJECTIVES, MeanVariance, max_attainable_return
from kallos.portfolio.problem import ProblemData, sqrt_factor

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


def _feasible_problems(
    rng: np.random.Generator, n_assets: int, count: int
) -> list[tuple[pd.Series, pd.DataFrame]]:
    """``count`` (expected returns, covariance) pairs whose capped max_sharpe is feasible."""
    cov = _random_cov(rng, n_assets)
    names = list(cov.index)
    problems = []
    while len(problems) < count:
        mu = pd.Series(rng.normal(0.3, 0.3, n_assets), index=names)
        if max_attainable_return(mu, 0.35) > 0:  # else max_sharpe is infeasible for PyPortfolioOpt
            problems.append((mu, cov * rng.uniform(0.8, 1.2)))
    return problems


def _interleaved(runs: dict[str, object], problems: list, repeat: int) -> dict[str, float]:
    """Seconds per problem of each run, best of ``repeat`` per problem, the runs interleaved (so
    that a busy machine slows them alike)."""
    total = dict.fromkeys(runs, 0.0)
    for args in problems:
        for name, fn in runs.items():
            best = np.inf
            for _ in range(repeat):
                t0 = time.perf_counter()
                fn(*args)
                best = min(best, time.perf_counter() - t0)
            total[name] += best
    return {name: t / len(problems) for name, t in total.items()}


def bench_resolve(n_assets: int, n_rebalances: int, repeat: int) -> None:
    from pypfopt import EfficientFrontier

    problems = _feasible_problems(np.random.default_rng(1), n_assets, n_rebalances)
    names = list(problems[0][0].index)
    opt = MeanVariance("max_sharpe", max_weight=0.35, min_names=1, min_weight_held=0.0)
    opt.fit(*problems[0])  # compile the pattern once (counted separately)
    constraints = PortfolioConstraints(0.35, 1, 0.0)

    def ours(mu, c):
        return opt.fit(mu, c).weights_.to_numpy()

    def through_cvxpy(mu, c):  # the same Problem compiled by the other back-end
        data = ProblemData(
            mu.to_numpy(),
            sqrt_factor(c.to_numpy()),
            np.zeros(n_assets),
            np.full(n_assets, 0.35),
            np.zeros(n_assets),
            2.0,
        )
        return solve_cvxpy(formulate(OBJECTIVES["max_sharpe"], data, constraints), "CLARABEL")

    def fresh(mu, c, solver_options=None):
        ef = EfficientFrontier(
            mu, c, weight_bounds=(0, 0.35), solver="CLARABEL", solver_options=solver_options or {}
        )
        ef.max_sharpe(risk_free_rate=0.0)
        return pd.Series(ef.weights, index=names).to_numpy()

    runs = {
        "kallos MeanVariance.fit (CLARABEL direct)": ours,
        "kallos, same Problem via cvxpy": through_cvxpy,
        "PyPortfolioOpt fresh EF, default tol": fresh,
        "PyPortfolioOpt fresh EF, tol 1e-10": lambda mu, c: fresh(mu, c, dict(TOLERANCES)),
    }
    per = _interleaved(runs, problems, repeat)
    dw_default = max(float(np.abs(ours(mu, c) - fresh(mu, c)).max()) for mu, c in problems)
    dw_tight = max(float(np.abs(ours(mu, c) - fresh(mu, c, dict(TOLERANCES))).max()) for mu, c in problems)
    direct = per["kallos MeanVariance.fit (CLARABEL direct)"]
    print(f"(b) max_sharpe n={n_assets}, {n_rebalances} rebalances (best of {repeat} each, interleaved)")
    for name, t in per.items():
        print(f"    {name:44s} {t * 1e3:7.2f} ms per rebalance   {t / direct:6.2f} x direct")
    print(f"    max |dw| vs PyPortfolioOpt: default tol {dw_default:.2e}, tol 1e-10 {dw_tight:.2e}")


def bench_cvar(n_assets: int, n_days: int, n_rebalances: int, repeat: int) -> None:
    from pypfopt import EfficientCVaR

    rng = np.random.default_rng(4)
    names = [f"c{i:02d}" for i in range(n_assets)]
    problems = []
    for _ in range(n_rebalances):
        daily = rng.standard_t(3, size=(n_days, n_assets)) * 0.03 + rng.normal(0, 0.01, (n_days, 1))
        returns = pd.DataFrame(daily, columns=names)
        problems.append((pd.Series(0.1, index=names), returns.cov() * 365, returns))
    opt = MeanVariance("min_cvar", max_weight=0.35, min_names=1, min_weight_held=0.0)
    opt.fit(problems[0][0], problems[0][1], returns=problems[0][2])

    def ours(mu, c, r):
        return opt.fit(mu, c, returns=r).weights_.to_numpy()

    def fresh(mu, c, r):
        ef = EfficientCVaR(mu, r, beta=0.95, weight_bounds=(0, 0.35), solver="CLARABEL")
        ef.min_cvar()
        return pd.Series(ef.weights, index=names).to_numpy()

    per = _interleaved({"kallos min_cvar": ours, "PyPortfolioOpt EfficientCVaR": fresh}, problems, repeat)
    dw = max(float(np.abs(ours(*p) - fresh(*p)).max()) for p in problems)
    t_ours, t_ref = per.values()
    print(f"(d) min_cvar n={n_assets}, T={n_days} scenarios, {n_rebalances} rebalances")
    print(
        f"    kallos {t_ours * 1e3:.2f} ms, PyPortfolioOpt EfficientCVaR {t_ref * 1e3:.2f} ms per rebalance: "
        f"{t_ref / t_ours:.2f} x; max |dw| {dw:.2e}"
    )


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
    parser.add_argument("--part", choices=["a", "b", "c", "d"], action="append", help="run only these parts")
    args = parser.parse_args()
    parts = set(args.part or "abcd")
    default_n = UniverseConfig().top_n  # the default study's universe size
    if args.quick:
        runs = {
            "a": lambda: bench_backtest(1_000, 20, repeat=2),
            "b": lambda: bench_resolve(default_n, 20, repeat=1),
            "c": lambda: bench_cardinality(20, 8, 0.02, 3),
            "d": lambda: bench_cvar(default_n, 365, 3, repeat=1),
        }
    else:
        runs = {
            "a": lambda: bench_backtest(10_000, 100, repeat=3),
            "b": lambda: (bench_resolve(default_n, 100, repeat=5), bench_resolve(20, 100, repeat=5)),
            "d": lambda: bench_cvar(default_n, 365, 20, repeat=3),
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
