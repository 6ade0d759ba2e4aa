"""Long-run variances: agreement with arch's own estimators (SPA studentisation, QS kernel)."""

from __future__ import annotations

import numpy as np
import pytest
from arch.bootstrap import SPA
from arch.covariance.kernel import QuadraticSpectral

from kallos.evaluation.longrun import prewhitened_qs_covariance, stationary_bootstrap_variance
from kallos.exceptions import DataValidationError


@pytest.fixture(scope="module")
def ar1() -> np.ndarray:
    rng = np.random.default_rng(3)
    e = rng.standard_t(5, size=(800, 3))
    x = np.empty_like(e)
    x[0] = e[0]
    for t in range(1, len(e)):
        x[t] = 0.5 * x[t - 1] + e[t]
    return x


def test_stationary_bootstrap_variance_is_the_one_arch_spa_studentises_with(ar1):
    spa = SPA(np.zeros(len(ar1)), -ar1, block_size=9)
    spa._compute_variance()  # arch's own (private) estimator, the reference
    np.testing.assert_allclose(stationary_bootstrap_variance(ar1, 9), spa._loss_diff_var, rtol=1e-10)


def test_stationary_bootstrap_variance_of_white_noise_is_its_variance():
    x = np.random.default_rng(0).standard_normal((20_000, 1))
    assert stationary_bootstrap_variance(x, 1.0)[0] == pytest.approx(x.var(), rel=1e-12)


def test_qs_kernel_sum_equals_arch_long_run(ar1):
    from kallos.evaluation.longrun import _kernel_long_run  # the FFT sum against arch's lag loop

    qs = QuadraticSpectral(ar1)
    np.testing.assert_allclose(
        _kernel_long_run(ar1 - ar1.mean(axis=0), np.asarray(qs.kernel_weights)),
        np.asarray(qs.cov.long_run),
        rtol=1e-10,
        atol=1e-12,
    )


def test_prewhitened_qs_recovers_an_ar1_long_run_variance():
    # AR(1) with phi = 0.5 and unit normal innovations: long-run variance 1 / (1 - 0.5)^2 = 4
    rng = np.random.default_rng(1)
    e = rng.standard_normal((20_000, 2))
    x = np.empty_like(e)
    x[0] = e[0]
    for t in range(1, len(e)):
        x[t] = 0.5 * x[t - 1] + e[t]
    omega = prewhitened_qs_covariance(x)
    np.testing.assert_allclose(np.diag(omega), 4.0, rtol=0.1)
    assert abs(omega[0, 1]) < 0.3 and np.allclose(omega, omega.T)


def test_long_run_variances_reject_bad_input():
    with pytest.raises(DataValidationError, match="NaN"):
        stationary_bootstrap_variance(np.array([1.0, np.nan, 2.0]), 2)
    with pytest.raises(DataValidationError, match="block_size"):
        stationary_bootstrap_variance(np.ones(10), 0.5)
    with pytest.raises(DataValidationError, match="observations"):
        prewhitened_qs_covariance(np.ones((5, 4)))
