"""Statistical tests that compare two strategies' daily returns, with multiple-testing correction.

Every pairwise test takes two daily simple-return series ``a`` and ``b`` (not percent),
aligns them on their common dates, drops the dates where either is NaN, and returns a
:class:`TestResult`. Each has an ``*_arrays`` twin that takes two aligned NaN-free arrays
instead (what the exploratory battery, :mod:`kallos.evaluation.battery`, calls). Degenerate
samples (fewer than 3 paired days, or no variance where the statistic needs some) give a NaN
statistic and p-value instead of raising, so a study run goes on and records the failure as
data.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.multitest import multipletests

from kallos.evaluation.metrics import is_constant
from kallos.exceptions import ConfigError, DataValidationError

__all__ = [
    "TestResult",
    "adjust_pvalues",
    "cohens_d",
    "jobson_korkie_memmel",
    "jobson_korkie_memmel_arrays",
    "ks_test",
    "ks_test_arrays",
    "mann_whitney",
    "mann_whitney_arrays",
    "newey_west_maxlags",
    "paired_t_hac",
    "paired_t_hac_arrays",
    "variance_test",
    "variance_test_arrays",
]

_NAN = float("nan")
_MIN_OBS: Final[int] = 3


@dataclass(frozen=True)
class TestResult:
    """Outcome of one test on one pair of daily return series.

    The one result type of the pairwise tests: the functions of this module return it, and so
    does every test of the exploratory battery (:data:`kallos.evaluation.battery.BATTERY`), which
    also fills the effect fields.

    Attributes
    ----------
    test : str
        Name of the test: the function's own (``"t_test_hac"``, ``"jobson_korkie_memmel"``,
        ``"kolmogorov_smirnov"``, ``"mann_whitney_u"``, ``"brown_forsythe"``), or the battery's
        registry key.
    statistic : float
        Test statistic (t, z, D, U or W, see the test); NaN for a degenerate sample.
    p_value : float
        Two-sided p-value, unadjusted; NaN for a degenerate sample.
    n : int
        Number of paired daily observations used (common dates, NaN pairs dropped).
    detail : dict
        Test-specific extras (e.g. the daily mean difference, the HAC lag count).
    effect : float, optional
        Effect size of the pair, in the units ``effect_name`` names (e.g. an annualised Sharpe
        difference, a rank-biserial correlation); None when the test reports none.
    ci_low, ci_high : float, optional
        Two-sided ``1 - alpha`` confidence interval of ``effect``; None when the test has none.
    effect_name : str, optional
        What ``effect`` measures (``"sharpe_diff_annual"``, ``"mean_diff_annual"``, ...).
    """

    __test__ = False  # not a pytest test class

    test: str
    statistic: float
    p_value: float
    n: int
    detail: dict[str, Any] = field(default_factory=dict)
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    effect_name: str | None = None

    @classmethod
    def degenerate(cls, test: str, n: int, **detail: Any) -> TestResult:
        """The result of a sample the test is undefined on: NaN statistic and p-value."""
        return cls(test=test, statistic=_NAN, p_value=_NAN, n=n, detail=dict(detail))


def _align(a: pd.Series, b: pd.Series) -> pd.DataFrame:
    """Pairs of ``a`` and ``b`` on their common index, NaN pairs dropped, as columns ``a``, ``b``."""
    frame = pd.concat(
        [pd.Series(a, dtype=float).rename("a"), pd.Series(b, dtype=float).rename("b")],
        axis=1,
        join="inner",
    )
    return frame.dropna()


def newey_west_maxlags(n_obs: int) -> int:
    """Newey-West (1994) rule of thumb for the Bartlett-kernel lag truncation.

    Parameters
    ----------
    n_obs : int
        Number of observations ``T``.

    Returns
    -------
    int
        ``floor(4 * (T / 100) ** (2 / 9))``; 0 for ``T <= 0``.

    References
    ----------
    .. [1] Newey, W. K. and West, K. D. (1994). "Automatic Lag Selection in Covariance Matrix
       Estimation". Review of Economic Studies, 61(4), 631-653.
    """
    if n_obs <= 0:
        return 0
    return math.floor(4.0 * (n_obs / 100.0) ** (2.0 / 9.0))


def paired_t_hac(a: pd.Series, b: pd.Series, maxlags: int | None = None) -> TestResult:
    """Test that the mean daily return difference ``a - b`` is zero, with Newey-West errors.

    Regresses ``d = a - b`` on a constant by OLS (statsmodels) with a heteroskedasticity and
    autocorrelation consistent (HAC, Bartlett kernel) covariance, small-sample correction
    ``T / (T - 1)`` on, and a t distribution with ``T - 1`` degrees of freedom for the p-value
    (as Stata's ``newey``).

    Parameters
    ----------
    a, b : pd.Series of shape (n_days,)
        Daily simple returns of the two strategies, indexed by date.
    maxlags : int, optional
        HAC lag truncation; default ``floor(4 * (T / 100) ** (2 / 9))`` (:func:`newey_west_maxlags`).

    Returns
    -------
    TestResult
        ``statistic`` is the HAC t-statistic of the mean difference; two-sided p-value.
        ``detail``: ``mean_diff`` (daily, simple), ``maxlags``, ``se`` (HAC standard error of
        the daily mean difference), ``df``.

    Raises
    ------
    ValueError
        If ``maxlags`` is negative.

    Notes
    -----
    NaN result when fewer than 3 paired days remain or ``a - b`` is constant (its spread is
    below ``1e-12`` times the magnitude of the returns, i.e. rounding noise). With
    ``maxlags=0`` the corrected HAC variance equals the classical ``s^2 / T`` (``ddof=1``),
    so statistic and p-value coincide with ``scipy.stats.ttest_1samp(a - b, 0)``.

    References
    ----------
    .. [1] Newey, W. K. and West, K. D. (1987). "A Simple, Positive Semi-Definite,
       Heteroskedasticity and Autocorrelation Consistent Covariance Matrix". Econometrica,
       55(3), 703-708.
    .. [2] statsmodels ``RegressionResults.get_robustcov_results`` (``cov_type="HAC"``),
       https://www.statsmodels.org/stable/generated/statsmodels.regression.linear_model.RegressionResults.get_robustcov_results.html
    """
    if maxlags is not None and maxlags < 0:
        raise ValueError(f"maxlags must be non-negative, got {maxlags}")
    pairs = _align(a, b)
    return paired_t_hac_arrays(pairs["a"].to_numpy(), pairs["b"].to_numpy(), maxlags)


def paired_t_hac_arrays(x: np.ndarray, y: np.ndarray, maxlags: int | None = None) -> TestResult:
    """:func:`paired_t_hac` on two aligned arrays.

    Parameters
    ----------
    x, y : ndarray of shape (n_days,)
        Daily simple returns of the two strategies on the same days, no NaN.
    maxlags : int, optional
        HAC lag truncation; default :func:`newey_west_maxlags` of ``n_days``.

    Returns
    -------
    TestResult
        As :func:`paired_t_hac` (``test="t_test_hac"``).
    """
    name = "t_test_hac"
    d = x - y
    n = int(d.size)
    lags = newey_west_maxlags(n) if maxlags is None else int(maxlags)
    mean_diff = float(d.mean()) if n else _NAN
    scale = max(float(np.abs(x).max()), float(np.abs(y).max())) if n else 0.0
    if n < _MIN_OBS or is_constant(d, scale):
        return TestResult.degenerate(name, n, mean_diff=mean_diff, maxlags=lags)
    fit = sm.OLS(d, np.ones((n, 1))).fit(
        cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": True}, use_t=True
    )
    return TestResult(
        test=name,
        statistic=float(fit.tvalues[0]),
        p_value=float(fit.pvalues[0]),
        n=n,
        detail={
            "mean_diff": mean_diff,
            "maxlags": lags,
            "se": float(fit.bse[0]),
            "df": float(fit.df_resid),
        },
    )


def jobson_korkie_memmel(a: pd.Series, b: pd.Series) -> TestResult:
    """Test of equal Sharpe ratios, Jobson-Korkie (1981) with Memmel's (2003) correction.

    .. math::

        z = \\frac{\\widehat{SR}_a - \\widehat{SR}_b}{\\sqrt{V}}, \\quad
        V = \\frac{1}{T}\\Big[2 - 2\\rho + \\tfrac12\\big(\\widehat{SR}_a^2 + \\widehat{SR}_b^2
            - 2\\,\\widehat{SR}_a \\widehat{SR}_b\\,\\rho^2\\big)\\Big]

    with daily (not annualised) Sharpe ratios ``mean / std`` (``ddof=1``, risk-free rate 0)
    and the Pearson correlation ``rho`` of the paired daily returns; two-sided standard
    normal p-value.

    Parameters
    ----------
    a, b : pd.Series of shape (n_days,)
        Daily simple returns of the two strategies, indexed by date.

    Returns
    -------
    TestResult
        ``statistic`` is ``z``. ``detail``: ``sharpe_a``, ``sharpe_b`` (daily), ``rho``.

    Notes
    -----
    NaN result when fewer than 3 paired days remain or either series is constant (its
    Sharpe ratio is undefined). Two identical series give ``V = 0`` and ``z = 0``; the test
    then reports ``z = 0, p = 1``. The test assumes i.i.d. jointly normal returns; it is
    known to be mis-sized for fat-tailed returns (Ledoit and Wolf, 2008).

    References
    ----------
    .. [1] Jobson, J. D. and Korkie, B. M. (1981). "Performance Hypothesis Testing with the
       Sharpe and Treynor Measures". Journal of Finance, 36(4), 889-908.
    .. [2] Memmel, C. (2003). "Performance Hypothesis Testing with the Sharpe Ratio".
       Finance Letters, 1, 21-23.
    .. [3] Ledoit, O. and Wolf, M. (2008). "Robust performance hypothesis testing with the
       Sharpe ratio". Journal of Empirical Finance, 15(5), 850-859.
    """
    pairs = _align(a, b)
    return jobson_korkie_memmel_arrays(pairs["a"].to_numpy(), pairs["b"].to_numpy())


def jobson_korkie_memmel_arrays(x: np.ndarray, y: np.ndarray) -> TestResult:
    """:func:`jobson_korkie_memmel` on two aligned arrays.

    Parameters
    ----------
    x, y : ndarray of shape (n_days,)
        Daily simple returns of the two strategies on the same days, no NaN.

    Returns
    -------
    TestResult
        As :func:`jobson_korkie_memmel` (``test="jobson_korkie_memmel"``; ``detail`` holds the
        daily Sharpe ratios ``sharpe_a``, ``sharpe_b`` and ``rho``).
    """
    name = "jobson_korkie_memmel"
    n = int(x.size)
    if n < _MIN_OBS or is_constant(x) or is_constant(y):
        return TestResult.degenerate(name, n)
    sr_a = float(x.mean() / x.std(ddof=1))
    sr_b = float(y.mean() / y.std(ddof=1))
    rho = float(np.clip(np.corrcoef(x, y)[0, 1], -1.0, 1.0))
    v = (2.0 - 2.0 * rho + 0.5 * (sr_a**2 + sr_b**2 - 2.0 * sr_a * sr_b * rho**2)) / n
    diff = sr_a - sr_b
    if diff == 0.0:
        z, p = 0.0, 1.0
    elif v <= 0.0:
        z, p = _NAN, _NAN
    else:
        z = diff / math.sqrt(v)
        p = float(2.0 * stats.norm.sf(abs(z)))
    return TestResult(
        test=name,
        statistic=float(z),
        p_value=float(p),
        n=n,
        detail={"sharpe_a": sr_a, "sharpe_b": sr_b, "rho": rho},
    )


def _both_constant(pairs: pd.DataFrame) -> bool:
    return is_constant(pairs["a"].to_numpy()) and is_constant(pairs["b"].to_numpy())


def _two_sample_arrays(name: str, x: np.ndarray, y: np.ndarray, func: Callable[..., Any]) -> TestResult:
    """A scipy two-sample test ``func(x, y)`` on aligned NaN-free arrays, NaN when degenerate."""
    n = int(x.size)
    if n < _MIN_OBS or (is_constant(x) and is_constant(y)):
        return TestResult.degenerate(name, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = func(x, y)
    statistic, p_value = float(res.statistic), float(res.pvalue)
    if not (math.isfinite(statistic) and math.isfinite(p_value)):
        return TestResult.degenerate(name, n)
    return TestResult(test=name, statistic=statistic, p_value=p_value, n=n)


def _ks_2samp(x: np.ndarray, y: np.ndarray) -> Any:
    return stats.ks_2samp(x, y, alternative="two-sided")


def _mannwhitneyu(x: np.ndarray, y: np.ndarray) -> Any:
    return stats.mannwhitneyu(x, y, alternative="two-sided")


def _brown_forsythe(x: np.ndarray, y: np.ndarray) -> Any:
    return stats.levene(x, y, center="median")


def _aligned_arrays(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    pairs = _align(a, b)
    return pairs["a"].to_numpy(), pairs["b"].to_numpy()


def ks_test_arrays(x: np.ndarray, y: np.ndarray) -> TestResult:
    """:func:`ks_test` on two arrays of daily simple returns (no NaN), ``test="kolmogorov_smirnov"``."""
    return _two_sample_arrays("kolmogorov_smirnov", x, y, _ks_2samp)


def mann_whitney_arrays(x: np.ndarray, y: np.ndarray) -> TestResult:
    """:func:`mann_whitney` on two arrays of daily simple returns (no NaN), ``test="mann_whitney_u"``."""
    return _two_sample_arrays("mann_whitney_u", x, y, _mannwhitneyu)


def variance_test_arrays(x: np.ndarray, y: np.ndarray) -> TestResult:
    """:func:`variance_test` on two arrays of daily simple returns (no NaN), ``test="brown_forsythe"``."""
    return _two_sample_arrays("brown_forsythe", x, y, _brown_forsythe)


def ks_test(a: pd.Series, b: pd.Series) -> TestResult:
    """Two-sample Kolmogorov-Smirnov test that ``a`` and ``b`` share one distribution.

    Parameters
    ----------
    a, b : pd.Series of shape (n_days,)
        Daily simple returns of the two strategies, indexed by date; only the common,
        non-NaN dates are used, each series then treated as an unpaired sample.

    Returns
    -------
    TestResult
        ``statistic`` is the KS ``D`` (sup distance of the empirical CDFs); two-sided
        p-value from ``scipy.stats.ks_2samp`` (exact for small samples).

    Notes
    -----
    NaN result when fewer than 3 paired days remain or both series are constant. The
    test assumes independent observations; daily returns of two strategies on the same
    dates are paired and serially dependent, so read the p-value as descriptive.

    References
    ----------
    .. [1] Smirnov, N. (1948). "Table for Estimating the Goodness of Fit of Empirical
       Distributions". Annals of Mathematical Statistics, 19(2), 279-281.
    .. [2] SciPy ``scipy.stats.ks_2samp``,
       https://docs.scipy.org/doc/scipy/reference/generated/scipy.stats.ks_2samp.html
    """
    return ks_test_arrays(*_aligned_arrays(a, b))


def mann_whitney(a: pd.Series, b: pd.Series) -> TestResult:
    """Mann-Whitney U test of a location shift between the distributions of ``a`` and ``b``.

    Parameters
    ----------
    a, b : pd.Series of shape (n_days,)
        Daily simple returns of the two strategies, indexed by date; only the common,
        non-NaN dates are used, each series then treated as an unpaired sample.

    Returns
    -------
    TestResult
        ``statistic`` is ``U`` of ``a``; two-sided p-value from
        ``scipy.stats.mannwhitneyu`` (its defaults: automatic exact/asymptotic method,
        continuity correction).

    Notes
    -----
    NaN result when fewer than 3 paired days remain or both series are constant.

    References
    ----------
    .. [1] Mann, H. B. and Whitney, D. R. (1947). "On a Test of Whether one of Two Random
       Variables is Stochastically Larger than the Other". Annals of Mathematical
       Statistics, 18(1), 50-60.
    .. [2] SciPy ``scipy.stats.mannwhitneyu``,
       https://docs.scipy.org/doc/scipy/reference/generated/scipy.stats.mannwhitneyu.html
    """
    return mann_whitney_arrays(*_aligned_arrays(a, b))


def variance_test(a: pd.Series, b: pd.Series) -> TestResult:
    """Brown-Forsythe test of equal variances (Levene's test centred on the median).

    Parameters
    ----------
    a, b : pd.Series of shape (n_days,)
        Daily simple returns of the two strategies, indexed by date; only the common,
        non-NaN dates are used, each series then treated as an unpaired sample.

    Returns
    -------
    TestResult
        ``statistic`` is the Brown-Forsythe ``W`` (an F statistic with 1 and ``2n - 2``
        degrees of freedom); p-value from ``scipy.stats.levene(center="median")``.

    Notes
    -----
    NaN result when fewer than 3 paired days remain, both series are constant, or the
    statistic is otherwise undefined (zero within-group spread of absolute deviations).

    References
    ----------
    .. [1] Brown, M. B. and Forsythe, A. B. (1974). "Robust Tests for the Equality of
       Variances". Journal of the American Statistical Association, 69(346), 364-367.
    .. [2] SciPy ``scipy.stats.levene``,
       https://docs.scipy.org/doc/scipy/reference/generated/scipy.stats.levene.html
    """
    return variance_test_arrays(*_aligned_arrays(a, b))


def cohens_d(a: pd.Series, b: pd.Series) -> float:
    """Cohen's d of the daily returns: two-sample standardised mean difference.

    ``d = (mean(a) - mean(b)) / s_pooled`` with
    ``s_pooled = sqrt(((n_a - 1) var(a) + (n_b - 1) var(b)) / (n_a + n_b - 2))``, variances
    with ``ddof=1``, on the common non-NaN dates (so ``n_a = n_b``). Units: dimensionless;
    computed on daily simple returns, not annualised.

    Parameters
    ----------
    a, b : pd.Series of shape (n_days,)
        Daily simple returns of the two strategies, indexed by date.

    Returns
    -------
    float
        Cohen's d; NaN when fewer than 3 paired days remain or both series are constant.

    References
    ----------
    .. [1] Cohen, J. (1988). *Statistical Power Analysis for the Behavioral Sciences*, 2nd ed.,
       Lawrence Erlbaum, eq. 2.2.1 and 2.3.2.
    """
    pairs = _align(a, b)
    n = len(pairs)
    if n < _MIN_OBS or _both_constant(pairs):
        return _NAN
    x, y = pairs["a"].to_numpy(), pairs["b"].to_numpy()
    pooled = math.sqrt(((n - 1) * x.var(ddof=1) + (n - 1) * y.var(ddof=1)) / (2 * n - 2))
    if pooled == 0.0:
        return _NAN
    return float((x.mean() - y.mean()) / pooled)


_ADJUST_METHODS: Final[frozenset[str]] = frozenset({"holm", "fdr_bh"})


def adjust_pvalues(p: Sequence[float] | np.ndarray | pd.Series, method: str) -> np.ndarray:
    """Adjust a family of p-values for multiple testing.

    Parameters
    ----------
    p : array-like of shape (n_tests,)
        Raw p-values in ``[0, 1]``; NaN entries are excluded from the family and returned as NaN.
    method : {"holm", "fdr_bh"}
        ``"holm"``: Holm's step-down control of the family-wise error rate.
        ``"fdr_bh"``: Benjamini-Hochberg control of the false discovery rate.

    Returns
    -------
    ndarray of shape (n_tests,)
        Adjusted p-values (capped at 1), in the input order.

    Raises
    ------
    ConfigError
        If ``method`` is not one of the above.
    DataValidationError
        If a non-NaN p-value lies outside ``[0, 1]`` or ``p`` is not one-dimensional.

    References
    ----------
    .. [1] Holm, S. (1979). "A Simple Sequentially Rejective Multiple Test Procedure".
       Scandinavian Journal of Statistics, 6(2), 65-70.
    .. [2] Benjamini, Y. and Hochberg, Y. (1995). "Controlling the False Discovery Rate".
       Journal of the Royal Statistical Society B, 57(1), 289-300.
    .. [3] statsmodels ``statsmodels.stats.multitest.multipletests``,
       https://www.statsmodels.org/stable/generated/statsmodels.stats.multitest.multipletests.html
    """
    if method not in _ADJUST_METHODS:
        raise ConfigError(
            f"unknown p-value adjustment method {method!r}; use one of {sorted(_ADJUST_METHODS)}"
        )
    values = np.asarray(p, dtype=float)
    if values.ndim != 1:
        raise DataValidationError(f"p-values must be one-dimensional, got shape {values.shape}")
    out = np.full(values.shape, np.nan)
    finite = ~np.isnan(values)
    if np.any((values[finite] < 0.0) | (values[finite] > 1.0)):
        raise DataValidationError(f"p-values must lie in [0, 1], got {values[finite].tolist()}")
    if finite.any():
        out[finite] = (
            _holm(values[finite]) if method == "holm" else multipletests(values[finite], method=method)[1]
        )
    return out


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values: ``max_{j<=i} min(1, (m - j + 1) p_(j))`` in sorted order.

    Same numbers as ``multipletests(p, method="holm")`` (the tests check it), without the
    ``gc.collect()`` call statsmodels 0.15 makes on that path (hundreds of ms in a large process).
    """
    order = np.argsort(p, kind="stable")
    ranked = np.minimum(1.0, np.maximum.accumulate(p[order] * np.arange(p.size, 0, -1)))
    out = np.empty_like(ranked)
    out[order] = ranked
    return out
