"""Tests of kallos.evaluation.overfitting: CSCV PBO against a loop and on constructed cases."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from kallos.evaluation.overfitting import probability_of_backtest_overfitting
from kallos.exceptions import ConfigError, DataValidationError


def _loop_pbo(data: np.ndarray, splits: int) -> tuple[float, np.ndarray]:
    """Bailey et al. (2017) CSCV, written as the paper's loop over the C(S, S/2) splits."""
    blocks = np.array_split(np.arange(data.shape[0]), splits)
    n = data.shape[1]
    logits = []
    for combo in itertools.combinations(range(splits), splits // 2):
        is_rows = np.concatenate([blocks[i] for i in combo])
        oos_rows = np.concatenate([blocks[i] for i in range(splits) if i not in combo])
        sr_is = data[is_rows].mean(0) / data[is_rows].std(0, ddof=1)
        sr_oos = data[oos_rows].mean(0) / data[oos_rows].std(0, ddof=1)
        rank = pd.Series(sr_oos).rank().iloc[int(np.argmax(sr_is))]
        w = rank / (n + 1)
        logits.append(np.log(w / (1 - w)))
    logits = np.array(logits)
    return float(np.mean(logits <= 0)), logits


def _frame(data: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(data, index=pd.date_range("2022-01-01", periods=data.shape[0]))


def test_vectorised_cscv_matches_the_loop():
    rng = np.random.default_rng(0)
    data = rng.normal(0.0005, 0.01, (240, 5)) + np.linspace(0, 0.001, 5)
    res = probability_of_backtest_overfitting(_frame(data), n_splits=8)
    pbo, logits = _loop_pbo(data, 8)
    assert res.pbo == pytest.approx(pbo)
    np.testing.assert_allclose(res.logits, logits, rtol=1e-10)
    assert (res.n_variants, res.n_splits, res.logits.size) == (5, 8, 70)


def test_pure_noise_variants_give_pbo_near_one_half():
    pbos = []
    for seed in range(12):
        data = np.random.default_rng(seed).normal(0.0, 0.01, (600, 10))  # 10 variants: median rank is 5.5
        pbos.append(probability_of_backtest_overfitting(_frame(data), n_splits=10).pbo)
    assert 0.35 < float(np.mean(pbos)) < 0.65


def test_one_variant_with_true_skill_gives_pbo_near_zero():
    rng = np.random.default_rng(1)
    data = rng.normal(0.0, 0.01, (600, 8))
    data[:, 3] += 0.004  # daily Sharpe 0.4: it wins in sample and out of sample
    res = probability_of_backtest_overfitting(_frame(data), n_splits=16)
    assert res.pbo < 0.02
    assert res.logits.size == 12_870


def test_pbo_rejects_bad_input():
    data = _frame(np.random.default_rng(0).normal(size=(100, 3)))
    with pytest.raises(ConfigError, match="even"):
        probability_of_backtest_overfitting(data, n_splits=7)
    with pytest.raises(DataValidationError, match="2 variants"):
        probability_of_backtest_overfitting(data.iloc[:, :1], n_splits=4)
    with pytest.raises(DataValidationError, match="complete days"):
        probability_of_backtest_overfitting(data.iloc[:20], n_splits=16)
