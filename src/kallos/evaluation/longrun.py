"""Long-run (HAC) variances of the mean of a time series, for studentising test statistics.

Two estimators, each matched to where it is used:

* :func:`stationary_bootstrap_variance`: the variance that the stationary bootstrap itself
  implies (Politis and Romano's kernel). Studentising a loss differential by it before handing
  it to :mod:`arch.bootstrap` makes the bootstrap statistics have unit variance, which is what
  Hansen's (2005) studentised SPA statistic and Romano and Wolf's (2005) studentised StepM do.
* :func:`prewhitened_qs_covariance`: Andrews and Monahan's (1992) VAR(1)-prewhitened
  quadratic-spectral kernel estimator, the estimator Ledoit and Wolf (2008, section 3.1) use for
  their HAC test of equal Sharpe ratios. The kernel and its automatic bandwidth come from
  :class:`arch.covariance.kernel.QuadraticSpectral`.

Both take data of shape (T, k) (rows are days) and return variances of ``sqrt(T) * mean``,
i.e. long-run variances ``Omega`` such that ``Var(mean) ~ Omega / T``.
"""

from __future__ import annotations

import numpy as np
from arch.covariance.kernel import QuadraticSpectral

from kallos.exceptions import DataValidationError

__all__ = ["prewhitened_qs_covariance", "stationary_bootstrap_variance"]


