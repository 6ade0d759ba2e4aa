"""Probability of backtest overfitting by combinatorially symmetric cross-validation (CSCV)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from kallos.exceptions import ConfigError, DataValidationError

__all__ = ["OverfittingResult", "probability_of_backtest_overfitting"]


@dataclass(frozen=True)
class OverfittingResult:
    """Outcome of :func:`probability_of_backtest_overfitting`.

    Attributes
    ----------
    pbo : share of splits whose in-sample winner ranks below the out-of-sample median (logit <= 0).
    n_variants, n_splits : ``N`` strategies and ``S`` blocks.
    logits : ndarray of shape (C(S, S/2),), ``log(w / (1 - w))`` of the winner's relative OOS rank ``w``.
    """

    pbo: float
    n_variants: int
    n_splits: int
    logits: np.ndarray


def probability_of_backtest_overfitting(returns: pd.DataFrame, n_splits: int = 16) -> OverfittingResult:
    """CSCV estimate of the probability of backtest overfitting, with the Sharpe ratio as the metric.

    The ``T x N`` matrix of daily returns (rows with a NaN dropped) is cut into ``S`` contiguous
    blocks of (nearly) equal length. For each of the ``C(S, S/2)`` ways to choose half the
    blocks as in-sample (IS) and the rest as out-of-sample (OOS), the variant with the best IS
    Sharpe ratio is picked, its OOS Sharpe is ranked among all ``N`` OOS Sharpe ratios
    (average rank for ties, 1 = worst), ``w = rank / (N + 1)`` and ``logit = log(w / (1 - w))``.
    PBO is the share of splits with ``logit <= 0``. Block sums of ``r`` and ``r^2`` are combined
    by one matrix product, so all splits are computed at once.

    Parameters
    ----------
    returns : pd.DataFrame of shape (T, N)
        Daily simple returns, one column per variant (N >= 2).
    n_splits : int, default 16
        Even number of blocks ``S`` (16 gives 12,870 splits).

    Returns
    -------
    OverfittingResult

    Raises
    ------
    ConfigError
        If ``n_splits`` is odd or below 2.
    DataValidationError
        If there are fewer than 2 variants or fewer than ``2 * n_splits`` complete rows.

    References
    ----------
    .. [1] Bailey, D. H., Borwein, J. M., López de Prado, M. and Zhu, Q. J. (2017). "The
       Probability of Backtest Overfitting". Journal of Computational Finance, 20(4), 39-69,
       section 2 (CSCV algorithm).
    """
    if n_splits < 2 or n_splits % 2:
        raise ConfigError(f"PBO n_splits must be an even number >= 2, got {n_splits}")
    data = returns.dropna().to_numpy(dtype=float)
    t, n = data.shape
    if n < 2:
        raise DataValidationError(f"PBO needs at least 2 variants, got {n} ({list(returns.columns)})")
    if t < 2 * n_splits:
        raise DataValidationError(f"PBO needs at least {2 * n_splits} complete days, got {t}")
    block = np.array_split(np.arange(t), n_splits)
    sums = np.stack([data[b].sum(axis=0) for b in block])  # (S, N)
    squares = np.stack([(data[b] ** 2).sum(axis=0) for b in block])
    counts = np.array([len(b) for b in block], dtype=float)
    combos = np.array(list(itertools.combinations(range(n_splits), n_splits // 2)))
    is_mask = np.zeros((len(combos), n_splits))
    np.put_along_axis(is_mask, combos, 1.0, axis=1)
    oos_mask = 1.0 - is_mask

    def _sharpe(mask: np.ndarray) -> np.ndarray:
        size = (mask @ counts)[:, None]
        mean = (mask @ sums) / size
        var = ((mask @ squares) - size * mean**2) / (size - 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return mean / np.sqrt(np.maximum(var, 0.0))

    sharpe_is, sharpe_oos = _sharpe(is_mask), _sharpe(oos_mask)
    winner = np.nanargmax(np.nan_to_num(sharpe_is, nan=-np.inf), axis=1)
    ranks = stats.rankdata(np.nan_to_num(sharpe_oos, nan=-np.inf), axis=1)
    w = ranks[np.arange(len(combos)), winner] / (n + 1.0)
    logits = np.log(w / (1.0 - w))
    return OverfittingResult(float(np.mean(logits <= 0.0)), n, n_splits, logits)
