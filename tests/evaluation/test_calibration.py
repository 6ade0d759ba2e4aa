"""The calibration harness: exact nulls, exactly planted edges, and a small size/power run.

The full-size version (500 replications per null, five gaps, 1,000 bootstrap resamples per test)
is ``benchmarks/calibration.py``; here a few dozen replications with a wide tolerance guard the
machinery and its verdicts on the default study's real returns.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kallos.config import load_config
from kallos.evaluation.calibration import CalibrationSettings, calibrate, null_returns, plant_edge
from kallos.exceptions import ConfigError, DataValidationError
from kallos.pipeline.study import primary_family

DATA = Path(__file__).with_name("data") / "default_study_net_returns.parquet"


@pytest.fixture(scope="module")
def net() -> pd.DataFrame:
    return pd.read_parquet(DATA)


def _sharpe(frame: pd.DataFrame) -> pd.Series:
    return frame.mean() / frame.std(ddof=0)


def test_nulls_hold_exactly_and_keep_volatility_and_correlation(net):
    target = 0.5 / math.sqrt(365)
    equal_sharpe = null_returns(net, "sharpe", target)
    np.testing.assert_allclose(_sharpe(equal_sharpe), target, rtol=1e-10)
    np.testing.assert_allclose(equal_sharpe.std(), net.std(), rtol=1e-12)
    np.testing.assert_allclose(equal_sharpe.corr(), net.corr(), atol=1e-12)
    equal_mean = null_returns(net, "mean", 0.001)
    np.testing.assert_allclose(equal_mean.mean(), 0.001, rtol=1e-10)
    with pytest.raises(ConfigError):
        null_returns(net, "median", 0.0)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(gap=st.floats(0.1, 4.0), form=st.sampled_from(["mean_shift", "vol_reduction"]))
def test_planted_edges_add_exactly_the_gap_and_keep_correlations(gap, form):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(0.01, 0.03, size=(500, 3)) + rng.normal(0, 0.02, size=(500, 1)))
    frame.columns = ["a", "b", "c"]
    out = plant_edge(frame, "a", gap, form)
    before, after = _sharpe(frame)["a"], _sharpe(out)["a"]
    assert (after - before) * math.sqrt(365) == pytest.approx(gap, rel=1e-9)
    np.testing.assert_allclose(out.corr(), frame.corr(), atol=1e-12)
    pd.testing.assert_frame_equal(out[["b", "c"]], frame[["b", "c"]])
    if form == "vol_reduction":
        assert out["a"].mean() == pytest.approx(frame["a"].mean(), rel=1e-12)
        assert out["a"].std() < frame["a"].std()


def test_a_volatility_reduction_needs_a_positive_mean():
    frame = pd.DataFrame({"a": np.random.default_rng(1).normal(-0.001, 0.02, 300)})
    with pytest.raises(DataValidationError, match="mean is not positive"):
        plant_edge(frame, "a", 1.0, "vol_reduction")
    with pytest.raises(DataValidationError, match="not among"):
        plant_edge(frame, "z", 1.0, "mean_shift")


def test_settings_are_validated():
    with pytest.raises(ConfigError, match="forms"):
        CalibrationSettings(forms=("jump",))
    with pytest.raises(ConfigError, match="gaps"):
        CalibrationSettings(gaps=(0.0,))


@pytest.mark.slow
def test_small_calibration_on_the_default_study_returns(net):
    family = primary_family(load_config())
    res = calibrate(
        net,
        family,
        CalibrationSettings(size_reps=40, power_reps=25, gaps=(2.0,), inner_reps=199, block_size=5.0, seed=1),
    )
    size = res.size.set_index(["null", "test"])
    # wide tolerance at 40 replications: a correctly sized 5% test exceeds 20% with probability < 0.1%
    for (null, test), row in size.iterrows():
        if row["applies"]:
            assert row["rejection_rate"] <= 0.2, (null, test)
    assert size.loc[("sharpe", "StepM Sharpe (familywise)"), "n_reps"] == 40
    assert not size.loc[("sharpe", "SPA max_sharpe (all equal: conservative)"), "applies"]
    power = res.power.set_index("form")
    for form in ("mean_shift", "vol_reduction"):
        assert power.loc[form, "verdict_all"] >= 0.9, form
        assert power.loc[form, "false_verdicts"] <= 0.2, form
        assert power.loc[form, "oracle_family"] >= power.loc[form, "verdict_all"] - 0.1
    assert res.planted == "gru/max_sharpe" and len(res.comparators) == 4
    doc = res.to_results()
    assert doc["size_band"] == [0.03, 0.07] and len(doc["power"]) == 2