def _as_2d(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise DataValidationError(f"expected data of shape (T, k), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise DataValidationError("long-run variance: the data hold NaN or infinite values")
    return a


def stationary_bootstrap_variance(x: np.ndarray, block_size: float) -> np.ndarray:
    """Long-run variance of each column implied by the stationary bootstrap.

    .. math::

        \\hat\\omega^2 = \\hat\\gamma_0 + 2 \\sum_{i=1}^{T-1} \\kappa(T, i)\\, \\hat\\gamma_i, \\qquad
        \\kappa(T, i) = \\left(1 - \\tfrac{i}{T}\\right)(1 - q)^i + \\tfrac{i}{T}(1 - q)^{T - i}

    with ``q = 1 / block_size`` and autocovariances ``gamma_i`` (divisor ``T``) of the demeaned
    columns, computed for all lags at once by FFT.

    Parameters
    ----------
    x : ndarray of shape (T,) or (T, k)
        The series (e.g. daily loss differentials); no NaN.
    block_size : float
        Expected block length of the stationary bootstrap (``>= 1``).

    Returns
    -------
    ndarray of shape (k,)
        ``omega^2`` per column (the variance of ``sqrt(T) * mean``); 0 for a constant column.

    Raises
    ------
    DataValidationError
        For fewer than 2 rows, non-finite data or ``block_size < 1``.

    References
    ----------
    .. [1] Politis, D. N. and Romano, J. P. (1994). "The Stationary Bootstrap". Journal of the
       American Statistical Association, 89(428), 1303-1313.
    .. [2] Hansen, P. R. (2005). "A Test for Superior Predictive Ability". Journal of Business &
       Economic Statistics, 23(4), 365-380, section 2.3; the same estimator as
       ``arch.bootstrap.SPA`` (non-nested studentisation).
    """
    a = _as_2d(x)
    t = a.shape[0]
    if t < 2:
        raise DataValidationError(f"long-run variance needs at least 2 observations, got {t}")
    if not block_size >= 1:
        raise DataValidationError(f"block_size must be >= 1, got {block_size}")
    z = a - a.mean(axis=0)
    n_fft = 1 << (2 * t - 1).bit_length()
    spectrum = np.fft.rfft(z, n=n_fft, axis=0)
    gamma = np.fft.irfft(spectrum * np.conj(spectrum), n=n_fft, axis=0)[:t] / t  # (T, k), lags 0..T-1
    q = 1.0 / float(block_size)
    i = np.arange(1, t)
    kappa = (1.0 - i / t) * (1.0 - q) ** i + (i / t) * (1.0 - q) ** (t - i)
    omega = gamma[0] + 2.0 * (kappa[:, None] * gamma[1:]).sum(axis=0)
    return np.maximum(omega, 0.0)


def _kernel_long_run(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``Gamma_0 + sum_{i>=1} w_i (Gamma_i + Gamma_i')`` with ``Gamma_i = x[i:]' x[:-i] / T``, by FFT.

    Equal to ``arch``'s ``CovarianceEstimator.cov.long_run`` for the same kernel weights (a test
    checks it), without its per-lag loop (every lag of the QS kernel has a weight).
    """
    t = x.shape[0]
    n_fft = 1 << (2 * t - 1).bit_length()
    f = np.fft.rfft(x, n=n_fft, axis=0)  # (n_fft/2+1, k)
    # cross[j, a, b] = sum_t x_a(t + j) x_b(t) / T for lags j = 0..T-1
    cross = np.fft.irfft(f[:, :, None] * np.conj(f[:, None, :]), n=n_fft, axis=0)[:t] / t
    weights = np.zeros(t)
    weights[: min(t, w.size)] = w[:t]
    one_sided = np.einsum("j,jab->ab", weights[1:], cross[1:])
    return cross[0] + one_sided + one_sided.T


def prewhitened_qs_covariance(x: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Prewhitened quadratic-spectral HAC estimate of the long-run covariance of the columns of ``x``.

    The demeaned data are prewhitened by a VAR(1) fitted by least squares,
    ``z_t = A z_{t-1} + e_t``; the long-run covariance of the residuals is the quadratic-spectral
    kernel estimate with automatic bandwidth (:class:`arch.covariance.kernel.QuadraticSpectral`,
    bandwidth chosen on ``e @ weights``), and it is recoloured,
    ``Omega = (I - A)^{-1} Omega_e (I - A)^{-1}'``. As in Ledoit and Wolf (2008), the estimate is
    scaled by ``T / (T - k)`` for the ``k`` estimated moments.

    Parameters
    ----------
    x : ndarray of shape (T, k)
        Moment series (e.g. ``(r_a, r_b, r_a^2, r_b^2)``); no NaN.
    weights : ndarray of shape (k,), optional
        Non-negative weights of the linear combination that drives the bandwidth choice (the
        delta-method gradient); default equal weights.

    Returns
    -------
    ndarray of shape (k, k)
        Long-run covariance ``Omega`` (``Var(mean) ~ Omega / T``).

    Raises
    ------
    DataValidationError
        For fewer than ``k + 3`` rows or non-finite data.

    References
    ----------
    .. [1] Andrews, D. W. K. and Monahan, J. C. (1992). "An Improved Heteroskedasticity and
       Autocorrelation Consistent Covariance Matrix Estimator". Econometrica, 60(4), 953-966.
    .. [2] Andrews, D. W. K. (1991). "Heteroskedasticity and Autocorrelation Consistent
       Covariance Matrix Estimation". Econometrica, 59(3), 817-858 (the QS kernel).
    .. [3] Ledoit, O. and Wolf, M. (2008). "Robust performance hypothesis testing with the Sharpe
       ratio". Journal of Empirical Finance, 15(5), 850-859, section 3.1.
    .. [4] arch ``arch.covariance.kernel.QuadraticSpectral`` (automatic bandwidth of Newey and
       West, 1994).
    """
    a = _as_2d(x)
    t, k = a.shape
    if t < k + 3:
        raise DataValidationError(f"prewhitened HAC needs at least {k + 3} observations, got {t}")
    z = a - a.mean(axis=0)
    lagged, current = z[:-1], z[1:]
    coef, *_ = np.linalg.lstsq(lagged, current, rcond=None)  # current ~ lagged @ coef
    var_a = coef.T  # z_t = A z_{t-1} + e_t
    resid = current - lagged @ coef
    w = None if weights is None else np.abs(np.asarray(weights, dtype=float))
    if w is not None and not np.any(w > 0):
        w = None
    kernel = QuadraticSpectral(resid, weights=w)
    omega_e = _kernel_long_run(resid - resid.mean(axis=0), np.asarray(kernel.kernel_weights, dtype=float))
    inv = np.linalg.pinv(np.eye(k) - var_a)
    omega = inv @ np.asarray(omega_e) @ inv.T
    return omega * t / (t - k)
