"""Synthetic but realistic inputs for the HTML report: a seeded study of 5 strategies, 2 objectives,
4 coins and ~120 days, with a ``results`` dict shaped like ``results.json``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kallos.report.html import ReportFrames

OBJECTIVES = ("max_sharpe", "max_quadratic_utility")
FORECAST_STRATEGIES = ("gru", "historical_mean", "naive_persistence")
BENCHMARKS = ("market_cap", "equal_weight")
COINS = ("bitcoin", "ethereum", "solana", "cardano")
MORE_COINS = ("ripple", "dogecoin", "polkadot", "tron", "litecoin", "chainlink", "avalanche-2", "stellar")
FORECASTERS = FORECAST_STRATEGIES
HORIZON = 7
N_DAYS = 120
START = "2023-01-01"

SIGNIFICANT_PAIR = ("gru/max_sharpe", "naive_persistence/max_sharpe")
NOT_SIGNIFICANT_PAIR = ("gru/max_sharpe", "historical_mean/max_sharpe")
NAN_VARIANT = "equal_weight"


def variant_keys() -> list[str]:
    return [f"{s}/{o}" for o in OBJECTIVES for s in FORECAST_STRATEGIES] + list(BENCHMARKS)


def _metrics(r: pd.Series, turnover: pd.Series) -> dict[str, Any]:
    wealth = (1 + r).cumprod()
    years = len(r) / 365
    cagr = wealth.iloc[-1] ** (1 / years) - 1
    vol = r.std(ddof=1) * math.sqrt(365)
    downside = r.clip(upper=0).pow(2).mean() ** 0.5 * math.sqrt(365)
    mdd = float((wealth / wealth.cummax() - 1).min())
    var = float(r.quantile(0.05))
    rebal = turnover[turnover > 0]
    return {
        "start": str(r.index[0].date()),
        "end": str(r.index[-1].date()),
        "n_days": len(r),
        "total_return": float(wealth.iloc[-1] - 1),
        "cagr": float(cagr),
        "annual_volatility": float(vol),
        "sharpe": float(r.mean() * 365 / vol),
        "sortino": float(r.mean() * 365 / downside),
        "calmar": float(cagr / abs(mdd)),
        "max_drawdown": mdd,
        "var": var,
        "cvar": float(r[r <= var].mean()),
        "skewness": float(r.skew()),
        "kurtosis": float(r.kurt()),
        "win_rate": float((r > 0).mean()),
        "turnover_annual": float(turnover.sum() / years),
        "turnover_per_rebalance": float(rebal.mean()) if len(rebal) else 0.0,
        "effective_n": 3.2,
    }


def _accuracy(frame: pd.DataFrame) -> dict[str, Any]:
    err = frame["realised"] - frame["forecast"]
    return {
        "n": len(frame),
        "rmse": float(np.sqrt((err**2).mean())),
        "mae": float(err.abs().mean()),
        "directional_accuracy": float((np.sign(frame["realised"]) == np.sign(frame["forecast"])).mean()),
        "start": str(frame["as_of"].min().date()),
        "end": str(frame["as_of"].max().date()),
    }


def _with_ratios(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    base = {tuple(r[k] for k in keys): r for r in rows if r["forecaster"] == "naive_persistence"}
    for r in rows:
        b = base[tuple(r[k] for k in keys)]
        r["rmse_ratio"] = r["rmse"] / b["rmse"]
        r["mae_ratio"] = r["mae"] / b["mae"]
        r["da_diff"] = r["directional_accuracy"] - b["directional_accuracy"]
    return rows


def build_study(
    seed: int = 7, n_days: int = N_DAYS, n_coins: int = len(COINS)
) -> tuple[dict[str, Any], ReportFrames]:
    """Return ``(results, frames)`` for a synthetic study (small by default; larger for size checks)."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(START, periods=n_days, freq="D")
    coins = (COINS + MORE_COINS)[:n_coins]
    keys = variant_keys()
    drift = {"gru": 0.0012, "historical_mean": 0.0008, "naive_persistence": 0.0002}
    common = rng.normal(0.002, 0.025, n_days)
    rebalance = np.zeros(n_days, dtype=bool)
    rebalance[::7] = True

    gross, net, turnover = {}, {}, {}
    for key in keys:
        strategy = key.split("/")[0]
        r = drift.get(strategy, 0.0006) + common + rng.normal(0.0, 0.01, n_days)
        to = np.where(rebalance, rng.uniform(0.05, 0.4, n_days), 0.0)
        gross[key] = r
        net[key] = r - to * 10 / 1e4  # 10 bps per unit one-way turnover, charged on the decision day
        turnover[key] = to
    returns_gross = pd.DataFrame(gross, index=dates)
    returns_net = pd.DataFrame(net, index=dates)
    turnover_df = pd.DataFrame(turnover, index=dates)
    for frame in (returns_gross, returns_net, turnover_df):
        frame.index.name = "date"

    weight_rows = []
    for date in dates[rebalance]:
        for strategy in (*FORECAST_STRATEGIES, *BENCHMARKS):
            objectives = OBJECTIVES if strategy in FORECAST_STRATEGIES else ("none",)
            for objective in objectives:
                w = rng.dirichlet(np.ones(len(coins)))
                weight_rows += [
                    {"strategy": strategy, "objective": objective, "date": date, "coin_id": c, "weight": x}
                    for c, x in zip(coins, w, strict=True)
                ]
    weights = pd.DataFrame(weight_rows)

    fc_rows = []
    realised = {c: rng.normal(0.002, 0.08, n_days) for c in coins}
    for coin in coins:
        real = realised[coin].copy()
        real[-HORIZON:] = np.nan  # horizon runs past the data
        signal = np.nan_to_num(real)
        preds = {
            "gru": 0.3 * signal + rng.normal(0, 0.03, n_days),
            "historical_mean": np.full(n_days, 0.002) + rng.normal(0, 0.001, n_days),
            "naive_persistence": np.roll(signal, HORIZON) + rng.normal(0, 0.01, n_days),
        }
        for forecaster in FORECASTERS:
            fc_rows += [
                {
                    "forecaster": forecaster,
                    "coin_id": coin,
                    "as_of": d,
                    "horizon": HORIZON,
                    "forecast": float(p),
                    "realised": float(y),
                    "fold_cutoff": pd.Timestamp("2022-12-31"),
                }
                for d, p, y in zip(dates, preds[forecaster], real, strict=True)
            ]
    forecasts = pd.DataFrame(fc_rows)

    strategies = {}
    for key in keys:
        strategy, _, objective = key.partition("/")
        strategies[key] = {
            "strategy": strategy,
            "objective": objective or None,
            "period": {"start": str(dates[0].date()), "end": str(dates[-1].date()), "n_days": n_days},
            "metrics_net": _metrics(returns_net[key], turnover_df[key]),
            "metrics_gross": _metrics(returns_gross[key], turnover_df[key]),
            "fallbacks": {
                "count": 1 if strategy == "gru" else 0,
                "rebalances": int(rebalance.sum()),
                "by_reason": {"infeasible": 1} if strategy == "gru" else {},
            },
        }
    strategies[NAN_VARIANT]["metrics_net"]["calmar"] = float("nan")
    strategies[NAN_VARIANT]["metrics_net"]["sortino"] = None
    del strategies[NAN_VARIANT]["metrics_net"]["effective_n"]  # optional key missing

    pairwise = []
    for objective in OBJECTIVES:
        pairs = [
            (f"gru/{objective}", f"historical_mean/{objective}"),
            (f"gru/{objective}", f"naive_persistence/{objective}"),
            (f"historical_mean/{objective}", f"naive_persistence/{objective}"),
        ]
        for a, b in pairs:
            significant = (a, b) == SIGNIFICANT_PAIR
            p = 2e-6 if significant else float(rng.uniform(0.2, 0.9))
            diff = returns_net[a] - returns_net[b]
            pairwise.append(
                {
                    "group": objective,
                    "a": a,
                    "b": b,
                    "test": "jobson_korkie_memmel",
                    "statistic": float(rng.normal(0, 2)),
                    "p_value": p,
                    "p_holm": min(1.0, p * 6),
                    "p_bh": min(1.0, p * 3),
                    "significant": significant,
                    "n": n_days,
                    "start": str(dates[0].date()),
                    "end": str(dates[-1].date()),
                    "cohens_d": float(diff.mean() / diff.std()),
                    "mean_diff_annual": float(diff.mean() * 365),
                }
            )

    scored = forecasts.dropna(subset=["realised"]).copy()
    scored["quarter"] = scored["as_of"].dt.to_period("Q").astype(str)
    by_cq = [
        {"forecaster": f, "coin_id": c, "quarter": q, **_accuracy(g)}
        for (f, c, q), g in scored.groupby(["forecaster", "coin_id", "quarter"])
    ]
    overall = [{"forecaster": f, "coin_id": "all", **_accuracy(g)} for f, g in scored.groupby("forecaster")]
    overall += [
        {"forecaster": f, "coin_id": c, **_accuracy(g)}
        for (f, c), g in scored.groupby(["forecaster", "coin_id"])
    ]

    universe = []
    for month, sel in (("2023-01", "2022-12-31"), ("2023-02", "2023-01-31"), ("2023-03", "2023-02-28")):
        w = np.sort(rng.dirichlet(np.ones(len(coins)) * 2))[::-1]
        universe.append(
            {
                "month": month,
                "selection_date": sel,
                "constituents": [
                    {
                        "coin_id": c,
                        "rank": i + 1,
                        "market_cap": float(1e11 / (i + 1)),
                        "benchmark_weight": float(x),
                    }
                    for i, (c, x) in enumerate(zip(coins, w, strict=True))
                ],
            }
        )

    results: dict[str, Any] = {
        "config": {
            "run_id": "fixture-run-0001",
            "kallos_version": "0.1.0",
            "created_at": "2024-05-01T12:00:00+00:00",
            "config_hash": "c0ffee" * 4,
            "data_hash": "da7a" * 6,
            "study": {
                "seed": seed,
                "universe": {
                    "top_n": 4,
                    "benchmark_max_weight": 0.35,
                    "min_history_days": 60,
                    "method": "market_cap",
                },
                "forecast": {
                    "horizon": HORIZON,
                    "train_start": "2020-01-01",
                    "validation_days": 60,
                    "recurrent": {
                        "cell": "gru",
                        "hidden_size": 32,
                        "num_layers": 1,
                        "dropout": 0.1,
                        "lookback": 30,
                        "direction_weight": 0.5,
                    },
                },
                "portfolio": {
                    "objectives": list(OBJECTIVES),
                    "max_weight": 0.4,
                    "min_names": 3,
                    "risk_aversion": 2.0,
                    "l2_gamma": 0.1,
                    "covariance": "ledoit_wolf",
                    "cov_lookback": 90,
                },
                "backtest": {
                    "start": str(dates[0].date()),
                    "end": str(dates[-1].date()),
                    "rebalance": "weekly",
                    "cost_bps": 10,
                },
                "quality": {"max_abs_return": 0.9, "max_gap_days": 3},
                "evaluation": {"alpha": 0.05, "var_level": 0.95},
            },
        },
        "data": {
            "database": "postgresql://127.0.0.1:5432/kallos",
            "sources": [
                {
                    "source": s,
                    "coin_id": c,
                    "first": "2020-01-01",
                    "last": str(dates[-1].date()),
                    "rows": 1200 + i,
                }
                for s in ("coingecko", "binance")
                for i, c in enumerate(coins)
            ],
            "panel": {"start": "2020-01-01", "end": str(dates[-1].date()), "n_coins": len(coins)},
            "quality": {
                "summary": {"extreme_return": 2, "stale_price": 1},
                "events": [
                    {
                        "rule": "extreme_return",
                        "coin_id": "solana",
                        "start": "2022-11-08",
                        "end": "2022-11-08",
                        "n_rows": 1,
                        "action": "flag",
                        "detail": "|r| = 0.94",
                    },
                    {
                        "rule": "extreme_return",
                        "coin_id": "cardano",
                        "start": "2021-02-27",
                        "end": "2021-02-27",
                        "n_rows": 1,
                        "action": "flag",
                        "detail": "|r| = 0.91",
                    },
                    {
                        "rule": "stale_price",
                        "coin_id": "bitcoin",
                        "start": "2020-03-12",
                        "end": "2020-03-15",
                        "n_rows": 4,
                        "action": "drop",
                        "detail": "<unchanged close>",
                    },
                ],
            },
            "universe": universe,
        },
        "strategies": strategies,
        "tests": {
            "alpha": 0.05,
            "correction": "holm",
            "period": {"start": str(dates[0].date()), "end": str(dates[-1].date()), "n_days": n_days},
            "pairwise": pairwise,
        },
        "forecasts": {
            "horizon": HORIZON,
            "period": {"start": str(dates[0].date()), "end": str(dates[-1 - HORIZON].date())},
            "baseline": "naive_persistence",
            "by_coin_quarter": _with_ratios(by_cq, ("coin_id", "quarter")),
            "overall": _with_ratios(overall, ("coin_id",)),
            "models": {"trained": 8, "folds": 2},
        },
    }
    results.update(contract_keys(results, returns_net, rng, coins))
    frames = ReportFrames(
        returns_net=returns_net,
        returns_gross=returns_gross,
        turnover=turnover_df,
        weights=weights,
        forecasts=forecasts,
    )
    return results, frames


