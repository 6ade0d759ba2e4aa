"""Tests of kallos.evaluation.forecast_metrics on hand-made frames with known scores."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kallos.evaluation.forecast_metrics import (
    diebold_mariano,
    dm_tests,
    forecast_accuracy,
    forecast_evaluation,
    pesaran_timmermann,
    residuals,
)
from kallos.exceptions import DataValidationError

COLUMNS = [
    "forecaster",
    "coin_id",
    "quarter",
    "n",
    "start",
    "end",
    "rmse",
    "mae",
    "directional_accuracy",
    "majority_accuracy",
    "r2_oos",
    "rmse_ratio",
    "mae_ratio",
    "da_diff",
]

Q1_DATES = pd.to_datetime(["2022-01-03", "2022-01-10", "2022-02-14", "2022-03-28"])
REALISED = [0.02, -0.01, 0.03, 0.0]
GRU = [0.01, -0.02, 0.0, 0.01]  # errors 0.01, 0.01, 0.03, -0.01; signs hit, hit, miss (0 vs +), miss (+ vs 0)
NAIVE = [-0.01, 0.01, 0.03, 0.0]  # errors 0.03, -0.02, 0, 0; signs miss, miss, hit, hit (0 vs 0)


def _rows(forecaster, coin, dates, forecast, realised):
    return pd.DataFrame(
        {
            "forecaster": forecaster,
            "coin_id": coin,
            "as_of": pd.to_datetime(dates),
            "forecast": forecast,
            "realised": realised,
        }
    )


@pytest.fixture(scope="module")
def forecasts() -> pd.DataFrame:
    return pd.concat(
        [
            _rows("gru", "btc", Q1_DATES, GRU, REALISED),
            _rows("naive_persistence", "btc", Q1_DATES, NAIVE, REALISED),
            # Q2: one row each, plus a row whose horizon has not elapsed yet (NaN realised)
            _rows("gru", "btc", ["2022-04-04", "2022-06-27"], [0.05, 0.01], [-0.05, np.nan]),
            _rows("naive_persistence", "btc", ["2022-04-04"], [0.1], [-0.05]),
            # a coin the baseline never forecast
            _rows("gru", "eth", ["2022-01-03", "2022-01-04"], [0.02, -0.01], [0.01, 0.01]),
        ],
        ignore_index=True,
    )


def test_scores_and_ratios_by_hand(forecasts):
    out = forecast_accuracy(forecasts)
    assert list(out.columns) == COLUMNS
    assert len(out) == 5
    key = out.set_index(["forecaster", "coin_id", "quarter"])

    gru = key.loc[("gru", "btc", "2022Q1")]
    assert gru["n"] == 4
    assert gru["rmse"] == pytest.approx(math.sqrt((1 + 1 + 9 + 1) * 1e-4 / 4), rel=1e-12)
    assert gru["mae"] == pytest.approx(0.06 / 4, rel=1e-12)
    # R² against zero: 1 - sum(e^2) / sum(y^2) = 1 - 12 / 14; majority rule: 2 of 4 realised up
    assert gru["r2_oos"] == pytest.approx(1 - 12 / 14, rel=1e-12)
    assert gru["majority_accuracy"] == pytest.approx(0.5)
    assert gru["directional_accuracy"] == pytest.approx(0.5)
    assert gru["start"] == pd.Timestamp("2022-01-03")
    assert gru["end"] == pd.Timestamp("2022-03-28")

    naive = key.loc[("naive_persistence", "btc", "2022Q1")]
    assert naive["rmse"] == pytest.approx(math.sqrt((9 + 4) * 1e-4 / 4), rel=1e-12)
    assert naive["mae"] == pytest.approx(0.05 / 4, rel=1e-12)
    assert naive["directional_accuracy"] == pytest.approx(0.5)
    assert (naive["rmse_ratio"], naive["mae_ratio"], naive["da_diff"]) == (1.0, 1.0, 0.0)

    assert gru["rmse_ratio"] == pytest.approx(math.sqrt(12 / 13), rel=1e-12)
    assert gru["mae_ratio"] == pytest.approx(1.2, rel=1e-12)
    assert gru["da_diff"] == pytest.approx(0.0, abs=1e-15)

    q2 = key.loc[("gru", "btc", "2022Q2")]
    assert q2["n"] == 1  # the NaN-realised row is dropped
    assert q2["rmse"] == pytest.approx(0.1)
    assert q2["rmse_ratio"] == pytest.approx(0.1 / 0.15, rel=1e-12)
    assert q2["da_diff"] == pytest.approx(0.0)
    assert q2["end"] == pd.Timestamp("2022-04-04")

    eth = key.loc[("gru", "eth", "2022Q1")]
    assert eth["directional_accuracy"] == pytest.approx(0.5)
    assert math.isnan(eth["rmse_ratio"]) and math.isnan(eth["mae_ratio"]) and math.isnan(eth["da_diff"])


def test_directional_accuracy_zero_convention():
    frame = _rows(
        "gru", "btc", pd.date_range("2022-01-01", periods=4), [0.0, 0.0, 0.01, -0.01], [0.0, 0.01, 0.0, -0.02]
    )
    out = forecast_accuracy(frame, by=["forecaster"])
    # zero/zero hit; zero forecast vs move miss; non-zero forecast vs zero miss; same sign hit
    assert out["directional_accuracy"].iloc[0] == pytest.approx(0.5)


def test_other_groupings(forecasts):
    per_forecaster = forecast_accuracy(forecasts, by=["forecaster"]).set_index("forecaster")
    assert per_forecaster.loc["gru", "n"] == 7
    assert per_forecaster.loc["naive_persistence", "rmse_ratio"] == 1.0
    errors = np.array([0.01, 0.01, 0.03, -0.01, -0.1, -0.01, 0.02])
    assert per_forecaster.loc["gru", "rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)), rel=1e-12)
    assert per_forecaster.loc["gru", "start"] == pd.Timestamp("2022-01-03")

    # without a forecaster key there is nothing to compare against
    per_coin = forecast_accuracy(forecasts, by=["coin_id"])
    assert list(per_coin["coin_id"]) == ["btc", "eth"]
    assert per_coin[["rmse_ratio", "mae_ratio", "da_diff"]].isna().all().all()


def test_missing_baseline_gives_nan_relative_columns(forecasts):
    out = forecast_accuracy(forecasts[forecasts["forecaster"] == "gru"])
    assert out[["rmse_ratio", "mae_ratio", "da_diff"]].isna().all().all()
    other = forecast_accuracy(forecasts, baseline="gru").set_index(["forecaster", "coin_id", "quarter"])
    assert other.loc[("naive_persistence", "btc", "2022Q1"), "rmse_ratio"] == pytest.approx(
        math.sqrt(13 / 12), rel=1e-12
    )


def test_tz_aware_as_of_and_existing_quarter_column(forecasts):
    aware = forecasts.assign(as_of=forecasts["as_of"].dt.tz_localize("UTC"))
    out = forecast_accuracy(aware)
    assert sorted(set(out["quarter"])) == ["2022Q1", "2022Q2"]
    given_quarter = forecasts.assign(quarter="all")
    assert set(forecast_accuracy(given_quarter)["quarter"]) == {"all"}


def test_empty_and_invalid_input(forecasts):
    all_nan = forecasts.assign(realised=np.nan)
    out = forecast_accuracy(all_nan)
    assert out.empty
    assert list(out.columns) == COLUMNS
    with pytest.raises(DataValidationError, match="realised"):
        forecast_accuracy(forecasts.drop(columns="realised"))
    with pytest.raises(DataValidationError, match="horizon"):
        forecast_accuracy(forecasts, by=["forecaster", "horizon"])


def test_residuals(forecasts):
    before = forecasts.copy()
    out = residuals(forecasts)
    pd.testing.assert_frame_equal(forecasts, before)  # input untouched
    np.testing.assert_allclose(out["residual"].iloc[:4], [0.01, 0.01, 0.03, -0.01], atol=1e-15)
    assert np.isnan(out["residual"].iloc[9])
    with pytest.raises(DataValidationError, match="forecast"):
        residuals(forecasts.drop(columns="forecast"))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-100, 100), st.integers(-100, 100)),
        min_size=1,
        max_size=30,
    )
)
def test_rmse_bounds_mae(pairs):
    forecast = [f / 1000 for f, _ in pairs]
    realised = [r / 1000 for _, r in pairs]
    frame = _rows("gru", "btc", pd.date_range("2022-01-01", periods=len(pairs)), forecast, realised)
    row = forecast_accuracy(frame).iloc[0]
    assert row["rmse"] >= row["mae"] - 1e-15
    assert 0.0 <= row["directional_accuracy"] <= 1.0
    assert row["n"] == len(pairs)


# --------------------------------------------------------------------------- Diebold-Mariano (HLN)


def test_dm_known_answers():
    # h = 1: d = [1, 2, 3, 4]; dbar 2.5, gamma0 1.25, V 0.3125, HLN factor sqrt(3/4)
    stat, _, n = diebold_mariano(np.array([1.0, 2, 3, 4]), np.zeros(4), horizon=1)
    assert n == 4 and stat == pytest.approx(math.sqrt(0.75) * 2.5 / math.sqrt(0.3125), rel=1e-12)
    assert stat == pytest.approx(3.872983346207417, rel=1e-12)
    # h = 2: d = [1, 3, 2, 5, 4, 6]; dbar 3.5, gamma0 17.5/6, gamma1 1.75/6, V 3.5/6,
    # HLN factor sqrt((6 + 1 - 4 + 2/6) / 6)
    stat2, p2, _ = diebold_mariano(np.array([1.0, 3, 2, 5, 4, 6]), np.zeros(6), horizon=2)
    assert stat2 == pytest.approx(math.sqrt((10 / 3) / 6) * 3.5 / math.sqrt(3.5 / 6), rel=1e-12)
    assert stat2 == pytest.approx(3.4156502553198655, rel=1e-9)
    from scipy import stats

    assert p2 == pytest.approx(2 * stats.t.sf(stat2, df=5), rel=1e-12)
    # sign: a model with lower loss gets a negative statistic
    assert diebold_mariano(np.zeros(6), np.array([1.0, 3, 2, 5, 4, 6]), horizon=2)[0] == pytest.approx(-stat2)


def test_dm_degenerate_cases():
    assert math.isnan(diebold_mariano(np.array([1.0]), np.array([0.0]), 1)[0])
    assert math.isnan(diebold_mariano(np.ones(5), np.zeros(5), 1)[0])  # zero variance
    with pytest.raises(ValueError, match="horizon"):
        diebold_mariano(np.ones(5), np.zeros(5), 0)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=3, max_size=40), st.integers(0, 10**6))
def test_dm_h1_is_the_one_sample_t_test(values, seed):
    from scipy import stats

    d = np.asarray(values) + np.random.default_rng(seed).normal(0, 1e-3, len(values))
    stat, p, _ = diebold_mariano(d, np.zeros_like(d), horizon=1)
    ref = stats.ttest_1samp(d, 0.0)
    assert stat == pytest.approx(ref.statistic, rel=1e-8, abs=1e-10)
    assert p == pytest.approx(ref.pvalue, rel=1e-8, abs=1e-12)


@pytest.mark.parametrize("horizon", [2, 5, 7])
def test_dm_matches_statsmodels_hac_with_uniform_kernel(horizon):
    import statsmodels.api as sm

    rng = np.random.default_rng(horizon)
    d = rng.normal(0.1, 1.0, 200) + np.convolve(rng.normal(0, 1, 206), np.ones(7) / 7, "valid")
    ols = sm.OLS(d, np.ones_like(d)).fit(
        cov_type="HAC", cov_kwds={"maxlags": horizon - 1, "kernel": "uniform", "use_correction": False}
    )
    t, h = len(d), horizon
    expected = float(ols.tvalues[0]) * math.sqrt((t + 1 - 2 * h + h * (h - 1) / t) / t)
    assert diebold_mariano(d, np.zeros_like(d), horizon)[0] == pytest.approx(expected, rel=1e-9)


def _evaluation_frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    dates = pd.date_range("2022-01-01", "2022-06-29", freq="D")
    frames = []
    for coin in ("btc", "eth"):
        realised = rng.normal(0, 0.05, len(dates))
        naive = np.concatenate([[0.0] * 7, realised[:-7]])
        good = realised + rng.normal(0, 0.01, len(dates))
        for name, f in (("naive_persistence", naive), ("gru", good)):
            frames.append(
                pd.DataFrame(
                    {
                        "forecaster": name,
                        "coin_id": coin,
                        "as_of": dates,
                        "horizon": 7,
                        "forecast": f,
                        "realised": realised,
                        "fold_cutoff": dates.to_period("Q").to_timestamp() - pd.Timedelta(days=1),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def test_forecast_evaluation_tables():
    frame = _evaluation_frame()
    ev = forecast_evaluation(frame)
    assert ev.baseline == "zero" and ev.baselines == ("zero", "naive_persistence")
    assert set(ev.accuracy["quarter"]) == {"2022Q1", "2022Q2"}
    # the zero forecast is the reference of the ratios, not a model of the frame
    assert set(ev.accuracy["forecaster"]) == {"gru", "naive_persistence"}
    assert (ev.overall["coin_id"] == "all").sum() == 2
    pooled = ev.overall[ev.overall["coin_id"] == "all"].set_index("forecaster")
    np.testing.assert_allclose(pooled["r2_oos"], 1 - pooled["rmse_ratio"] ** 2, rtol=1e-10)
    assert pooled.loc["gru", "r2_oos"] > 0.9 > 0 > pooled.loc["naive_persistence", "r2_oos"]
    against_zero = ev.dm_tests[ev.dm_tests["baseline"] == "zero"].set_index(["forecaster", "coin_id"])
    assert against_zero.loc[("gru", "all"), "dm_stat"] < -5  # far better than predicting 0
    assert against_zero.loc[("naive_persistence", "all"), "dm_stat"] > 5  # far worse
    dm = ev.dm_tests[ev.dm_tests["baseline"] == "naive_persistence"].set_index("coin_id")
    assert list(dm["forecaster"]) == ["gru", "gru", "gru"] and list(dm.index) == ["btc", "eth", "all"]
    assert (dm["n"] == [180, 180, 360]).all()
    assert (dm["dm_stat"] < -5).all() and (dm["p_value"] < 1e-6).all()  # far better than naive
    pt = ev.pt_tests.set_index(["forecaster", "coin_id"])
    assert pt.loc[("gru", "all"), "hac_p_value"] < 1e-6 and pt.loc[("gru", "all"), "accuracy"] > 0.8
    assert (dm["mse"] < dm["mse_baseline"]).all()
    assert len(ev.residuals) == len(frame)
    np.testing.assert_allclose(ev.residuals["residual"], frame["realised"] - frame["forecast"])
    # decay: 2022-01-01 is 1 day after the 2021-12-31 cutoff -> week 0; 2022-03-31 -> week 12
    assert ev.decay["weeks_since_training"].min() == 0 and ev.decay["weeks_since_training"].max() == 12
    assert ev.decay.groupby("forecaster")["n"].sum().eq(360).all()


def test_dm_tests_needs_one_horizon():
    frame = _evaluation_frame()
    frame.loc[0, "horizon"] = 14
    with pytest.raises(DataValidationError, match="horizons"):
        dm_tests(frame)
    assert dm_tests(frame, baseline="nobody", horizon=7).empty  # baseline absent: no tests


def test_pesaran_timmermann_known_answer():
    # perfect sign forecasts, half up: P = 1, P* = 1/2, V(P) = 1/400, V(P*) = 4/16/n^2
    y = np.tile([0.01, -0.01], 50)
    res = pesaran_timmermann(y * 3, y)
    n = 100
    expected = 0.5 / math.sqrt(0.25 / n - 0.25 / n**2)
    assert res["pt_stat"] == pytest.approx(expected, rel=1e-12)
    assert res["accuracy"] == 1.0 and res["expected"] == 0.5 and res["p_value"] < 1e-20
    assert math.isnan(
        pesaran_timmermann(np.zeros(100), y)["pt_stat"]
    )  # a constant forecast has no sign skill


def test_pesaran_timmermann_robust_form_keeps_its_size_with_overlapping_labels():
    # independent but persistent daily forecasts of overlapping 7-day labels: the classic PT test
    # over-rejects, the HAC regression form stays near 5% (measured by simulation)
    rng = np.random.default_rng(11)
    classic, robust = [], []
    for _ in range(300):
        daily = rng.standard_normal(406)
        label = np.convolve(daily, np.ones(7), "valid")[:400]
        f = np.convolve(rng.standard_normal(430), np.ones(30), "valid")[:400]
        res = pesaran_timmermann(f, label, horizon=7)
        classic.append(res["p_value"] < 0.05)
        robust.append(res["hac_p_value"] < 0.05)
    assert np.mean(classic) > 0.12
    assert 0.01 <= np.mean(robust) <= 0.10
