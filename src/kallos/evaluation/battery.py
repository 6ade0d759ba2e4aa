"""The statistics of a study: the primary family, the exploratory battery, PSR/DSR, PBO, breakdowns.

:func:`evaluate` is the entry point: daily simple net returns of every strategy variant in,
a :class:`StudyStatistics` of frames out (no I/O).

* The **primary family** (:mod:`kallos.evaluation.primary`) is declared from the variants before
  any test runs and decides the verdicts: StepM over Sharpe differences, SPA and MCS.
* The **exploratory battery** runs every test of the :data:`BATTERY` registry on every pair
  (each test a function taking a :class:`PairSample`; bootstrap-based tests draw from resample
  indices shared by all pairs of the same length, :class:`kallos.evaluation.bootstrap.Resampler`),
  corrected by Benjamini-Hochberg over its whole family and kept out of the verdicts.

Sharpe ratios reported here are annualised with ``periods_per_year`` (365); returns are daily simple.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Final, Protocol

import numpy as np
import pandas as pd
from scipy import stats

from kallos.evaluation.bootstrap import Draws, Resampler, politis_white_block_length
from kallos.evaluation.breakdowns import (
    REGIMES,
    market_regimes,
    quarter_breakdown,
    regime_definition,
    regime_metrics,
)
from kallos.evaluation.dominance import dominance_from_curves, integrated_cdf, integrated_cdfs, quantile_grid
from kallos.evaluation.metrics import iso_date
from kallos.evaluation.overfitting import OverfittingResult, probability_of_backtest_overfitting
from kallos.evaluation.primary import PrimaryFamily, PrimaryResult, declare_primary_family, run_primary
from kallos.evaluation.sharpe import (
    deflated_sharpe_ratio,
    ledoit_wolf_from_block_sums,
    min_track_record_length,
    probabilistic_sharpe_ratio,
    sharpe_stats,
)
from kallos.evaluation.significance import (
    TestResult,
    adjust_pvalues,
    jobson_korkie_memmel_arrays,
    ks_test_arrays,
    mann_whitney_arrays,
    paired_t_hac_arrays,
    variance_test_arrays,
)
from kallos.exceptions import ConfigError, DataValidationError
from kallos.types import PERIODS_PER_YEAR

__all__ = [
    "BATTERY",
    "BOOTSTRAP_P_TESTS",
    "EFFECT_COLUMNS",
    "RECORD_COLUMNS",
    "TEST_LABELS",
    "FamilyPowerWarning",
    "PairSample",
    "PanelCache",
    "StudyStatistics",
    "TrialCount",
    "comparison_pairs",
    "evaluate",
    "pair_effects",
    "run_battery",
    "sharpe_table",
    "unattainable_tests",
]

_NAN: Final[float] = float("nan")
_MIN_OBS: Final[int] = 10
NO_OBJECTIVE: Final[str] = "none"

RECORD_COLUMNS: Final[tuple[str, ...]] = (
    "objective",
    "a",
    "b",
    "test",
    "statistic",
    "p_value",
    "p_holm",
    "p_bh",
    "significant",
    "effect",
    "ci_low",
    "ci_high",
    "effect_name",
    "group",
    "n",
    "start",
    "end",
    "cohens_d",
    "mean_diff_annual",
)
EFFECT_COLUMNS: Final[tuple[str, ...]] = (
    "objective",
    "a",
    "b",
    "cohens_d",
    "d_ci_low",
    "d_ci_high",
    "sharpe_diff",
    "sharpe_diff_ci_low",
    "sharpe_diff_ci_high",
)


class EvaluationSettings(Protocol):
    """The fields of :class:`kallos.config.EvaluationConfig` that :func:`evaluate` reads."""

    alpha: float
    bootstrap_reps: int
    block_length: int | None
    sd_orders: tuple[int, ...]
    pbo_splits: int
    regime_lookback: int
    regime_bull: float
    regime_bear: float
    seed: int
    power: float
    primary_level: float
    spa_level: float
    exploratory_correction: str


class PanelCache:
    """Bootstrap quantities computed once per strategy and shared by every pair of a sample.

    Parameters
    ----------
    returns : ndarray of shape (n, k)
        Daily simple returns of ``k`` strategies on common days (no NaN).
    draws : Draws
        Bootstrap draws for ``n`` days.

    Notes
    -----
    ``block_sums`` holds each resample's block sums of ``r`` and ``r^2`` for every strategy
    (shape (2k, reps, n_blocks)); a pair's Ledoit-Wolf statistic slices four of those columns.
    ``curve`` caches each strategy's sample and bootstrap ``D^s`` on one grid of 200 quantiles
    of all strategies' pooled returns (:func:`kallos.evaluation.dominance.quantile_grid`).
    """

    def __init__(self, returns: np.ndarray, draws: Draws, orders: tuple[int, ...] = (1, 2)) -> None:
        self.returns = returns
        self.draws = draws
        self.k = returns.shape[1]
        self.orders = tuple(orders) or (1,)
        self._curves: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    @cached_property
    def block_sums(self) -> np.ndarray:
        return self.draws.block_sums(np.hstack([self.returns, self.returns**2]))

    @cached_property
    def grid(self) -> np.ndarray:
        return quantile_grid(self.returns.ravel())

    def curve(self, col: int, order: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``D^s`` (g,) and bootstrap ``D^s`` (reps, g) of strategy ``col``."""
        if (col, order) not in self._curves:
            r = self.returns[:, col]
            orders = tuple(sorted({*self.orders, order}))
            sample = integrated_cdfs(r, self.grid, orders)
            boot = integrated_cdfs(r, self.grid, orders, self.draws.indices)
            for o in orders:
                self._curves[(col, o)] = (sample[o], boot[o])
        return self._curves[(col, order)]


