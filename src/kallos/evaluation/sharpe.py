"""Sharpe-ratio inference: PSR, DSR, minimum track record length and the Ledoit-Wolf (2008) test.

Inputs are daily simple returns (not percent). Sharpe ratios inside the formulas are *per
period* (daily, risk-free rate 0); anything labelled ``annual`` is multiplied by
``sqrt(periods_per_year)`` (365 by default). Skewness is the sample skewness and kurtosis is
the *raw* (non-excess) kurtosis, as in Bailey and López de Prado (a normal sample has 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy import stats

from kallos.evaluation.bootstrap import Draws
from kallos.evaluation.longrun import prewhitened_qs_covariance
from kallos.evaluation.significance import newey_west_maxlags
from kallos.exceptions import DataValidationError
from kallos.types import PERIODS_PER_YEAR

__all__ = [
    "SharpeStats",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "ledoit_wolf_2008",
    "ledoit_wolf_from_block_sums",
    "min_track_record_length",
    "probabilistic_sharpe_ratio",
    "sharpe_stats",
]

_NAN: Final[float] = float("nan")
EULER_GAMMA: Final[float] = 0.5772156649015329


@dataclass(frozen=True)
class SharpeStats:
    """Moments of one daily return series used by PSR/DSR.

    Attributes
    ----------
    sharpe : per-period (daily) Sharpe ratio ``mean / std`` (``ddof=1``).
    skew : sample skewness (biased estimator, as in the papers).
    kurtosis : raw kurtosis (3 for a normal sample).
    n : number of observations.
    """

    sharpe: float
    skew: float
    kurtosis: float
    n: int


def sharpe_stats(returns: np.ndarray) -> SharpeStats:
    """Per-period Sharpe ratio, skewness and raw kurtosis of a 1-d array (NaNs dropped).

    Returns NaN moments for fewer than 3 observations or zero variance.
    """
    r = np.asarray(returns, dtype=float)
    r = r[~np.isnan(r)]
    n = int(r.size)
    if n < 3 or np.ptp(r) <= 1e-12 * max(float(np.max(np.abs(r))), 1e-300):
        return SharpeStats(_NAN, _NAN, _NAN, n)
    return SharpeStats(
        sharpe=float(r.mean() / r.std(ddof=1)),
        skew=float(stats.skew(r)),
        kurtosis=float(stats.kurtosis(r, fisher=False)),
        n=n,
    )


def _sr_sigma(sharpe: float, skew: float, kurtosis: float) -> float:
    """``sqrt(1 - skew * SR + (kurtosis - 1) / 4 * SR^2)``, the non-normal SR standard error factor."""
    var = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    return math.sqrt(var) if var > 0.0 else _NAN


def probabilistic_sharpe_ratio(
    sharpe: float, n: int, skew: float = 0.0, kurtosis: float = 3.0, sharpe_benchmark: float = 0.0
) -> float:
    """Probabilistic Sharpe ratio: the probability that the true Sharpe exceeds ``sharpe_benchmark``.

    .. math::

        PSR(SR^*) = \\Phi\\left(\\frac{(\\widehat{SR} - SR^*)\\sqrt{n - 1}}
            {\\sqrt{1 - \\gamma_3 \\widehat{SR} + \\frac{\\gamma_4 - 1}{4}\\widehat{SR}^2}}\\right)

    Parameters
    ----------
    sharpe, sharpe_benchmark : float
        Observed and benchmark Sharpe ratios, *per period* (daily, not annualised).
    n : int
        Number of return observations.
    skew, kurtosis : float
        Skewness and raw kurtosis (normal: 0 and 3) of the returns.

    Returns
    -------
    float
        PSR in ``[0, 1]``; NaN when an input is NaN, ``n < 2`` or the variance factor is not positive.

    References
    ----------
    .. [1] Bailey, D. H. and López de Prado, M. (2012). "The Sharpe Ratio Efficient Frontier".
       Journal of Risk, 15(2), 3-44, eq. (11).
    """
    if n < 2 or not all(math.isfinite(v) for v in (sharpe, skew, kurtosis, sharpe_benchmark)):
        return _NAN
    sigma = _sr_sigma(sharpe, skew, kurtosis)
    if not math.isfinite(sigma):
        return _NAN
    return float(stats.norm.cdf((sharpe - sharpe_benchmark) * math.sqrt(n - 1) / sigma))


def min_track_record_length(
    sharpe: float,
    skew: float = 0.0,
    kurtosis: float = 3.0,
    sharpe_benchmark: float = 0.0,
    alpha: float = 0.05,
) -> float:
    """Minimum track record length (in periods) for ``PSR(sharpe_benchmark) >= 1 - alpha``.

    .. math:: minTRL = 1 + \\left(1 - \\gamma_3 \\widehat{SR}
        + \\frac{\\gamma_4 - 1}{4}\\widehat{SR}^2\\right)
        \\left(\\frac{z_{1-\\alpha}}{\\widehat{SR} - SR^*}\\right)^2

    Parameters
    ----------
    sharpe, sharpe_benchmark : float
        Per-period (daily) Sharpe ratios.
    skew, kurtosis : float
        Skewness and raw kurtosis of the returns.
    alpha : float, default 0.05
        One-sided significance level.

    Returns
    -------
    float
        Number of periods (days for daily returns); ``inf`` when ``sharpe <= sharpe_benchmark``
        (no track record is long enough); NaN for NaN input.

    References
    ----------
    .. [1] Bailey, D. H. and López de Prado, M. (2012). "The Sharpe Ratio Efficient Frontier".
       Journal of Risk, 15(2), 3-44, eq. (13).
    """
    if not all(math.isfinite(v) for v in (sharpe, skew, kurtosis, sharpe_benchmark)):
        return _NAN
    if sharpe <= sharpe_benchmark:
        return math.inf
    sigma = _sr_sigma(sharpe, skew, kurtosis)
    z = float(stats.norm.ppf(1.0 - alpha))
    return 1.0 + sigma**2 * (z / (sharpe - sharpe_benchmark)) ** 2


def expected_max_sharpe(sharpe_variance: float, n_trials: int) -> float:
    """Expected maximum of ``n_trials`` Sharpe estimates under a zero true Sharpe (the DSR threshold).

    .. math:: SR_0 = \\sqrt{V[\\{\\widehat{SR}_n\\}]}\\left((1-\\gamma)\\Phi^{-1}(1 - 1/N)
        + \\gamma\\Phi^{-1}(1 - 1/(N e))\\right)

    with the Euler-Mascheroni constant ``gamma``. Units follow ``sharpe_variance``
    (per-period Sharpe variance gives a per-period threshold). Returns 0 for ``n_trials <= 1``.

    Raises
    ------
    DataValidationError
        If ``sharpe_variance`` is negative.

    References
    ----------
    .. [1] Bailey, D. H. and López de Prado, M. (2014). "The Deflated Sharpe Ratio: Correcting
       for Selection Bias, Backtest Overfitting and Non-Normality". Journal of Portfolio
       Management, 40(5), 94-107, eq. (2).
    """
    if sharpe_variance < 0.0:
        raise DataValidationError(f"sharpe_variance must be non-negative, got {sharpe_variance}")
    if n_trials <= 1:
        return 0.0
    quantiles = (1.0 - EULER_GAMMA) * stats.norm.ppf(1.0 - 1.0 / n_trials) + EULER_GAMMA * stats.norm.ppf(
        1.0 - 1.0 / (n_trials * math.e)
    )
    return float(math.sqrt(sharpe_variance) * quantiles)


def deflated_sharpe_ratio(
    sharpe: float, n: int, skew: float, kurtosis: float, sharpe_variance: float, n_trials: int
) -> float:
    """Deflated Sharpe ratio: PSR against the expected maximum Sharpe of ``n_trials`` null trials.

    ``DSR = PSR(SR_0)`` with ``SR_0 = expected_max_sharpe(sharpe_variance, n_trials)``; all
    Sharpe quantities per period (daily).

    References
    ----------
    .. [1] Bailey, D. H. and López de Prado, M. (2014). "The Deflated Sharpe Ratio". Journal of
       Portfolio Management, 40(5), 94-107, eq. (3); their worked example (annual SR 2.5 over
       1250 days, skew -3, kurtosis 10, N = 100, annual V = 0.5) gives DSR = 0.9004.
    """
    if not math.isfinite(sharpe_variance):
        return _NAN
    threshold = expected_max_sharpe(sharpe_variance, n_trials)
    return probabilistic_sharpe_ratio(sharpe, n, skew, kurtosis, sharpe_benchmark=threshold)


# ---------------------------------------------------------------- Ledoit & Wolf (2008)


def _sharpe_diff_and_grad(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sharpe difference ``f(u)`` and its gradient for moment vectors ``u = (m_a, m_b, q_a, q_b)``.

    ``u`` has shape (..., 4) with means ``m`` and uncentred second moments ``q``; returns
    shapes (...,) and (..., 4). Ledoit and Wolf (2008), section 2.
    """
    m_a, m_b, q_a, q_b = u[..., 0], u[..., 1], u[..., 2], u[..., 3]
    var_a, var_b = q_a - m_a**2, q_b - m_b**2
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = m_a / np.sqrt(var_a) - m_b / np.sqrt(var_b)
        grad = np.stack(
            [q_a / var_a**1.5, -q_b / var_b**1.5, -0.5 * m_a / var_a**1.5, 0.5 * m_b / var_b**1.5], axis=-1
        )
    return diff, grad


