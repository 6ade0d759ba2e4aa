"""Tests of kallos.portfolio.covariance: agreement with numpy and scikit-learn, PSD, NaN policy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.covariance import LedoitWolf

from kallos.portfolio.covariance import COVARIANCE_ESTIMATORS, cov_matrix
from kallos.types import PERIODS_PER_YEAR

COINS = ["bitcoin", "ethereum", "solana", "cardano", "dogecoin"]


@pytest.fixture(scope="module")
def returns() -> pd.DataFrame:
    """120 days of correlated daily simple returns for 5 coins (seeded)."""
    rng = np.random.default_rng(42)
    mix = rng.normal(scale=0.02, size=(5, 5))
    r = rng.normal(size=(120, 5)) @ mix + 0.001
    days = pd.date_range("2023-01-01", periods=120, freq="D")
    return pd.DataFrame(r, index=days, columns=COINS)


def test_registry():
    assert set(COVARIANCE_ESTIMATORS) == {"sample", "ledoit_wolf"}
    assert PERIODS_PER_YEAR == 365


def test_sample_equals_numpy_cov_times_365(returns):
    cov = cov_matrix(returns, method="sample")
    expected = np.cov(returns.to_numpy(), rowvar=False, ddof=1) * 365
    np.testing.assert_allclose(cov.to_numpy(), expected, rtol=1e-12, atol=0)
    assert list(cov.index) == COINS and list(cov.columns) == COINS


def test_sample_is_the_default_and_periods_per_year_scales(returns):
    pd.testing.assert_frame_equal(cov_matrix(returns), cov_matrix(returns, method="sample"))
    np.testing.assert_allclose(
        cov_matrix(returns, periods_per_year=252).to_numpy(),
        cov_matrix(returns).to_numpy() * 252 / 365,
        rtol=1e-12,
    )


def test_ledoit_wolf_equals_sklearn_times_365(returns):
    # PyPortfolioOpt's CovarianceShrinkage.ledoit_wolf() (constant-variance target) calls
    # sklearn.covariance.ledoit_wolf on the returns and multiplies by the frequency, so it
    # matches sklearn's LedoitWolf exactly once annualised.
    cov = cov_matrix(returns, method="ledoit_wolf")
    lw = LedoitWolf().fit(returns.to_numpy())
    np.testing.assert_allclose(cov.to_numpy(), lw.covariance_ * 365, rtol=1e-12, atol=0)
    assert list(cov.index) == COINS and list(cov.columns) == COINS


def test_ledoit_wolf_shrinks_the_biased_sample_covariance(returns):
    # The documented difference from the "sample" estimator: sklearn (hence PyPortfolioOpt's
    # Ledoit-Wolf) shrinks the maximum-likelihood covariance, which divides by T, not T − 1:
    #   LW = (1 − δ) S_mle + δ · (tr S_mle / N) · I,   S_mle = S_sample × (T − 1) / T.
    t, n = returns.shape
    delta = LedoitWolf().fit(returns.to_numpy()).shrinkage_
    assert 0 < delta < 1
    s_mle = cov_matrix(returns, method="sample").to_numpy() * (t - 1) / t
    expected = (1 - delta) * s_mle + delta * np.trace(s_mle) / n * np.eye(n)
    np.testing.assert_allclose(cov_matrix(returns, method="ledoit_wolf").to_numpy(), expected, rtol=1e-10)
    # The trace (total variance) is preserved by the constant-variance target.
    assert np.trace(expected) == pytest.approx(np.trace(s_mle), rel=1e-12)


@pytest.mark.parametrize("method", ["sample", "ledoit_wolf"])
def test_symmetric_and_psd(returns, method):
    cov = cov_matrix(returns, method=method).to_numpy()
    np.testing.assert_allclose(cov, cov.T, rtol=0, atol=1e-15)
    assert np.linalg.eigvalsh(cov).min() > 0


@pytest.mark.filterwarnings("ignore:The covariance matrix is non positive semidefinite")
def test_ledoit_wolf_is_psd_with_more_assets_than_days():
    # 10 assets, 6 days: the sample covariance is singular (PyPortfolioOpt may clip tiny negative
    # eigenvalues from rounding, with a warning); the shrunk one is positive definite.
    rng = np.random.default_rng(3)
    r = pd.DataFrame(rng.normal(scale=0.03, size=(6, 10)), columns=[f"c{i}" for i in range(10)])
    cov = cov_matrix(r, method="ledoit_wolf").to_numpy()
    np.testing.assert_allclose(cov, cov.T, rtol=0, atol=1e-15)
    assert np.linalg.eigvalsh(cov).min() > 0
    sample = cov_matrix(r, method="sample").to_numpy()
    assert np.linalg.eigvalsh(sample).min() > -1e-12  # PSD up to rounding, but singular


@pytest.mark.parametrize("method", ["sample", "ledoit_wolf"])
def test_rows_with_nan_are_dropped(returns, method):
    dirty = returns.copy()
    dirty.iloc[3, 0] = np.nan
    dirty.iloc[10, 2] = np.nan
    dirty.iloc[50, :] = np.nan
    clean = returns.drop(index=returns.index[[3, 10, 50]])
    got = cov_matrix(dirty, method=method)
    pd.testing.assert_frame_equal(got, cov_matrix(clean, method=method), check_exact=False, rtol=1e-13)
    # Not pandas' pairwise-complete covariance, which would use every non-missing pair.
    pairwise = dirty.cov().to_numpy() * 365
    if method == "sample":
        assert not np.allclose(got.to_numpy(), pairwise, rtol=1e-9, atol=0)