def primary_document(returns_net: pd.DataFrame) -> dict[str, Any]:
    """``results["primary"]`` computed for real (gru learned, the other forecasters baselines), with
    the verdict of :data:`SIGNIFICANT_PAIR` set to "a better" so the report's winning branch is drawn."""
    from kallos.evaluation.primary import declare_primary_family, run_primary
    from kallos.pipeline.results import jsonable

    variants = {k: (k.split("/")[0], k.split("/")[1] if "/" in k else None) for k in returns_net.columns}
    family = declare_primary_family(variants, ["gru"], ["historical_mean", "naive_persistence"])
    doc = jsonable(run_primary(returns_net, family, block_size=3.0, reps=200, seed=0).to_results())
    for v in doc["verdicts"]:
        if (v["a"], v["b"]) == SIGNIFICANT_PAIR:
            v.update(verdict="a better", reason="Sharpe ratio higher, significant after StepM (familywise α)")
    return doc


CALIBRATION: dict[str, Any] = {
    "method": "stationary bootstrap of the study's daily net returns",
    "settings": {"size_reps": 100, "power_reps": 50, "inner_reps": 299, "alpha": 0.05, "gaps": [1.0, 2.0]},
    "block_size": 5.0,
    "n_days": N_DAYS,
    "planted": "gru/max_sharpe",
    "comparators": ["historical_mean/max_sharpe", "naive_persistence/max_sharpe", "market_cap"],
    "null_sharpe": 0.5,
    "size_band": [0.03, 0.07],
    "size": [
        {"null": "sharpe", "test": "StepM Sharpe (familywise)", "applies": True, "rejection_rate": 0.05,
         "n_reps": 100, "ci_low": 0.02, "ci_high": 0.11, "within_band": True},
        {"null": "mean", "test": "StepM mean (familywise)", "applies": True, "rejection_rate": 0.09,
         "n_reps": 100, "ci_low": 0.05, "ci_high": 0.16, "within_band": False},
    ],
    "power": [
        {"form": form, "gap": gap, "n_reps": 50, "verdict_all": 0.5 * gap, "verdict_min_pair": 0.45 * gap,
         "verdict_mean_pair": 0.5 * gap, "false_verdicts": 0.04, "spa": 0.6, "mcs_excludes": 0.3,
         "hardest_comparator": "market_cap", "sd_sharpe_diff": 0.4, "oracle_family": 0.55 * gap,
         "oracle_single": 0.6 * gap, "critical_value": 2.5, "predicted": 0.5 * gap}
        for form in ("mean_shift", "vol_reduction")
        for gap in (1.0, 2.0)
    ],
}  # fmt: skip


