"""Covariance estimators (PyPortfolioOpt risk models) on trailing daily returns, annualised × 365.

PyPortfolioOpt annualises with ``frequency=252`` (equity trading days) by default; crypto trades
every day, so every estimator here passes ``frequency=365`` (``PERIODS_PER_YEAR``). A matrix from
PyPortfolioOpt's defaults converts by ``× 365 / 252``.

Before estimation, extreme daily returns may be winsorised (``return_cap``): clipped to
``[1/(1+cap) - 1, cap]``, the symmetric log move, like the quality caps of the data stage.
Every estimate is repaired to positive semidefinite (PyPortfolioOpt
``fix_nonpositive_semidefinite``, spectral: negative eigenvalues set to 0).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from pypfopt import risk_models

from kallos.exceptions import ConfigError
from kallos.types import PERIODS_PER_YEAR

__all__ = ["COVARIANCE_ESTIMATORS", "cov_matrix", "halflife_to_span", "winsorize_returns"]

Estimator = Callable[[pd.DataFrame, int, float], pd.DataFrame]


def _sample(returns: pd.DataFrame, periods_per_year: int, halflife: float) -> pd.DataFrame:
    return risk_models.sample_cov(returns, returns_data=True, frequency=periods_per_year)


def _ledoit_wolf(returns: pd.DataFrame, periods_per_year: int, halflife: float) -> pd.DataFrame:
    shrink = risk_models.CovarianceShrinkage(returns, returns_data=True, frequency=periods_per_year)
    return shrink.ledoit_wolf()


def _exponential(returns: pd.DataFrame, periods_per_year: int, halflife: float) -> pd.DataFrame:
    with warnings.catch_warnings():  # PyPortfolioOpt warns for spans < 10 days
        warnings.simplefilter("ignore", UserWarning)
        return risk_models.exp_cov(
            returns, returns_data=True, span=halflife_to_span(halflife), frequency=periods_per_year
        )


COVARIANCE_ESTIMATORS: dict[str, Estimator] = {
    "sample": _sample,
    "ledoit_wolf": _ledoit_wolf,
    "exponential": _exponential,
}
"""Estimators by name: ``(returns, periods_per_year, halflife_days) -> annualised covariance``."""


def halflife_to_span(halflife: float) -> float:
    """The pandas ``ewm`` span with the same decay as a half-life in days.

    ``alpha = 1 - 0.5 ** (1 / halflife) = 2 / (span + 1)`` (pandas ``DataFrame.ewm`` docs).
    """
    if not halflife > 0:
        raise ConfigError(f"portfolio.cov_halflife={halflife} must be > 0 days")
    alpha = 1.0 - math.pow(0.5, 1.0 / halflife)
    return 2.0 / alpha - 1.0


def winsorize_returns(returns: pd.DataFrame, cap: float) -> pd.DataFrame:
    """Clip daily simple returns to ``[1/(1+cap) - 1, cap]`` (e.g. cap 5.0: -83.3% .. +500%)."""
    if not cap > 0:
        raise ConfigError(f"portfolio.cov_return_cap={cap} must be > 0")
    return returns.clip(lower=1.0 / (1.0 + cap) - 1.0, upper=cap)


def cov_matrix(
    returns: pd.DataFrame,
    method: str = "sample",
    periods_per_year: int = PERIODS_PER_YEAR,
    halflife: float = 60.0,
    return_cap: float | None = None,
) -> pd.DataFrame:
    """Annualised covariance of daily simple returns.

    Parameters
    ----------
    returns : DataFrame of shape (n_days, n_assets), daily simple returns (not percent).
        Rows with a missing value are dropped first (the window should be complete).
    method : a key of :data:`COVARIANCE_ESTIMATORS`: ``"sample"``, ``"ledoit_wolf"``
        (constant-variance shrinkage target) or ``"exponential"`` (half-life weighted).
    periods_per_year : 365 for daily crypto (PyPortfolioOpt's default would be 252).
    halflife : days, for ``"exponential"`` only.
    return_cap : winsorise returns at ``[1/(1+cap) - 1, cap]`` first; None = off.

    Returns
    -------
    DataFrame (n_assets, n_assets), annualised, symmetric positive semidefinite.

    Raises
    ------
    ConfigError
        For an unknown method, a non-positive half-life or cap.

    References
    ----------
    PyPortfolioOpt ``risk_models.sample_cov``, ``CovarianceShrinkage.ledoit_wolf``, ``exp_cov``
    and ``fix_nonpositive_semidefinite``; Ledoit & Wolf (2004), "Honey, I shrunk the sample
    covariance matrix"; RiskMetrics (1996) for exponential weighting.
    """
    if method not in COVARIANCE_ESTIMATORS:
        raise ConfigError(
            f"portfolio.covariance: unknown {method!r}; choose from {sorted(COVARIANCE_ESTIMATORS)}"
        )
    clean = returns.dropna(how="any")
    if return_cap is not None:
        clean = winsorize_returns(clean, return_cap)
    cov = COVARIANCE_ESTIMATORS[method](clean, periods_per_year, halflife)
    cov = (cov + cov.T) / 2
    if np.linalg.eigvalsh(cov.to_numpy()).min() < 0:
        with warnings.catch_warnings():  # PyPortfolioOpt warns that it repairs
            warnings.simplefilter("ignore", UserWarning)
            cov = risk_models.fix_nonpositive_semidefinite(cov, fix_method="spectral")
    return cov