def _hac_psi(y: np.ndarray, lags: int) -> np.ndarray:
    """Newey-West (Bartlett) long-run covariance of the rows of ``y`` (shape (T, k))."""
    z = y - y.mean(axis=0)
    t = z.shape[0]
    psi = z.T @ z / t
    for lag in range(1, lags + 1):
        gamma = z[lag:].T @ z[:-lag] / t
        psi += (1.0 - lag / (lags + 1.0)) * (gamma + gamma.T)
    return psi


@dataclass(frozen=True)
class LedoitWolfResult:
    """Outcome of :func:`ledoit_wolf_2008` (Sharpe ratios per period, ``ddof=0`` as in the paper).

    ``p_value`` is the asymptotic two-sided p-value of the studentised statistic;
    ``p_value_bootstrap`` the studentised block-bootstrap one (a diagnostic, floored at 1/(M+1)).
    """

    statistic: float
    p_value: float
    sharpe_diff: float
    se: float
    boot_sharpe_diff: np.ndarray
    p_value_bootstrap: float = _NAN


def ledoit_wolf_2008(
    x: np.ndarray, y: np.ndarray, draws: Draws, maxlags: int | None = None
) -> LedoitWolfResult:
    """Robust test of equal Sharpe ratios (Ledoit & Wolf 2008): HAC p-value, bootstrap interval.

    The statistic is ``Δ / s(Δ)`` with ``Δ = SR_x - SR_y`` (per period, ``ddof=0``) and the
    delta-method standard error from the **prewhitened quadratic-spectral** HAC estimate of the
    long-run covariance of ``(x, y, x^2, y^2)`` (the paper's section 3.1;
    :func:`kallos.evaluation.longrun.prewhitened_qs_covariance`). Its p-value is the asymptotic
    two-sided normal one. We chose it over the studentised bootstrap p-value of section 3.2
    because a bootstrap p-value cannot fall below ``1/(M+1)``: over a family of ``m`` tests a
    Holm or Bonferroni correction can then never reject once ``m/(M+1) >= alpha`` (with 1,000
    resamples and 261 tests it never could), whereas the HAC p-value is continuous and its size
    is measured by simulation in :mod:`kallos.evaluation.calibration`.

    The studentised circular block bootstrap is still computed: each resample re-studentises
    with the "natural" block estimate ``Ψ* = (1/T) Σ_j (S_j - l_j ū*)(S_j - l_j ū*)'`` over its
    blocks ``j`` (block sums ``S_j`` of length ``l_j``; Götze and Künsch, 1996), giving
    ``p_value_bootstrap = (#{|Δ* - Δ| / s(Δ*) >= |Δ| / s(Δ)} + 1) / (M + 1)`` and the draws behind
    the percentile confidence interval.

    Parameters
    ----------
    x, y : ndarray of shape (T,)
        Paired daily simple returns, no NaN.
    draws : Draws
        Circular block bootstrap draws for ``T`` days (shared across pairs).
    maxlags : int, optional
        Use a Newey-West (Bartlett) estimate with this many lags instead of the prewhitened QS
        kernel (``0`` gives the i.i.d. delta method).

    Returns
    -------
    LedoitWolfResult
        ``statistic`` (studentised Δ), ``p_value`` (asymptotic), ``sharpe_diff`` (Δ, per period),
        ``se``, the bootstrap draws ``boot_sharpe_diff`` of shape (M,) and ``p_value_bootstrap``.
        NaN statistic/p when a series has zero variance.

    References
    ----------
    .. [1] Ledoit, O. and Wolf, M. (2008). "Robust performance hypothesis testing with the
       Sharpe ratio". Journal of Empirical Finance, 15(5), 850-859, section 3.2.
    .. [2] Götze, F. and Künsch, H. R. (1996). "Second-order correctness of the blockwise
       bootstrap for stationary observations". Annals of Statistics, 24(5), 1914-1933.
    """
    moments = np.column_stack([x, y, x**2, y**2])
    return ledoit_wolf_from_block_sums(moments, draws.block_sums(moments), draws.block_sizes, maxlags)