def contract_keys(
    results: dict[str, Any], returns_net: pd.DataFrame, rng: np.random.Generator, coins: tuple[str, ...]
) -> dict[str, Any]:
    """The issue-5 statistics keys (contract5.md) and the issue-3 ``universe`` key, made up but consistent."""
    keys = list(returns_net.columns)
    pairwise = results["tests"]["pairwise"]
    for row in pairwise:
        row["objective"] = row["group"]
        row["effect"] = row["cohens_d"]
        row["ci_low"], row["ci_high"] = row["cohens_d"] - 0.2, row["cohens_d"] + 0.2
        row["effect_name"] = "sharpe_diff"
    # one row significant under BH only: p_holm >= alpha > p_bh
    bh_only = next(r for r in pairwise if not r["significant"])
    bh_only.update(p_value=0.01, p_holm=0.06, p_bh=0.03)
    results["tests"]["family_size"] = len(pairwise)
    effects = []
    for row in pairwise:
        diff = returns_net[row["a"]] - returns_net[row["b"]]
        d = float(diff.mean() / diff.std())
        effects.append(
            {
                "objective": row["objective"],
                "a": row["a"],
                "b": row["b"],
                "cohens_d": d,
                "d_ci_low": d - 0.18,
                "d_ci_high": d + 0.18,
                "sharpe_diff": 0.4,
                "sharpe_diff_ci_low": -0.3,
                "sharpe_diff_ci_high": 1.1,
            }
        )
    sharpe = {}
    for key in keys:
        r = returns_net[key]
        sr = float(r.mean() / r.std() * math.sqrt(365))
        sharpe[key] = {
            "sharpe": sr,
            "psr": float(rng.uniform(0.5, 0.99)),
            "dsr": float(rng.uniform(0.1, 0.9)),
            "n_trials": 24,
            "min_track_record_days": float(rng.uniform(100, 900)),
            "skew": float(r.skew()),
            "kurtosis": float(r.kurt()),
        }
    sharpe[SIGNIFICANT_PAIR[0]]["dsr"] = 0.97
    regime_of = np.where(returns_net["market_cap"].rolling(20, min_periods=1).mean() > 0, "bull", "bear")
    metrics, regime_tests = [], []
    for regime in ("bull", "bear"):
        mask = regime_of == regime
        for key in keys:
            r = returns_net.loc[mask, key]
            metrics.append(
                {
                    "regime": regime,
                    "key": key,
                    "n_days": int(mask.sum()),
                    "cagr": float((1 + r).prod() - 1),
                    "sharpe": float(r.mean() / r.std() * math.sqrt(365)),
                    "volatility": float(r.std() * math.sqrt(365)),
                    "max_drawdown": float(((1 + r).cumprod() / (1 + r).cumprod().cummax() - 1).min()),
                }
            )
        for row in pairwise[:2]:
            regime_tests.append({**row, "regime": regime})
    quarters = []
    for key in keys:
        for q, r in returns_net[key].groupby(returns_net.index.to_period("Q")):
            quarters.append(
                {
                    "quarter": str(q),
                    "key": key,
                    "return": float((1 + r).prod() - 1),
                    "sharpe": float(r.mean() / r.std() * math.sqrt(365)),
                    "volatility": float(r.std() * math.sqrt(365)),
                }
            )
    constituents = []
    for m in results["data"]["universe"]:
        for c in m["constituents"]:
            absent = c["coin_id"] == coins[-1]
            constituents.append(
                {
                    "month": m["month"],
                    "selection_date": m["selection_date"],
                    "coin_id": c["coin_id"],
                    "rank": c["rank"],
                    "market_cap": c["market_cap"],
                    "mcap_source": "binance_supply" if absent else "coingecko",
                    "in_coingecko": not absent,
                    "benchmark_weight": c["benchmark_weight"],
                }
            )
    primary = primary_document(returns_net)
    return {
        "primary": primary,
        "calibration": CALIBRATION,
        "effects": effects,
        "verdicts": primary["verdicts"],
        "sharpe": sharpe,
        "trials": {
            "n_trials": 24,
            "variants": 6,
            "from_tuning": 16,
            "prior_configurations": 1,
            "prior_variants": 2,
            "source": "6 forecast-driven variants; 16 stored tuning trials; 2 variants of 1 other "
            "configuration",
        },
        "overfitting": {
            "pbo": 0.35,
            "n_variants": 6,
            "n_splits": 70,
            "logits": [float(x) for x in rng.normal(0.4, 1.0, 70)],
        },
        "regimes": {
            "definition": "bull if the 20-day mean market_cap return is above 0, else bear",
            "days": {"bull": int((regime_of == "bull").sum()), "bear": int((regime_of == "bear").sum())},
            "metrics": metrics,
            "tests": regime_tests,
        },
        "quarters": quarters,
        "universe": {
            "method": "market_cap",
            "top_n": len(coins),
            "mcap_sources": {
                c: ("binance close × circulating supply" if c == coins[-1] else "coingecko market_cap")
                for c in coins
            },
            "constituents": constituents,
            "reconciliation": {
                "threshold": 0.05,
                "flagged": [
                    {
                        "coin_id": coins[0],
                        "month": "2023-02",
                        "mean_abs_divergence": 0.061,
                        "max_abs_divergence": 0.12,
                        "n_days": 28,
                    }
                ],
            },
        },
    }


@pytest.fixture(scope="module")
def study() -> tuple[dict[str, Any], ReportFrames]:
    return build_study()


@pytest.fixture(scope="module")
def report_html(study: tuple[dict[str, Any], ReportFrames]) -> str:
    from kallos.report.html import render_report

    results, frames = study
    return render_report(results, frames)
