"""Covariance estimators (PyPortfolioOpt risk models) on trailing daily returns."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from pypfopt import risk_models

from kallos.types import PERIODS_PER_YEAR

__all__ = ["COVARIANCE_ESTIMATORS", "cov_matrix"]


def _sample(returns: pd.DataFrame, periods_per_year: int) -> pd.DataFrame:
    return risk_models.sample_cov(returns, returns_data=True, frequency=periods_per_year)


def _ledoit_wolf(returns: pd.DataFrame, periods_per_year: int) -> pd.DataFrame:
    shrink = risk_models.CovarianceShrinkage(returns, returns_data=True, frequency=periods_per_year)
    return shrink.ledoit_wolf()


COVARIANCE_ESTIMATORS: dict[str, Callable[[pd.DataFrame, int], pd.DataFrame]] = {
    "sample": _sample,
    "ledoit_wolf": _ledoit_wolf,
}


def cov_matrix(
    returns: pd.DataFrame, method: str = "sample", periods_per_year: int = PERIODS_PER_YEAR
) -> pd.DataFrame:
    """Annualised covariance of daily simple returns.

    Parameters
    ----------
    returns : DataFrame of shape (n_days, n_assets), daily simple returns (not percent).
        Rows with a missing value are dropped first (the window should be complete).
    method : ``"sample"`` or ``"ledoit_wolf"`` (constant-variance shrinkage target).
    periods_per_year : 365 for daily crypto.

    Returns
    -------
    DataFrame (n_assets, n_assets), annualised, positive semidefinite (PyPortfolioOpt
    repairs a non-PSD sample matrix by spectral clipping).

    References
    ----------
    PyPortfolioOpt ``risk_models.sample_cov`` and ``CovarianceShrinkage.ledoit_wolf``;
    Ledoit & Wolf (2004), "Honey, I shrunk the sample covariance matrix".
    """
    clean = returns.dropna(how="any")
    return COVARIANCE_ESTIMATORS[method](clean, periods_per_year)