def ledoit_wolf_from_block_sums(
    moments: np.ndarray, sums: np.ndarray, block_sizes: np.ndarray, maxlags: int | None = None
) -> LedoitWolfResult:
    """:func:`ledoit_wolf_2008` from ``moments = (x, y, x^2, y^2)`` (shape (T, 4)), their
    bootstrap block sums (four arrays of shape (M, n_blocks), e.g. :meth:`Draws.block_sums`) and the block
    lengths (shape (n_blocks,)), so a caller can compute block sums once per strategy and
    share them across pairs."""
    t = moments.shape[0]
    u = moments.mean(axis=0)
    diff, grad = _sharpe_diff_and_grad(u)
    if maxlags is not None:
        psi = _hac_psi(moments, maxlags)
    elif np.all(np.isfinite(grad)) and t >= 10:
        psi = prewhitened_qs_covariance(moments, weights=grad)
    else:
        psi = _hac_psi(moments, newey_west_maxlags(t))
    se = float(math.sqrt(max(grad @ psi @ grad, 0.0) / t)) if np.all(np.isfinite(grad)) else _NAN
    u_star = np.stack([s.sum(axis=1) for s in sums]) / t  # (4, M)
    diff_star, grad_star = _sharpe_diff_and_grad(u_star.T)  # (M,), (M, 4)
    # grad' Psi* grad with Psi* = (1/t) sum_j c_j c_j', c_j = S_j - l_j u*: a sum of squared projections;
    # sum_c g_c (S_c - l u*_c) = sum_c g_c S_c - l (g . u*)
    projected = -np.einsum("mc,cm->m", grad_star, u_star)[:, None] * block_sizes[None, :]
    for c in range(4):
        projected += grad_star[:, c, None] * sums[c]
    se_star = np.sqrt(np.einsum("mb,mb->m", projected, projected) / t) / math.sqrt(t)
    if not (math.isfinite(float(diff)) and se > 0.0):
        return LedoitWolfResult(_NAN, _NAN, float(diff), se, diff_star)
    stat = float(diff) / se
    with np.errstate(invalid="ignore", divide="ignore"):
        boot_stats = np.abs(diff_star - diff) / se_star
    valid = np.isfinite(boot_stats)
    p_boot = (float(np.sum(boot_stats[valid] >= abs(stat))) + 1.0) / (float(valid.sum()) + 1.0)
    p_value = float(2.0 * stats.norm.sf(abs(stat)))
    return LedoitWolfResult(stat, p_value, float(diff), se, diff_star, p_boot)


def annualise_sharpe(sharpe: float | np.ndarray, periods_per_year: int = PERIODS_PER_YEAR):
    """Per-period Sharpe ratio times ``sqrt(periods_per_year)`` (scalars or arrays)."""
    return sharpe * math.sqrt(periods_per_year)