@dataclass(frozen=True)
class PairSample:
    """Two paired daily simple-return arrays with their bootstrap draws.

    Attributes
    ----------
    x, y : ndarray of shape (n,)
        Returns of strategy ``a`` and ``b`` on their common non-NaN days.
    draws : Draws
        Circular block bootstrap draws (shared with every other pair of length ``n``).
    alpha : float
        Level for confidence intervals (``1 - alpha`` two-sided).
    periods_per_year : int
    panel : PanelCache, optional
        Shared per-strategy bootstrap quantities when ``x`` and ``y`` are columns ``cols`` of
        ``panel.returns``; without it everything is computed for the pair alone.
    cols : (int, int)
        Column positions of ``a`` and ``b`` in ``panel.returns``.
    """

    x: np.ndarray
    y: np.ndarray
    draws: Draws
    alpha: float = 0.05
    periods_per_year: int = PERIODS_PER_YEAR
    panel: PanelCache | None = field(default=None, repr=False)
    cols: tuple[int, int] = (0, 1)

    @property
    def n(self) -> int:
        return int(self.x.size)

    @cached_property
    def degenerate(self) -> bool:
        """Too few days, or a series without spread: every test gives NaN."""
        return self.n < _MIN_OBS or np.ptp(self.x) <= 1e-15 or np.ptp(self.y) <= 1e-15

    @cached_property
    def moments(self) -> np.ndarray:
        """``(x, y, x^2, y^2)``, shape (n, 4)."""
        return np.column_stack([self.x, self.y, self.x**2, self.y**2])

    @cached_property
    def block_sums(self) -> np.ndarray | tuple[np.ndarray, ...]:
        """Bootstrap block sums of :attr:`moments`: 4 arrays of shape (reps, n_blocks)."""
        if self.panel is None:
            return self.draws.block_sums(self.moments)
        i, j = self.cols
        k = self.panel.k
        return tuple(self.panel.block_sums[c] for c in (i, j, k + i, k + j))  # views, no copy

    @cached_property
    def boot_moments(self) -> np.ndarray:
        """Per-resample means of ``(x, y, x^2, y^2)``, shape (reps, 4)."""
        return np.stack([s.sum(axis=1) for s in self.block_sums], axis=1) / self.n

    def curves(self, order: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """Sample and bootstrap ``D^s`` curves of a and b on a shared grid."""
        if self.panel is not None:
            return self.panel.curve(self.cols[0], order), self.panel.curve(self.cols[1], order)
        grid = quantile_grid(np.concatenate([self.x, self.y]))
        idx = self.draws.indices
        return (
            (integrated_cdf(self.x, grid, order), integrated_cdf(self.x, grid, order, idx)),
            (integrated_cdf(self.y, grid, order), integrated_cdf(self.y, grid, order, idx)),
        )

    def percentile_ci(self, draws: np.ndarray) -> tuple[float, float]:
        finite = draws[np.isfinite(draws)]
        if finite.size == 0:
            return _NAN, _NAN
        lo, hi = np.quantile(finite, [self.alpha / 2.0, 1.0 - self.alpha / 2.0])
        return float(lo), float(hi)


_OUTCOME_COLUMNS: Final[tuple[str, ...]] = (
    "statistic",
    "p_value",
    "effect",
    "ci_low",
    "ci_high",
    "effect_name",
)
"""The fields of a battery :class:`~kallos.evaluation.significance.TestResult` a record keeps."""


def _z(alpha: float) -> float:
    return float(stats.norm.ppf(1.0 - alpha / 2.0))


def _test_t_hac(s: PairSample) -> TestResult:
    res = paired_t_hac_arrays(s.x, s.y)
    ann = s.periods_per_year
    mean, se, df = res.detail.get("mean_diff", _NAN), res.detail.get("se", _NAN), res.detail.get("df", _NAN)
    half = float(stats.t.ppf(1.0 - s.alpha / 2.0, df)) * se if math.isfinite(df) else _NAN
    return replace(
        res,
        test="paired_t_hac",
        effect=mean * ann,
        ci_low=(mean - half) * ann,
        ci_high=(mean + half) * ann,
        effect_name="mean_diff_annual",
    )


def _test_wilcoxon(s: PairSample) -> TestResult:
    """Wilcoxon signed-rank test of ``x - y`` (scipy defaults, zero differences dropped).

    Effect: matched-pairs rank-biserial correlation ``(W+ - W-) / (W+ + W-)`` (Kerby, 2014).
    """
    d = s.x - s.y
    d = d[np.abs(d) > 1e-15 * max(float(np.max(np.abs(s.x))), float(np.max(np.abs(s.y))), 1e-300)]
    if d.size < 3:
        return TestResult.degenerate("wilcoxon", s.n, n_nonzero=int(d.size))
    res = stats.wilcoxon(d)
    ranks = stats.rankdata(np.abs(d))
    w_plus, w_minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    rb = float((w_plus - w_minus) / (w_plus + w_minus))
    return TestResult(
        test="wilcoxon",
        statistic=float(res.statistic),
        p_value=float(res.pvalue),
        n=s.n,
        detail={"n_nonzero": int(d.size)},
        effect=rb,
        effect_name="rank_biserial",
    )


def _test_mann_whitney(s: PairSample) -> TestResult:
    res = mann_whitney_arrays(s.x, s.y)
    return replace(
        res, test="mann_whitney", effect=res.statistic / (s.n * s.n), effect_name="prob_superiority"
    )


def _test_ks(s: PairSample) -> TestResult:
    return replace(ks_test_arrays(s.x, s.y), test="ks")


def _test_brown_forsythe(s: PairSample) -> TestResult:
    res = variance_test_arrays(s.x, s.y)
    ratio = float(s.x.std(ddof=1) / s.y.std(ddof=1))
    return replace(res, test="variance_brown_forsythe", effect=ratio, effect_name="volatility_ratio")


def _test_jkm(s: PairSample) -> TestResult:
    res = jobson_korkie_memmel_arrays(s.x, s.y)
    sr_a, sr_b, rho = (res.detail.get(k, _NAN) for k in ("sharpe_a", "sharpe_b", "rho"))
    root = math.sqrt(s.periods_per_year)
    diff = sr_a - sr_b
    v = (2.0 - 2.0 * rho + 0.5 * (sr_a**2 + sr_b**2 - 2.0 * sr_a * sr_b * rho**2)) / s.n
    half = _z(s.alpha) * math.sqrt(max(v, 0.0)) if math.isfinite(v) else _NAN
    return replace(
        res,
        effect=diff * root,
        ci_low=(diff - half) * root,
        ci_high=(diff + half) * root,
        effect_name="sharpe_diff_annual",
    )


def _ddof1(n: int) -> float:
    """Factor turning a ``ddof=0`` Sharpe ratio into the ``ddof=1`` one."""
    return math.sqrt((n - 1.0) / n)


def _test_ledoit_wolf(s: PairSample) -> TestResult:
    res = ledoit_wolf_from_block_sums(s.moments, s.block_sums, s.draws.block_sizes)
    scale = math.sqrt(s.periods_per_year) * _ddof1(s.n)
    lo, hi = s.percentile_ci(res.boot_sharpe_diff * scale)
    return TestResult(
        test="ledoit_wolf_2008",
        statistic=res.statistic,
        p_value=res.p_value,
        n=s.n,
        effect=res.sharpe_diff * scale,
        ci_low=lo,
        ci_high=hi,
        effect_name="sharpe_diff_annual",
    )


def _dominance(order: int) -> Callable[[PairSample], TestResult]:
    def run(s: PairSample) -> TestResult:
        res = dominance_from_curves(*s.curves(order), s.n)
        return TestResult(
            test=f"sd{order}",
            statistic=res.statistic,
            p_value=res.p_value,
            n=s.n,
            effect=float(res.direction),
            effect_name="dominance_direction",
        )

    run.__doc__ = f"Stochastic dominance of order {order} (see kallos.evaluation.dominance)."
    return run


BATTERY: Final[dict[str, Callable[[PairSample], TestResult]]] = {
    "paired_t_hac": _test_t_hac,
    "wilcoxon": _test_wilcoxon,
    "mann_whitney": _test_mann_whitney,
    "ks": _test_ks,
    "variance_brown_forsythe": _test_brown_forsythe,
    "jobson_korkie_memmel": _test_jkm,
    "ledoit_wolf_2008": _test_ledoit_wolf,
    "sd1": _dominance(1),
    "sd2": _dominance(2),
}
"""Test name (the ``test`` values of ``results.json``) -> test on a :class:`PairSample`.

Each returns a :class:`~kallos.evaluation.significance.TestResult` whose ``test`` is its key
here, with the effect fields filled as below (None where a test has no effect or interval).

Effects: ``paired_t_hac`` annual mean difference with its HAC t interval; ``wilcoxon``
rank-biserial correlation; ``mann_whitney`` ``U / n^2`` (probability a's day beats b's);
``variance_brown_forsythe`` volatility ratio a/b; ``jobson_korkie_memmel`` annual Sharpe
difference with the normal interval of its Memmel variance; ``ledoit_wolf_2008`` annual Sharpe
difference with a percentile block-bootstrap interval; ``sd1``/``sd2`` the sample dominance
direction (+1 a dominates b, -1 b dominates a, 0 the curves cross), their statistic and
p-value testing equal (integrated) distribution functions.
"""

TEST_LABELS: Final[dict[str, str]] = {
    "paired_t_hac": "paired t (Newey-West HAC): H0 equal mean return",
    "wilcoxon": "Wilcoxon signed-rank: H0 daily differences symmetric about 0",
    "mann_whitney": "Mann-Whitney U: H0 neither stochastically larger (unpaired)",
    "ks": "Kolmogorov-Smirnov: H0 same distribution (unpaired)",
    "variance_brown_forsythe": "Brown-Forsythe: H0 equal variance",
    "jobson_korkie_memmel": "Jobson-Korkie-Memmel: H0 equal Sharpe ratio",
    "ledoit_wolf_2008": "Ledoit-Wolf 2008 (prewhitened QS HAC): H0 equal Sharpe ratio",
    "sd1": "1st-order dominance (block bootstrap): H0 equal CDFs; effect = dominance direction",
    "sd2": "2nd-order dominance (block bootstrap): H0 equal integrated CDFs; effect = dominance direction",
}
"""Readable label of each :data:`BATTERY` test, stating its null hypothesis (for reports)."""

BOOTSTRAP_P_TESTS: Final[tuple[str, ...]] = ("sd1", "sd2")
"""Tests whose p-value is a bootstrap count ``(1 + k) / (1 + B)``, so never below ``1 / (1 + B)``."""


def pair_effects(s: PairSample) -> dict[str, float]:
    """Cohen's d and the annual Sharpe difference with percentile block-bootstrap CIs.

    Both use the shared resample indices. Cohen's d is on daily returns with the pooled
    ``ddof=1`` standard deviation (:func:`kallos.evaluation.cohens_d`); the Sharpe difference
    is annualised (``sqrt(periods_per_year)``, ``ddof=1``). CIs are ``1 - alpha`` two-sided.
    """
    keys = ("cohens_d", "d_ci_low", "d_ci_high", "sharpe_diff", "sharpe_diff_ci_low", "sharpe_diff_ci_high")
    if s.degenerate:
        return dict.fromkeys(keys, _NAN)
    n = s.n
    m = s.boot_moments
    var_a = (m[:, 2] - m[:, 0] ** 2) * n / (n - 1.0)
    var_b = (m[:, 3] - m[:, 1] ** 2) * n / (n - 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        d_star = (m[:, 0] - m[:, 1]) / np.sqrt((var_a + var_b) / 2.0)
        sr_star = (m[:, 0] / np.sqrt(var_a) - m[:, 1] / np.sqrt(var_b)) * math.sqrt(s.periods_per_year)
    sr = (s.x.mean() / s.x.std(ddof=1) - s.y.mean() / s.y.std(ddof=1)) * math.sqrt(s.periods_per_year)
    d_lo, d_hi = s.percentile_ci(d_star)
    sr_lo, sr_hi = s.percentile_ci(sr_star)
    pooled = math.sqrt((s.x.var(ddof=1) + s.y.var(ddof=1)) / 2.0)
    d = float((s.x.mean() - s.y.mean()) / pooled)
    return dict(zip(keys, (d, d_lo, d_hi, float(sr), sr_lo, sr_hi), strict=True))


def comparison_pairs(variants: Mapping[str, tuple[str, str | None]]) -> list[tuple[str, str, str]]:
    """``(objective, a, b)`` for all forecast variants under each objective and each vs every benchmark.

    ``variants`` maps key -> (strategy name, objective or None); variants with no objective are
    benchmarks, compared with each other once under the objective ``"none"``. Order follows
    ``variants``.
    """
    benches = [k for k, (_, obj) in variants.items() if obj is None]
    objectives = list(dict.fromkeys(obj for _, obj in variants.values() if obj is not None))
    out = []
    for objective in objectives:
        members = [k for k, (_, obj) in variants.items() if obj == objective]
        out.extend((objective, a, b) for a, b in itertools.combinations(members, 2))
        out.extend((objective, a, b) for a in members for b in benches)
    out.extend((NO_OBJECTIVE, a, b) for a, b in itertools.combinations(benches, 2))
    return out


def run_battery(
    returns: pd.DataFrame,
    pairs: Sequence[tuple[str, str, str]],
    resampler: Resampler,
    *,
    alpha: float = 0.05,
    tests: Sequence[str] | None = None,
    periods_per_year: int = PERIODS_PER_YEAR,
    correction: str = "fdr_bh",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the :data:`BATTERY` on every pair; Holm and BH over the whole family of rows.

    Parameters
    ----------
    returns : pd.DataFrame of shape (n_days, n_strategies)
        Daily simple returns, one column per variant key.
    pairs : sequence of (objective, a, b)
    resampler : bootstrap indices source (shared across pairs).
    alpha : level; ``significant`` is the ``correction``-adjusted p-value below ``alpha``.
    tests : names from :data:`BATTERY` (default all).
    correction : ``"fdr_bh"`` (default; the exploratory family) or ``"holm"``.

    Returns
    -------
    (tests, effects) : pd.DataFrame
        Columns :data:`RECORD_COLUMNS` and :data:`EFFECT_COLUMNS`.

    Raises
    ------
    ConfigError
        Unknown test name or correction, or ``alpha`` outside ``(0, 1)``.
    DataValidationError
        A pair names a column ``returns`` lacks.
    """
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha}")
    if correction not in ("fdr_bh", "holm"):
        raise ConfigError(f"unknown correction {correction!r}; use 'fdr_bh' or 'holm'")
    names = list(BATTERY) if tests is None else list(tests)
    unknown = [t for t in names if t not in BATTERY]
    if unknown:
        raise ConfigError(f"unknown test(s) {unknown}; registered: {sorted(BATTERY)}")
    for _, a, b in pairs:
        missing = [c for c in (a, b) if c not in returns.columns]
        if missing:
            raise DataValidationError(f"returns has no column {missing[0]!r} (pair {a} vs {b})")

    rows: list[dict[str, Any]] = []
    effects: list[dict[str, Any]] = []
    used = list(dict.fromkeys(c for _, a, b in pairs for c in (a, b)))
    complete = returns[used].dropna()
    position = {c: i for i, c in enumerate(used)}
    orders = tuple(int(t[2:]) for t in names if t.startswith("sd"))
    panel = PanelCache(complete.to_numpy(dtype=float), resampler.draws(len(complete)), orders)
    for objective, a, b in pairs:
        common = returns[[a, b]].dropna()
        x, y = common[a].to_numpy(dtype=float), common[b].to_numpy(dtype=float)
        shared = len(common) == len(complete)  # same days as the panel: reuse its bootstrap sums
        s = PairSample(
            x,
            y,
            resampler.draws(len(x)),
            alpha,
            periods_per_year,
            panel if shared else None,
            (position[a], position[b]),
        )
        info = {
            "objective": objective,
            "group": objective,
            "a": a,
            "b": b,
            "n": s.n,
            "start": iso_date(common.index[0]) if s.n else "",
            "end": iso_date(common.index[-1]) if s.n else "",
            "mean_diff_annual": float((x - y).mean() * periods_per_year) if s.n else _NAN,
        }
        eff = pair_effects(s)
        info["cohens_d"] = eff["cohens_d"]
        effects.append({"objective": objective, "a": a, "b": b, **eff})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for name in names:
                out = TestResult.degenerate(name, s.n) if s.degenerate else BATTERY[name](s)
                rows.append({**info, "test": name, **{k: getattr(out, k) for k in _OUTCOME_COLUMNS}})

    table = pd.DataFrame(rows, columns=list(RECORD_COLUMNS))
    for col in ("statistic", "p_value", "cohens_d", "mean_diff_annual"):
        table[col] = table[col].astype(float)
    table["n"] = table["n"].astype("int64")
    table["p_holm"] = adjust_pvalues(table["p_value"].to_numpy(), "holm")
    table["p_bh"] = adjust_pvalues(table["p_value"].to_numpy(), "fdr_bh")
    adjusted = table["p_bh"] if correction == "fdr_bh" else table["p_holm"]
    table["significant"] = (adjusted < alpha).astype(bool)
    return table, pd.DataFrame(effects, columns=list(EFFECT_COLUMNS))


class FamilyPowerWarning(UserWarning):
    """A configured family of tests can never reach significance (its p-values have a floor)."""


def unattainable_tests(
    tests: Sequence[str], family_size: int, bootstrap_reps: int, alpha: float, correction: str
) -> list[str]:
    """Tests whose adjusted p-value can never fall below ``alpha`` in a family of ``family_size``.

    A bootstrap p-value (:data:`BOOTSTRAP_P_TESTS`) is at least ``1 / (B + 1)``. Under Holm its
    smallest adjusted value is ``m / (B + 1)``; under Benjamini-Hochberg, when every test in the
    family reaches the floor, ``1 / (B + 1)``. A test whose best case is ``>= alpha`` can never
    reject, whatever the data.
    """
    floor = 1.0 / (bootstrap_reps + 1.0)
    best = floor * family_size if correction == "holm" else floor
    return [t for t in tests if t in BOOTSTRAP_P_TESTS and best >= alpha]


def sharpe_table(
    returns: pd.DataFrame,
    n_trials: int,
    alpha: float = 0.05,
    periods_per_year: int = PERIODS_PER_YEAR,
    trial_keys: Sequence[str] | None = None,
) -> pd.DataFrame:
    """PSR (vs 0), DSR and minimum track record per variant.

    DSR deflates by ``n_trials`` with ``V[SR]`` the cross-sectional variance (``ddof=1``) of
    the trials' daily Sharpe ratios (``trial_keys``, default every column; Bailey and López de
    Prado, 2014, §3); with fewer than two finite Sharpe ratios it falls back to the asymptotic
    variance of one Sharpe estimate, ``(1 - skew SR + (kurt - 1)/4 SR^2) / (n - 1)``.
    ``min_track_record_days`` is the minTRL for ``PSR(0) >= 1 - alpha`` (inf when the Sharpe
    ratio is not positive).

    Returns
    -------
    pd.DataFrame indexed by key
        Columns ``sharpe`` (annualised, ``ddof=1``), ``psr``, ``dsr``, ``n_trials``,
        ``min_track_record_days``, ``skew``, ``kurtosis`` (raw, normal = 3).
    """
    moments = {k: sharpe_stats(returns[k].to_numpy()) for k in returns.columns}
    keys = list(returns.columns) if trial_keys is None else [k for k in trial_keys if k in moments]
    daily = np.array([moments[k].sharpe for k in keys], dtype=float)
    finite = daily[np.isfinite(daily)]
    cross_var = float(np.var(finite, ddof=1)) if finite.size >= 2 else None
    rows = {}
    for key, m in moments.items():
        if cross_var is not None:
            var = cross_var
        elif m.n > 1 and math.isfinite(m.sharpe):
            var = (1.0 - m.skew * m.sharpe + (m.kurtosis - 1.0) / 4.0 * m.sharpe**2) / (m.n - 1)
        else:
            var = _NAN
        rows[key] = {
            "sharpe": m.sharpe * math.sqrt(periods_per_year),
            "psr": probabilistic_sharpe_ratio(m.sharpe, m.n, m.skew, m.kurtosis),
            "dsr": deflated_sharpe_ratio(m.sharpe, m.n, m.skew, m.kurtosis, max(var, 0.0), n_trials)
            if math.isfinite(var)
            else _NAN,
            "n_trials": int(n_trials),
            "min_track_record_days": min_track_record_length(m.sharpe, m.skew, m.kurtosis, alpha=alpha),
            "skew": m.skew,
            "kurtosis": m.kurtosis,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


@dataclass(frozen=True)
class TrialCount:
    """What the deflated Sharpe ratio's number of trials counts.

    Attributes
    ----------
    tuning : hyper-parameter trials stored by tuning (``count_trials``).
    prior_configurations : distinct study configurations already run on the same data hash
        (the ``runs`` table), this one excluded.
    prior_variants : their forecast-driven variants (each was a trial on the same data).
    """

    tuning: int = 0
    prior_configurations: int = 0
    prior_variants: int = 0

    def total(self, variants: int) -> int:
        return int(variants) + self.tuning + self.prior_variants


@dataclass(frozen=True)
class StudyStatistics:
    """Everything :func:`evaluate` computed; :meth:`to_results` gives the ``results.json`` keys.

    Attributes
    ----------
    primary : the declared primary family and its tests (verdicts, StepM, SPA, MCS).
    tests : exploratory pairwise records (:data:`RECORD_COLUMNS`), BH (and Holm) over the family.
    effects : one row per pair.
    sharpe : per-variant PSR/DSR table (see :func:`sharpe_table`).
    trials : ``n_trials`` and what it holds (``variants``, ``from_tuning``, ``prior_configurations``,
        ``prior_variants``, ``source``).
    overfitting : PBO over the forecast variants (None with fewer than 2 or too few days).
    regimes : per-day regime labels; regime_metrics, regime_tests : breakdowns (tests with a
        ``regime`` column, corrected within each regime).
    quarters : per quarter and key.
    warnings : families that can never reach significance, in words.
    alpha, block_length, bootstrap_reps, regime_rule, period, correction : settings used.
    """

    primary: PrimaryResult
    tests: pd.DataFrame
    effects: pd.DataFrame
    sharpe: pd.DataFrame
    trials: dict[str, Any]
    overfitting: OverfittingResult | None
    regimes: pd.Series = field(repr=False)
    regime_metrics: pd.DataFrame = field(repr=False)
    regime_tests: pd.DataFrame = field(repr=False)
    quarters: pd.DataFrame = field(repr=False)
    alpha: float = 0.05
    block_length: int = 1
    bootstrap_reps: int = 0
    regime_rule: str = ""
    period: dict[str, Any] = field(default_factory=dict)
    correction: str = "fdr_bh"
    warnings: tuple[str, ...] = ()

    @property
    def verdicts(self) -> pd.DataFrame:
        """The primary verdicts, one row per declared comparison."""
        return self.primary.verdicts

    def to_results(self) -> dict[str, Any]:
        """The contract keys ``primary, tests, effects, verdicts, sharpe, trials, overfitting, regimes,
        quarters``.

        Values may hold NaN/inf and numpy scalars; pass the dict through the results JSON
        converter (``kallos.pipeline.results.jsonable``).
        """
        records = self.tests.to_dict(orient="records")
        days = self.regimes.value_counts()
        return {
            "primary": self.primary.to_results(),
            "tests": {
                "alpha": self.alpha,
                "family": "exploratory",
                "correction": self.correction,
                "note": "exploratory: every battery test on every pair, corrected over the whole "
                "family; not used for verdicts (see primary)",
                "period": self.period,
                "family_size": int(self.tests["p_value"].notna().sum()),
                "bootstrap": {"reps": self.bootstrap_reps, "block_length": self.block_length},
                "warnings": list(self.warnings),
                "pairwise": records,
            },
            "effects": self.effects.to_dict(orient="records"),
            "verdicts": self.primary.verdicts.to_dict(orient="records"),
            "sharpe": {
                k: {**v, "n_trials": int(v["n_trials"])}
                for k, v in self.sharpe.to_dict(orient="index").items()
            },
            "trials": dict(self.trials),
            "overfitting": {"pbo": None, "n_variants": None, "n_splits": None, "logits": []}
            if self.overfitting is None
            else {
                "pbo": self.overfitting.pbo,
                "n_variants": self.overfitting.n_variants,
                "n_splits": self.overfitting.n_splits,
                "logits": self.overfitting.logits.tolist(),
            },
            "regimes": {
                "definition": self.regime_rule,
                "days": {r: int(days.get(r, 0)) for r in (*REGIMES, "warmup")},
                "metrics": self.regime_metrics.to_dict(orient="records"),
                "tests": self.regime_tests.to_dict(orient="records"),
            },
            "quarters": self.quarters.to_dict(orient="records"),
        }


def evaluate(
    returns: pd.DataFrame,
    variants: Mapping[str, tuple[str, str | None]],
    benchmark: str,
    config: EvaluationSettings,
    trials: TrialCount | int = 0,
    *,
    family: PrimaryFamily | None = None,
    learned: Sequence[str] = (),
    baselines: Sequence[str] = (),
    decisions: pd.DataFrame | None = None,
    periods_per_year: int = PERIODS_PER_YEAR,
) -> StudyStatistics:
    """The study's statistics: primary family, exploratory battery, PSR/DSR, PBO and breakdowns.

    Parameters
    ----------
    returns : pd.DataFrame of shape (n_days, n_variants)
        Daily simple net returns over the evaluated period, one column per variant key,
        DatetimeIndex (one row per UTC day).
    variants : mapping key -> (strategy name, objective or None)
        Every column of ``returns``; objective None marks a benchmark.
    benchmark : str
        Key of the market-cap benchmark: a comparator of the primary family, and its trailing
        trend defines the regimes (no regime breakdown when absent from ``returns``).
    config : EvaluationConfig
        ``alpha, bootstrap_reps, block_length`` (None: Politis-White), ``sd_orders, pbo_splits,
        regime_lookback, regime_bull, regime_bear, seed, power, exploratory_correction``.
    trials : TrialCount or int, default 0
        What the DSR counts besides this study's forecast-driven variants (an int is the number of
        stored tuning trials).
    family : the declared primary family; default declared here from ``learned``/``baselines``.
    learned, baselines : forecaster names of the two sides of the primary family.
    decisions : rebalance rows ``key, date, fallback`` (the fallback robustness check).

    Returns
    -------
    StudyStatistics

    Raises
    ------
    DataValidationError
        If ``variants`` and the columns of ``returns`` disagree, or a trial count is negative.
    ConfigError
        For invalid settings.
    """
    missing = sorted(set(variants) - set(returns.columns))
    if missing:
        raise DataValidationError(f"returns lack the variant column(s) {missing}")
    if isinstance(trials, int):
        trials = TrialCount(tuning=trials)
    if min(trials.tuning, trials.prior_configurations, trials.prior_variants) < 0:
        raise DataValidationError(f"trial counts must be >= 0, got {trials}")
    returns = returns[list(variants)].astype(float)
    block = config.block_length or politis_white_block_length(returns)
    resampler = Resampler(block, config.bootstrap_reps, config.seed)
    tests = [t for t in BATTERY if not t.startswith("sd") or int(t[2:]) in config.sd_orders]
    correction = config.exploratory_correction
    pairs = comparison_pairs(variants)

    if family is None:
        family = declare_primary_family(variants, learned, baselines, benchmark)
    sb_block = config.block_length or politis_white_block_length(
        returns[family.variants] if family.variants else returns, kind="stationary"
    )
    primary = run_primary(
        returns,
        family,
        alpha=config.primary_level,
        target=config.alpha,
        spa_alpha=config.spa_level,
        block_size=sb_block,
        reps=config.bootstrap_reps,
        seed=config.seed,
        power=config.power,
        decisions=decisions,
        periods_per_year=periods_per_year,
    )

    table, effects = run_battery(
        returns,
        pairs,
        resampler,
        alpha=config.alpha,
        tests=tests,
        periods_per_year=periods_per_year,
        correction=correction,
    )
    notes = []
    dead = unattainable_tests(
        tests, int(table["p_value"].notna().sum()), config.bootstrap_reps, config.alpha, correction
    )
    if dead:
        notes.append(
            f"exploratory family ({correction}, {int(table['p_value'].notna().sum())} tests, "
            f"{config.bootstrap_reps} bootstrap resamples): {', '.join(dead)} can never be significant "
            f"(p >= 1/(B+1)); raise evaluation.bootstrap_reps or use exploratory_correction = 'fdr_bh'"
        )

    forecast_keys = [k for k, (_, obj) in variants.items() if obj is not None]
    n_trials = trials.total(len(forecast_keys))
    parts = [f"{len(forecast_keys)} forecast-driven variants of this study (benchmarks not counted)"]
    parts.append(f"{trials.tuning} stored tuning trials")
    parts.append(
        f"{trials.prior_variants} forecast-driven variants of {trials.prior_configurations} other "
        "study configurations already run on the same data"
    )
    trials_doc = {
        "n_trials": n_trials,
        "variants": len(forecast_keys),
        "from_tuning": trials.tuning,
        "prior_configurations": trials.prior_configurations,
        "prior_variants": trials.prior_variants,
        "source": "; ".join(parts),
    }
    sharpe = sharpe_table(returns, n_trials, config.alpha, periods_per_year, trial_keys=forecast_keys)

    overfitting = None
    if len(forecast_keys) >= 2 and len(returns[forecast_keys].dropna()) >= 2 * config.pbo_splits:
        overfitting = probability_of_backtest_overfitting(returns[forecast_keys], config.pbo_splits)

    rule = regime_definition(config.regime_lookback, config.regime_bull, config.regime_bear)
    if benchmark in returns.columns:
        regimes = market_regimes(
            returns[benchmark], config.regime_lookback, config.regime_bull, config.regime_bear
        )
    else:
        regimes = pd.Series("warmup", index=returns.index, name="regime")
        rule = f"no regimes: benchmark {benchmark!r} not among the variants"
    per_regime = []
    for regime in REGIMES:
        sub = returns.loc[regimes == regime]
        if len(sub) >= _MIN_OBS:
            part, _ = run_battery(
                sub,
                pairs,
                resampler,
                alpha=config.alpha,
                tests=tests,
                periods_per_year=periods_per_year,
                correction=correction,
            )
            per_regime.append(part.assign(regime=regime))
    regime_tests = (
        pd.concat(per_regime, ignore_index=True)
        if per_regime
        else pd.DataFrame(columns=[*RECORD_COLUMNS, "regime"])
    )
    for note in notes:
        warnings.warn(note, FamilyPowerWarning, stacklevel=2)
    index = returns.index
    period = {"start": index[0], "end": index[-1], "n_days": len(index)} if len(index) else {}
    return StudyStatistics(
        primary=primary,
        tests=table,
        effects=effects,
        sharpe=sharpe,
        trials=trials_doc,
        overfitting=overfitting,
        regimes=regimes,
        regime_metrics=regime_metrics(returns, regimes, periods_per_year),
        regime_tests=regime_tests,
        quarters=quarter_breakdown(returns, periods_per_year),
        alpha=config.alpha,
        block_length=block,
        bootstrap_reps=config.bootstrap_reps,
        regime_rule=rule,
        period=period,
        correction=correction,
        warnings=tuple(notes),
    )
