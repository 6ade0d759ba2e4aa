"""The declared primary family of strategy comparisons and its multiple-testing procedures.

The question Kallos answers is whether a *learned* forecaster's portfolio beats portfolios built
from simple estimates, after costs. The primary family is declared from the configuration alone,
before any return is seen (:func:`declare_primary_family`): under each objective, every learned
forecaster's variant is compared with every baseline forecaster's variant and with the market-cap
benchmark, on daily net returns. Everything else (the pairwise battery, regimes, quarters) is
exploratory.

The comparison statistic is the **Sharpe ratio** (risk-adjusted, so an edge that lowers risk
counts as much as one that raises return). Each variant's daily returns are mapped to a
*Sharpe performance series* whose mean is its daily Sharpe ratio and whose fluctuations are the
ratio's influence function (:func:`sharpe_performance`): the same delta-method linearisation that
gives Ledoit and Wolf's (2008) standard error. Differences of these series enter the
bootstrap procedures of :mod:`arch.bootstrap` exactly as loss differentials do:

* **StepM** (Romano and Wolf 2005) over both directions of every declared pair decides the
  verdicts, controlling the familywise error at ``alpha`` while accounting for the dependence
  between the comparisons. ``arch`` 8.0's ``StepM``/``SPA`` do not divide by the standard
  deviations themselves, so every differential is studentised here first by the long-run
  variance the stationary bootstrap implies (:func:`kallos.evaluation.longrun.stationary_bootstrap_variance`),
  which turns ``arch``'s statistic into Hansen's (2005) studentised one.
* **SPA** (Hansen 2005), per objective: does any learned variant beat the best comparator?
* **MCS** (Hansen, Lunde and Nason 2011) over all variants: the set not significantly worse
  than the best, at ``1 - alpha``.

The same StepM is also run on raw daily returns (mean differences) as a secondary primary
result, and the first-step critical value gives each pair's minimum detectable Sharpe gap.
Returns are daily simple; Sharpe ratios inside are daily with ``ddof=0``; everything labelled
``annual`` is multiplied by ``sqrt(365)`` (Sharpe) or 365 (means).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd
from arch.bootstrap import MCS, SPA, StepM
from scipy import stats

from kallos.evaluation.longrun import stationary_bootstrap_variance
from kallos.evaluation.significance import adjust_pvalues
from kallos.exceptions import DataValidationError
from kallos.types import PERIODS_PER_YEAR

__all__ = [
    "PRIMARY_VERDICTS",
    "SAME_TOLERANCE",
    "Comparison",
    "PrimaryFamily",
    "PrimaryResult",
    "StepMOutcome",
    "TestRun",
    "declare_primary_family",
    "fallback_holdings",
    "run_primary",
    "run_primary_tests",
    "sharpe_performance",
]

_NAN: Final[float] = float("nan")
_MIN_DAYS: Final[int] = 30
_TINY: Final[float] = 1e-14
SAME_TOLERANCE: Final[float] = 1e-5
"""Two variants whose Sharpe performance series (unit-scale z-scores) never differ by more than this
hold the same portfolio up to solver tolerance (e.g. the zero forecaster's minimum-variance
portfolio under two objectives): they are one model to the MCS and "no difference" as a pair."""

PRIMARY_VERDICTS: Final[tuple[str, ...]] = (
    "a better",
    "b better",
    "no detectable difference",
    "no difference",
    "undetermined",
)
"""Verdict labels: significant after StepM either way; not significant (with the minimum
detectable gap); identical daily returns; too few days or no variance."""


@dataclass(frozen=True)
class Comparison:
    """One declared comparison: learned variant ``a`` against comparator ``b`` under ``objective``.

    ``comparator`` is ``"baseline"`` (a simple forecaster's variant under the same objective) or
    ``"benchmark"`` (the market-cap benchmark).
    """

    objective: str
    a: str
    b: str
    comparator: str


@dataclass(frozen=True)
class PrimaryFamily:
    """The primary family, declared from the configuration before any test runs.

    Attributes
    ----------
    comparisons : the declared pairs, objective by objective.
    learned, baselines : forecaster names on each side.
    benchmark : variant key of the market-cap benchmark.
    objectives : objectives in configuration order.
    """

    comparisons: tuple[Comparison, ...]
    learned: tuple[str, ...]
    baselines: tuple[str, ...]
    benchmark: str
    objectives: tuple[str, ...]

    @property
    def variants(self) -> list[str]:
        """Every variant key the family involves, in declaration order."""
        return list(dict.fromkeys(k for c in self.comparisons for k in (c.a, c.b)))

    def learned_keys(self, objective: str) -> list[str]:
        return list(dict.fromkeys(c.a for c in self.comparisons if c.objective == objective))

    def comparator_keys(self, objective: str) -> list[str]:
        return list(dict.fromkeys(c.b for c in self.comparisons if c.objective == objective))

    def to_results(self) -> dict[str, Any]:
        """The declaration as written to ``results.json["primary"]["declared"]``."""
        return {
            "rule": (
                "under each objective, every learned forecaster's variant against every baseline "
                "forecaster's variant and the market-cap benchmark, on daily net returns; statistic: "
                "the Sharpe ratio (verdicts), with mean returns as a secondary result"
            ),
            "learned": list(self.learned),
            "baselines": list(self.baselines),
            "benchmark": self.benchmark,
            "objectives": list(self.objectives),
            "comparisons": [c.__dict__.copy() for c in self.comparisons],
            "n_comparisons": len(self.comparisons),
            "n_hypotheses": 2 * len(self.comparisons),
        }


def declare_primary_family(
    variants: Mapping[str, tuple[str, str | None]],
    learned: Sequence[str],
    baselines: Sequence[str],
    benchmark: str = "market_cap",
) -> PrimaryFamily:
    """Declare the primary family from the study's variants (no returns are read).

    Parameters
    ----------
    variants : variant key -> (strategy name, objective or None); None marks a benchmark.
    learned : forecaster names whose variants are the learned side (e.g. ``("gru", "lstm")``).
    baselines : forecaster names of the simple estimates (e.g. ``("zero", "historical_mean")``).
    benchmark : key of the market-cap benchmark; left out of the family when not a variant.

    Returns
    -------
    PrimaryFamily
        Empty when the study has no learned forecaster or nothing to compare it with.
    """
    objectives = list(dict.fromkeys(obj for _, obj in variants.values() if obj is not None))
    by = {(name, obj): key for key, (name, obj) in variants.items()}
    comparisons = []
    for objective in objectives:
        comparators = [(by[(b, objective)], "baseline") for b in baselines if (b, objective) in by]
        if benchmark in variants:
            comparators.append((benchmark, "benchmark"))
        for name in learned:
            key = by.get((name, objective))
            if key is None:
                continue
            comparisons.extend(Comparison(objective, key, b, kind) for b, kind in comparators)
    return PrimaryFamily(
        tuple(comparisons),
        tuple(n for n in learned if any(n == v[0] for v in variants.values())),
        tuple(n for n in baselines if any(n == v[0] for v in variants.values())),
        benchmark,
        tuple(objectives),
    )


def sharpe_performance(returns: np.ndarray) -> np.ndarray:
    """Daily Sharpe ratio plus its influence function, per day and column.

    .. math::

        p_{t} = \\widehat{SR} + z_t - \\tfrac{\\widehat{SR}}{2}(z_t^2 - 1), \\qquad
        z_t = (r_t - \\hat\\mu) / \\hat\\sigma

    so that ``mean(p) = SR = mu / sigma`` (daily, ``ddof=0``) exactly, and the long-run variance
    of ``p_a - p_b`` is the delta-method variance of ``SR_a - SR_b``.

    Parameters
    ----------
    returns : ndarray of shape (T, k)
        Daily simple returns, no NaN.

    Returns
    -------
    ndarray of shape (T, k); a column with no variance is constant at 0.

    References
    ----------
    .. [1] Lo, A. W. (2002). "The Statistics of Sharpe Ratios". Financial Analysts Journal, 58(4),
       36-52 (the asymptotic variance this linearisation reproduces).
    .. [2] Ledoit, O. and Wolf, M. (2008), section 2 (the delta method for SR_a - SR_b).
    """
    r = np.asarray(returns, dtype=float)
    mu = r.mean(axis=0)
    sd = r.std(axis=0)
    ok = sd > _TINY * np.maximum(np.abs(mu), 1e-300)
    safe = np.where(ok, sd, 1.0)
    sr = np.where(ok, mu / safe, 0.0)
    z = np.where(ok, (r - mu) / safe, 0.0)
    return sr + z - sr / 2.0 * (z**2 - 1.0) * ok


# ----------------------------------------------------------------------------- the tests


@dataclass(frozen=True)
class TestRun:
    """Raw outcome of the primary tests on one sample (what the calibration harness counts).

    Attributes
    ----------
    estimate, omega : (m,) daily difference (Sharpe or mean) and long-run standard deviation per
        comparison, for ``statistic``; ``omega`` 0 marks a pair left out (identical or degenerate).
    rejected : (m, 2) bool, StepM rejections of ``a > b`` (column 0) and ``b > a`` (column 1).
    critical : first-step critical values on the t scale (``lower``, ``consistent``, ``upper``).
    spa : objective -> (best comparator key, p-values lower/consistent/upper); Sharpe only.
    mcs_pvalues : variant key -> MCS p-value (Sharpe loss); empty unless requested.
    p_family : p-value of StepM's first step (SPA consistent p-value over every hypothesis):
        StepM rejects something at level ``a`` exactly when ``p_family <= a``, up to the
        bootstrap's discreteness. The calibration harness reads size at any level from it.
    """

    __test__ = False

    statistic: str
    estimate: np.ndarray
    omega: np.ndarray
    rejected: np.ndarray
    critical: dict[str, float]
    spa: dict[str, tuple[str, tuple[float, float, float]]] = field(default_factory=dict)
    mcs_pvalues: dict[str, float] = field(default_factory=dict)
    p_family: float = _NAN


def _differentials(series: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return series[:, pairs[:, 0]] - series[:, pairs[:, 1]]


def _stepm(
    diffs: np.ndarray, omega: np.ndarray, alpha: float, block: float, reps: int, seed: int
) -> tuple[np.ndarray, dict[str, float], float]:
    """StepM over both directions of every studentised differential.

    Returns (m, 2) rejections, the first-step critical values on the t scale and the first step's
    consistent p-value.
    """
    t, m = diffs.shape
    rejected = np.zeros((m, 2), dtype=bool)
    live = np.flatnonzero(omega > 0)
    if live.size == 0:
        return rejected, dict.fromkeys(("lower", "consistent", "upper"), _NAN), _NAN
    scaled = diffs[:, live] / omega[live]
    hyps = np.hstack([scaled, -scaled])
    names = [f"{i}:a" for i in live] + [f"{i}:b" for i in live]
    procedure = StepM(
        np.zeros(t),
        pd.DataFrame(-hyps, columns=names),
        size=alpha,
        block_size=block,
        reps=reps,
        bootstrap="stationary",
        seed=seed,
    )
    procedure.compute()
    for name in procedure.superior_models:
        i, side = str(name).split(":")
        rejected[int(i), 0 if side == "a" else 1] = True
    crit = procedure.spa.critical_values(alpha)
    procedure.spa.compute()  # StepM left the full family selected: its first step's p-value
    root = math.sqrt(t)
    critical = {k: float(crit[k]) * root for k in ("lower", "consistent", "upper")}
    return rejected, critical, float(procedure.spa.pvalues["consistent"])


def _omega(diffs: np.ndarray, block: float) -> np.ndarray:
    omega = np.sqrt(stationary_bootstrap_variance(diffs, block))
    scale = np.maximum(np.abs(diffs).max(axis=0), 1e-300)
    return np.where(omega > 1e-10 * scale, omega, 0.0)


def run_primary_tests(
    returns: np.ndarray,
    family: PrimaryFamily,
    columns: Sequence[str],
    *,
    alpha: float,
    block_size: float,
    reps: int,
    seed: int,
    statistic: str = "sharpe",
    spa: bool = True,
    mcs: bool = True,
    stepm: bool = True,
) -> TestRun:
    """The primary tests on one sample: StepM, and for Sharpe the SPA per objective and the MCS.

    Parameters
    ----------
    returns : ndarray of shape (T, k)
        Daily simple net returns; column ``j`` is variant ``columns[j]``. No NaN.
    family : the declared family (its keys must be among ``columns``).
    alpha : familywise level of StepM, size of SPA and MCS.
    block_size : expected block length of the stationary bootstrap, days.
    reps : bootstrap resamples of each procedure.
    seed : seed of every procedure's bootstrap.
    statistic : ``"sharpe"`` (Sharpe performance series) or ``"mean"`` (raw returns).
    spa, mcs, stepm : which procedures to run (a skipped StepM rejects nothing).

    Raises
    ------
    DataValidationError
        A family key is not among ``columns``.
    """
    position = {c: i for i, c in enumerate(columns)}
    missing = [k for k in family.variants if k not in position]
    if missing:
        raise DataValidationError(f"primary family: no returns for variant(s) {missing}")
    series = sharpe_performance(returns) if statistic == "sharpe" else np.asarray(returns, dtype=float)
    pairs = np.array([(position[c.a], position[c.b]) for c in family.comparisons], dtype=int).reshape(-1, 2)
    diffs = _differentials(series, pairs)
    omega = _omega(diffs, block_size) if len(pairs) else np.zeros(0)
    if stepm:
        rejected, critical, p_family = _stepm(diffs, omega, alpha, block_size, reps, seed)
    else:
        rejected, critical, p_family = np.zeros((len(pairs), 2), dtype=bool), {}, _NAN
    run = TestRun(statistic, diffs.mean(axis=0), omega, rejected, critical, p_family=p_family)
    if statistic != "sharpe":
        return run
    if spa:
        for objective in family.objectives:
            learned = [position[k] for k in family.learned_keys(objective)]
            comparators = [position[k] for k in family.comparator_keys(objective)]
            if not learned or not comparators:
                continue
            best = max(comparators, key=lambda j: series[:, j].mean())
            d = series[:, learned] - series[:, [best]]
            w = _omega(d, block_size)
            if not (w > 0).any():
                continue
            test = SPA(
                np.zeros(len(d)),
                -d[:, w > 0] / w[w > 0],
                block_size=block_size,
                reps=reps,
                bootstrap="stationary",
                seed=seed,
            )
            test.compute()
            p = test.pvalues
            run.spa[objective] = (
                columns[best],
                (float(p["lower"]), float(p["consistent"]), float(p["upper"])),
            )
    if mcs:
        run.mcs_pvalues.update(_mcs(series, list(columns), alpha, block_size, reps, seed))
    return run


def _mcs(
    series: np.ndarray, columns: list[str], alpha: float, block: float, reps: int, seed: int
) -> dict[str, float]:
    """MCS p-values of every column under the loss ``-series``; identical columns share one entry."""
    groups: list[list[int]] = []
    for j in range(series.shape[1]):
        for g in groups:
            if np.allclose(series[:, g[0]], series[:, j], rtol=0.0, atol=SAME_TOLERANCE):
                g.append(j)
                break
        else:
            groups.append([j])
    if len(groups) < 2:
        return dict.fromkeys(columns, 1.0)
    losses = pd.DataFrame(-series[:, [g[0] for g in groups]], columns=[str(i) for i in range(len(groups))])
    procedure = MCS(
        losses, size=alpha, reps=reps, block_size=block, method="R", bootstrap="stationary", seed=seed
    )
    procedure.compute()
    pvalues = procedure.pvalues["Pvalue"]
    out = {}
    for i, g in enumerate(groups):
        for j in g:
            out[columns[j]] = float(pvalues[str(i)])
    return out


# ----------------------------------------------------------------------------- fallbacks


def fallback_holdings(decisions: pd.DataFrame, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Per day and variant: did that day's holdings come from a decision that fell back?

    Parameters
    ----------
    decisions : rows ``key, date, fallback`` (one per rebalance; ``date`` is the decision close).
    index : the return days.

    Returns
    -------
    DataFrame of bool, shape (len(index), n_keys): day ``t`` earns on the weights decided at the
    latest decision close before ``t`` (the backtest's rule); True when that decision fell back.
    Days before a key's first decision are False.
    """
    out = {}
    for key, g in decisions.groupby("key", sort=False):
        flags = g.set_index(pd.DatetimeIndex(g["date"]) + pd.Timedelta(days=1))["fallback"].astype(bool)
        flags = flags[~flags.index.duplicated(keep="last")].sort_index()
        out[key] = flags.reindex(index, method="ffill").fillna(False).astype(bool)
    return pd.DataFrame(out, index=index)


def _fallback_robustness(
    returns: pd.DataFrame,
    family: PrimaryFamily,
    decisions: pd.DataFrame,
    block: float,
    ppy: int,
) -> pd.DataFrame:
    """Per comparison: share of rebalances where either side fell back, and the Sharpe test on clean days."""
    held = fallback_holdings(decisions, returns.index)
    flags = decisions.pivot_table(index="date", columns="key", values="fallback", aggfunc="max")
    rows = []
    for c in family.comparisons:
        either = flags.reindex(columns=[c.a, c.b]).fillna(False).astype(bool).any(axis=1)
        mask = ~held.reindex(columns=[c.a, c.b]).fillna(False).astype(bool).any(axis=1)
        clean = returns.loc[mask.to_numpy(), [c.a, c.b]].dropna()
        rec = {
            "objective": c.objective,
            "a": c.a,
            "b": c.b,
            "fallback_share": float(either.mean()) if len(either) else _NAN,
            "n_days_clean": len(clean),
            "sharpe_diff_clean": _NAN,
            "t_stat_clean": _NAN,
            "p_value_clean": _NAN,
        }
        if len(clean) >= _MIN_DAYS:
            perf = sharpe_performance(clean.to_numpy())
            d = perf[:, 0] - perf[:, 1]
            omega = float(_omega(d[:, None], block)[0])
            rec["sharpe_diff_clean"] = float(d.mean() * math.sqrt(ppy))
            if omega > 0:
                t = float(d.mean() / omega * math.sqrt(len(d)))
                rec["t_stat_clean"] = t
                rec["p_value_clean"] = float(2.0 * stats.norm.sf(abs(t)))
        rows.append(rec)
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["p_holm_clean"] = adjust_pvalues(frame["p_value_clean"].to_numpy(), "holm")
    return frame


# ----------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class StepMOutcome:
    """One StepM run over the family (both directions of every pair).

    Attributes
    ----------
    statistic : ``"sharpe"`` or ``"mean"``.
    hypotheses : one row per pair and direction: ``objective, a, b, direction`` (``"a > b"`` or
        ``"b > a"``), ``estimate_annual``, ``t_stat``, ``rejected``.
    critical_values : first-step critical values on the t scale (``lower``, ``consistent``,
        ``upper`` recentring; StepM decides with ``consistent``).
    """

    statistic: str
    hypotheses: pd.DataFrame
    critical_values: dict[str, float]

    def to_results(self) -> dict[str, Any]:
        return {
            "statistic": self.statistic,
            "procedure": "arch.bootstrap.StepM (Romano-Wolf 2005; SPA consistent critical values)",
            "critical_values_t": dict(self.critical_values),
            "n_rejected": int(self.hypotheses["rejected"].sum()) if len(self.hypotheses) else 0,
            "superior": [
                f"{r['a']} > {r['b']}" if r["direction"] == "a > b" else f"{r['b']} > {r['a']}"
                for r in self.hypotheses[self.hypotheses["rejected"]].to_dict(orient="records")
            ]
            if len(self.hypotheses)
            else [],
            "hypotheses": self.hypotheses.to_dict(orient="records"),
        }


@dataclass(frozen=True)
class PrimaryResult:
    """Everything :func:`run_primary` computed (see the module docstring).

    Attributes
    ----------
    family : the declared family.
    sharpe, mean : StepM over Sharpe ratios (decides verdicts) and over mean returns.
    verdicts : one row per comparison (:data:`VERDICT_COLUMNS`).
    spa : per objective: ``objective, benchmark, models, p_lower, p_consistent, p_upper, rejected``.
    mcs : per variant: ``variant, p_value, included`` (Sharpe loss, ``1 - alpha`` set).
    fallback : per comparison: fallback share and the Sharpe test on days with no fallback.
    alpha, power, block_size, reps, seed, n_days : settings and sample size; ``alpha`` is the
        nominal level, ``target`` the false-positive rate it was calibrated for.
    """

    family: PrimaryFamily
    sharpe: StepMOutcome
    mean: StepMOutcome
    verdicts: pd.DataFrame
    spa: pd.DataFrame
    mcs: pd.DataFrame
    fallback: pd.DataFrame
    alpha: float
    power: float
    block_size: float
    reps: int
    seed: int
    n_days: int
    period: dict[str, Any] = field(default_factory=dict)
    target: float = 0.05
    spa_alpha: float = 0.05

    def to_results(self) -> dict[str, Any]:
        """The ``results.json["primary"]`` document (pass through the JSON converter)."""
        return {
            "declared": self.family.to_results(),
            "alpha": self.alpha,
            "target_alpha": self.target,
            "spa_alpha": self.spa_alpha,
            "power": self.power,
            "period": self.period,
            "n_days": self.n_days,
            "bootstrap": {
                "kind": "stationary",
                "block_size": self.block_size,
                "reps": self.reps,
                "seed": self.seed,
            },
            "studentisation": "stationary-bootstrap long-run variance (Politis-Romano kernel), "
            "as Hansen (2005)",
            "stepm": self.sharpe.to_results(),
            "stepm_mean": self.mean.to_results(),
            "spa": self.spa.to_dict(orient="records"),
            "mcs": {
                "procedure": "arch.bootstrap.MCS (Hansen-Lunde-Nason 2011, R method), loss = -Sharpe "
                "performance series",
                "size": self.alpha,
                "variants": self.mcs.to_dict(orient="records"),
                "included": self.mcs.loc[self.mcs["included"], "variant"].tolist() if len(self.mcs) else [],
            },
            "verdicts": self.verdicts.to_dict(orient="records"),
            "fallback_robustness": self.fallback.to_dict(orient="records"),
        }


VERDICT_COLUMNS: Final[tuple[str, ...]] = (
    "objective",
    "a",
    "b",
    "comparator",
    "verdict",
    "reason",
    "n_days",
    "sharpe_a",
    "sharpe_b",
    "sharpe_diff",
    "se",
    "t_stat",
    "critical_value",
    "min_detectable_gap",
    "mean_diff_annual",
    "mean_t_stat",
    "mean_verdict",
)
"""Columns of :attr:`PrimaryResult.verdicts`; Sharpe quantities annualised (``sqrt(365)``, ``ddof=1``)."""


def _hypotheses(family: PrimaryFamily, run: TestRun, n: int, scale: float) -> pd.DataFrame:
    rows = []
    for i, c in enumerate(family.comparisons):
        t = run.estimate[i] / run.omega[i] * math.sqrt(n) if run.omega[i] > 0 else _NAN
        for side, direction in enumerate(("a > b", "b > a")):
            sign = 1.0 if side == 0 else -1.0
            rows.append(
                {
                    "objective": c.objective,
                    "a": c.a,
                    "b": c.b,
                    "direction": direction,
                    "estimate_annual": sign * run.estimate[i] * scale,
                    "t_stat": sign * t,
                    "rejected": bool(run.rejected[i, side]),
                }
            )
    return pd.DataFrame(
        rows, columns=["objective", "a", "b", "direction", "estimate_annual", "t_stat", "rejected"]
    )


def _verdict(run: TestRun, i: int, identical: bool, n: int) -> tuple[str, str]:
    if identical:
        return "no difference", (
            "identical standardised daily returns up to solver tolerance (the same portfolio, or one a "
            "scaled copy of the other): equal Sharpe ratios"
        )
    if n < _MIN_DAYS or run.omega[i] <= 0:
        return "undetermined", f"{n} common days or no variance in the difference"
    if run.rejected[i, 0]:
        return "a better", "Sharpe ratio higher, significant after StepM (familywise α)"
    if run.rejected[i, 1]:
        return "b better", "Sharpe ratio higher, significant after StepM (familywise α)"
    return "no detectable difference", "not significant after StepM"


def run_primary(
    returns: pd.DataFrame,
    family: PrimaryFamily,
    *,
    alpha: float = 0.05,
    block_size: float,
    reps: int = 1000,
    seed: int = 0,
    power: float = 0.8,
    decisions: pd.DataFrame | None = None,
    periods_per_year: int = PERIODS_PER_YEAR,
    target: float | None = None,
    spa_alpha: float | None = None,
) -> PrimaryResult:
    """Test the declared primary family on daily net returns.

    Parameters
    ----------
    returns : DataFrame of shape (n_days, n_variants)
        Daily simple net returns, one column per variant key; rows with a NaN in any family
        variant are dropped (all tests use the same days).
    family : from :func:`declare_primary_family`.
    alpha : nominal level of StepM (familywise), SPA and MCS.
    target : the false-positive rate ``alpha`` was calibrated for (recorded; default ``alpha``).
    spa_alpha : nominal level of the SPA tests (default ``alpha``).
    block_size : stationary-bootstrap expected block length (days).
    reps, seed : bootstrap resamples and seed of every procedure.
    power : power at which the minimum detectable Sharpe gap is stated.
    decisions : rebalance rows ``key, date, fallback`` for the fallback robustness check.

    Returns
    -------
    PrimaryResult

    Raises
    ------
    DataValidationError
        If a family variant has no returns column.

    Notes
    -----
    The minimum detectable gap of a pair is ``(c + z_power) * SE`` in annual Sharpe units, with
    ``c`` the family's first-step StepM critical value on the t scale (all hypotheses recentred,
    the conservative ``upper`` value) and ``SE`` the pair's studentising standard error: a true
    gap of that size is detected with probability ``power`` inside this family. The calibration
    harness (:mod:`kallos.evaluation.calibration`) checks it by simulation.
    """
    keys = family.variants
    missing = [k for k in keys if k not in returns.columns]
    if missing:
        raise DataValidationError(f"primary family: returns lack variant column(s) {missing}")
    extra = [k for k in returns.columns if k not in keys]
    sample = returns[keys + extra].dropna(subset=keys)
    sample = sample.dropna(axis=1)  # variants outside the family with gaps are left out of the MCS
    columns = list(sample.columns)
    values = sample.to_numpy(dtype=float)
    n = len(sample)
    ddof1 = math.sqrt((n - 1.0) / n) if n > 1 else _NAN
    sharpe_scale = math.sqrt(periods_per_year) * ddof1 if n > 1 else _NAN
    common = dict(alpha=alpha, block_size=block_size, reps=reps, seed=seed)
    if family.comparisons and n >= _MIN_DAYS:
        sharpe = run_primary_tests(values, family, columns, **common)
        mean = run_primary_tests(values, family, columns, statistic="mean", spa=False, mcs=False, **common)
    else:
        m = len(family.comparisons)
        empty = TestRun("sharpe", np.full(m, _NAN), np.zeros(m), np.zeros((m, 2), bool), {})
        sharpe, mean = empty, TestRun("mean", empty.estimate, empty.omega, empty.rejected, {})
    z = float(stats.norm.ppf(power))
    c_upper = sharpe.critical.get("upper", _NAN)
    position = {c: i for i, c in enumerate(columns)}
    sr = values.mean(axis=0) / np.where(values.std(axis=0) > 0, values.std(axis=0), np.nan) if n else []
    perf = sharpe_performance(values) if n else values
    rows = []
    for i, c in enumerate(family.comparisons):
        ia, ib = position[c.a], position[c.b]
        identical = n > 0 and bool(np.abs(perf[:, ia] - perf[:, ib]).max() <= SAME_TOLERANCE)
        label, reason = _verdict(sharpe, i, identical, n)
        se = sharpe.omega[i] / math.sqrt(n) * sharpe_scale if n and sharpe.omega[i] > 0 else _NAN
        mde = (c_upper + z) * se if math.isfinite(se) else _NAN
        if label == "no detectable difference" and math.isfinite(mde):
            years = n / periods_per_year
            reason += (
                f"; a true Sharpe gap smaller than {mde:.2f} would likely go unnoticed in {years:.1f} "
                f"years of daily data ({power:.0%} power inside this family)"
            )
        mean_label = "undetermined"
        if mean.omega[i] > 0:
            mean_label = (
                "a higher" if mean.rejected[i, 0] else "b higher" if mean.rejected[i, 1] else "no detectable"
            )
        rows.append(
            {
                "objective": c.objective,
                "a": c.a,
                "b": c.b,
                "comparator": c.comparator,
                "verdict": label,
                "reason": reason,
                "n_days": n,
                "sharpe_a": float(sr[ia] * sharpe_scale) if n else _NAN,
                "sharpe_b": float(sr[ib] * sharpe_scale) if n else _NAN,
                "sharpe_diff": float(sharpe.estimate[i] * sharpe_scale),
                "se": se,
                "t_stat": float(sharpe.estimate[i] / sharpe.omega[i] * math.sqrt(n))
                if sharpe.omega[i] > 0
                else _NAN,
                "critical_value": sharpe.critical.get("consistent", _NAN),
                "min_detectable_gap": mde,
                "mean_diff_annual": float(mean.estimate[i] * periods_per_year),
                "mean_t_stat": float(mean.estimate[i] / mean.omega[i] * math.sqrt(n))
                if mean.omega[i] > 0
                else _NAN,
                "mean_verdict": mean_label,
            }
        )
    verdicts = pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))
    spa_rows = [
        {
            "objective": objective,
            "benchmark": best,
            "models": family.learned_keys(objective),
            "p_lower": p[0],
            "p_consistent": p[1],
            "p_upper": p[2],
            "rejected": bool(p[1] <= (alpha if spa_alpha is None else spa_alpha)),
        }
        for objective, (best, p) in sharpe.spa.items()
    ]
    spa = pd.DataFrame(
        spa_rows,
        columns=["objective", "benchmark", "models", "p_lower", "p_consistent", "p_upper", "rejected"],
    )
    mcs = pd.DataFrame(
        [{"variant": k, "p_value": p, "included": bool(p > alpha)} for k, p in sharpe.mcs_pvalues.items()],
        columns=["variant", "p_value", "included"],
    )
    fallback = (
        _fallback_robustness(sample[keys], family, decisions, block_size, periods_per_year)
        if decisions is not None and len(decisions) and n >= _MIN_DAYS
        else pd.DataFrame()
    )
    period = {"start": sample.index[0], "end": sample.index[-1], "n_days": n} if n else {}
    return PrimaryResult(
        family=family,
        sharpe=StepMOutcome("sharpe", _hypotheses(family, sharpe, n, sharpe_scale), sharpe.critical),
        mean=StepMOutcome("mean", _hypotheses(family, mean, n, periods_per_year), mean.critical),
        verdicts=verdicts,
        spa=spa,
        mcs=mcs,
        fallback=fallback,
        alpha=alpha,
        power=power,
        block_size=float(block_size),
        reps=reps,
        seed=seed,
        n_days=n,
        period=period,
        target=alpha if target is None else target,
        spa_alpha=alpha if spa_alpha is None else spa_alpha,
    )
