"""Tests of kallos.portfolio.covariance: agreement with numpy, scikit-learn and PyPortfolioOpt, PSD, NaNs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pypfopt import risk_models
from sklearn.covariance import LedoitWolf

from kallos.exceptions import ConfigError
from kallos.portfolio.covariance import COVARIANCE_ESTIMATORS, cov_matrix, halflife_to_span, winsorize_returns
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
    assert set(COVARIANCE_ESTIMATORS) == {"sample", "ledoit_wolf", "exponential"}
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


@pytest.mark.parametrize("method", sorted(COVARIANCE_ESTIMATORS))
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


def test_halflife_to_span_known_answers():
    # Half-life 1 day: alpha = 1 − 0.5 = 0.5 = 2 / (span + 1) → span 3.
    assert halflife_to_span(1.0) == pytest.approx(3.0, rel=1e-15)
    # Both describe the same decay: (1 − alpha)^halflife = 1/2.
    alpha = 2 / (halflife_to_span(30.0) + 1)
    assert (1 - alpha) ** 30 == pytest.approx(0.5, rel=1e-12)
    with pytest.raises(ConfigError, match="cov_halflife"):
        halflife_to_span(0.0)


def test_exponential_equals_the_weighted_formula(returns):
    # pandas ewm(adjust=True) mean of the demeaned cross products: weights (1 − alpha)^age,
    # age 0 for the newest day, alpha = 1 − 0.5^(1/halflife); then × 365.
    h = 20.0
    x = returns.to_numpy()
    age = np.arange(len(x))[::-1]
    wts = (0.5 ** (1 / h)) ** age
    d = x - x.mean(axis=0)
    expected = (d * wts[:, None]).T @ d / wts.sum() * 365
    got = cov_matrix(returns, method="exponential", halflife=h)
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-10)
    assert list(got.index) == COINS


def test_exponential_converts_from_pypfopt_default_frequency(returns):
    # PyPortfolioOpt annualises with 252 by default; ours is × 365: the ratio is exactly 365/252.
    span = halflife_to_span(45.0)
    theirs = risk_models.exp_cov(returns, returns_data=True, span=span)
    ours = cov_matrix(returns, method="exponential", halflife=45.0)
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy() * 365 / 252, rtol=1e-12)
    # A long half-life approaches the (biased) sample covariance.
    flat = cov_matrix(returns, method="exponential", halflife=1e9).to_numpy()
    t = len(returns)
    np.testing.assert_allclose(flat, cov_matrix(returns).to_numpy() * (t - 1) / t, rtol=1e-6)


def test_winsorize_caps_extreme_days(returns):
    wild = returns.copy()
    wild.iloc[5, 1] = 9.0  # +900 %
    wild.iloc[7, 2] = -0.95  # −95 %
    # cap 1.0: clip to [1/2 − 1, 1] = [−0.5, +1.0].
    clipped = winsorize_returns(wild, 1.0)
    assert clipped.iloc[5, 1] == 1.0 and clipped.iloc[7, 2] == -0.5
    pd.testing.assert_frame_equal(clipped.drop(index=wild.index[[5, 7]]), wild.drop(index=wild.index[[5, 7]]))
    for method in COVARIANCE_ESTIMATORS:
        pd.testing.assert_frame_equal(cov_matrix(wild, method, return_cap=1.0), cov_matrix(clipped, method))
    assert cov_matrix(wild, return_cap=1.0).iloc[1, 1] < cov_matrix(wild).iloc[1, 1] / 5
    with pytest.raises(ConfigError, match="cov_return_cap"):
        winsorize_returns(wild, -1.0)


def test_unknown_method_raises(returns):
    with pytest.raises(ConfigError, match=r"portfolio\.covariance: unknown 'nope'"):
        cov_matrix(returns, method="nope")


def test_non_psd_input_is_repaired(monkeypatch, returns):
    # Force an indefinite estimate through the registry: the eigenvalue clip repairs it.
    bad = pd.DataFrame([[1.0, 2.0], [2.0, 1.0]], index=["a", "b"], columns=["a", "b"])  # eigenvalues 3, −1
    monkeypatch.setitem(COVARIANCE_ESTIMATORS, "bad", lambda r, p, h: bad)
    fixed = cov_matrix(returns[["bitcoin", "ethereum"]], method="bad").to_numpy()
    np.testing.assert_allclose(fixed, [[1.5, 1.5], [1.5, 1.5]], atol=1e-12)  # 3 · vv', v = (1, 1)/√2
