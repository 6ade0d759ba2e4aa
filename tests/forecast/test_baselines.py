"""Tests for the baselines and the BaseForecaster contract (look-ahead guards, clone)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kallos.config import ForecastConfig, TrainingConfig
from kallos.exceptions import DataValidationError
from kallos.forecast import (
    CoinHistory,
    ExpandingWalkForward,
    HistoricalMean,
    NaivePersistence,
    make_forecaster,
)

DAY = pd.Timedelta(days=1)


def _history(close: list[float] | np.ndarray, coin: str = "abc", start: str = "2021-01-01") -> CoinHistory:
    index = pd.date_range(start, periods=len(close), freq="D")
    close_s = pd.Series(np.asarray(close, dtype=float), index=index, name=coin)
    return CoinHistory(coin, close_s, pd.DataFrame({"x": np.zeros(len(close))}, index=index))


def _random_close(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.05, n)))


# --------------------------------------------------------------------------- known answers
def test_historical_mean_golden() -> None:
    h = _history([100.0, 110.0, 99.0, 99.0, 198.0, 150.0, 75.0])
    f = HistoricalMean(horizon=3, window=5).predict(h, h.close.index)
    # The mean of 5 daily log returns telescopes: log(close_t / close_{t-5}) / 5.
    assert f.isna().tolist() == [True] * 5 + [False] * 2
    assert f.iloc[5] == pytest.approx(3 * np.log(150.0 / 100.0) / 5, rel=1e-12)
    assert f.iloc[6] == pytest.approx(3 * np.log(75.0 / 110.0) / 5, rel=1e-12)


@pytest.mark.parametrize(("horizon", "window"), [(1, 2), (3, 5), (7, 11)])
def test_historical_mean_matches_numpy(horizon: int, window: int) -> None:
    close = _random_close(40, seed=window)
    h = _history(close)
    f = HistoricalMean(horizon=horizon, window=window).predict(h, h.close.index)
    r = np.diff(np.log(close))  # r[k] is the return earned on day k + 1
    expected = np.full(len(close), np.nan)
    for i in range(window, len(close)):
        expected[i] = horizon * r[i - window : i].mean()
    np.testing.assert_allclose(f.to_numpy(), expected, rtol=1e-12, atol=1e-15)
    assert f.name == "historical_mean"
    assert f.index.equals(h.close.index)


def test_historical_mean_nan_policy() -> None:
    close = _random_close(30, seed=1)
    close[12] = np.nan  # kills the returns of days 12 and 13
    h = _history(close)
    f = HistoricalMean(horizon=7, window=5).predict(h, h.close.index)
    nan_days = np.flatnonzero(f.isna().to_numpy())
    # Days 0..4 lack five returns; windows touching day 12 or 13 are NaN too (days 12..17).
    assert nan_days.tolist() == [0, 1, 2, 3, 4, *range(12, 18)]


@pytest.mark.parametrize("horizon", [1, 3, 7])
def test_naive_persistence_matches_numpy(horizon: int) -> None:
    close = _random_close(30, seed=horizon)
    close[15] = np.nan
    h = _history(close)
    f = NaivePersistence(horizon=horizon).predict(h, h.close.index)
    expected = np.full(len(close), np.nan)
    expected[horizon:] = np.log(close[horizon:] / close[:-horizon])
    np.testing.assert_allclose(f.to_numpy(), expected, rtol=1e-12, atol=1e-14)
    assert f.isna().sum() == horizon + 2  # warm-up, day 15 and day 15 + horizon
    assert f.name == "naive_persistence"


def test_baselines_on_real_btc(real_panel) -> None:
    close = real_panel.close["btc"].dropna()
    h = CoinHistory("btc", close.asfreq("D"), pd.DataFrame(index=close.asfreq("D").index))
    t = pd.Timestamp("2021-03-31")
    assert close.loc[t - 365 * DAY : t].notna().all() and len(close.loc[t - 365 * DAY : t]) == 366
    hm = HistoricalMean(horizon=7, window=365).predict(h, pd.DatetimeIndex([t])).iloc[0]
    assert hm == pytest.approx(7 * np.log(close[t] / close[t - 365 * DAY]) / 365, rel=1e-9)
    naive = NaivePersistence(horizon=7).predict(h, pd.DatetimeIndex([t])).iloc[0]
    assert naive == pytest.approx(np.log(close[t] / close[t - 7 * DAY]), rel=1e-12)


def test_requested_dates_shape_and_order() -> None:
    h = _history(_random_close(30, seed=3), start="2021-01-01")
    dates = pd.DatetimeIndex(["2021-01-20", "2020-12-25", "2021-01-10", "2021-01-20"])
    for model in (HistoricalMean(horizon=7, window=5), NaivePersistence(horizon=7)):
        f = model.predict(h, dates)
        assert f.index.equals(dates)
        assert np.isnan(f.iloc[1])  # before the history starts
        assert f.iloc[0] == f.iloc[3]
        assert np.isfinite(f.iloc[[0, 2]]).all()


# --------------------------------------------------------------------------- causality
@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    cut=st.integers(0, 59),
    mode=st.sampled_from(["delete", "noise", "nan"]),
    which=st.sampled_from(["historical_mean", "naive_persistence"]),
)
def test_baseline_forecast_at_t_ignores_rows_after_t(seed: int, cut: int, mode: str, which: str) -> None:
    model = HistoricalMean(horizon=7, window=10) if which == "historical_mean" else NaivePersistence(7)
    h = _history(_random_close(60, seed % 1000))
    t = h.close.index[cut]
    if mode == "delete":
        changed = h.upto(t)
    else:
        close = h.close.copy()
        later = close.index > t
        rng = np.random.default_rng(seed)
        close[later] = rng.lognormal(3.0, 2.0, later.sum()) if mode == "noise" else np.nan
        changed = CoinHistory(h.coin_id, close, h.features)
    dates = h.close.index[: cut + 1]
    np.testing.assert_array_equal(
        model.predict(changed, dates).to_numpy(), model.predict(h, dates).to_numpy()
    )


# --------------------------------------------------------------------------- BaseForecaster contract
@pytest.mark.parametrize(
    "model",
    [
        HistoricalMean(horizon=7, window=5),
        NaivePersistence(horizon=7),
        make_forecaster(
            "gru",
            ForecastConfig(
                training=TrainingConfig(lookback=5), models={"gru": {"hidden_size": 8, "num_layers": 1}}
            ),
        ),
    ],
    ids=lambda m: m.name,
)
def test_fit_refuses_history_past_cutoff(model) -> None:
    h = _history(_random_close(400, seed=0), coin="dogecoin", start="2020-01-01")
    fold = ExpandingWalkForward(pd.Timestamp("2020-01-01"), horizon=7, validation_days=30).fold(
        pd.Timestamp("2020-12-31")
    )
    with pytest.raises(DataValidationError, match=r"dogecoin.*2021-02-03.*2020-12-31"):
        model.clone().fit(h, fold)
    with pytest.raises(DataValidationError, match=r"dogecoin.*2021-01-01.*2020-12-31"):
        model.clone().fit(h.upto(fold.cutoff + DAY), fold)


@pytest.mark.parametrize("model", [HistoricalMean(horizon=7, window=5), NaivePersistence(horizon=7)])
def test_fit_at_cutoff_then_predict_refuses_dates_beyond_history(model) -> None:
    h = _history(_random_close(400, seed=0), coin="dogecoin", start="2020-01-01")
    fold = ExpandingWalkForward(pd.Timestamp("2020-01-01"), horizon=7, validation_days=30).fold(
        pd.Timestamp("2020-12-31")
    )
    fitted = model.clone().fit(h.upto(fold.cutoff), fold)
    assert fitted.cutoff_ == fold.cutoff
    short = h.upto(pd.Timestamp("2021-01-10"))
    with pytest.raises(DataValidationError, match=r"dogecoin.*2021-01-11.*2021-01-10"):
        fitted.predict(short, pd.date_range("2021-01-05", "2021-01-11", freq="D"))
    ok = fitted.predict(short, pd.date_range("2021-01-05", "2021-01-10", freq="D"))
    assert len(ok) == 6 and ok.notna().all()
    assert fitted.predict(short, pd.DatetimeIndex([])).empty


def test_clone_and_get_params() -> None:
    model = HistoricalMean(horizon=5, window=30)
    assert model.get_params() == {"horizon": 5, "window": 30}
    assert repr(model) == "HistoricalMean(horizon=5, window=30)"
    fitted = model.fit(
        _history(_random_close(60, seed=0)),
        ExpandingWalkForward(pd.Timestamp("2020-01-01")).fold(pd.Timestamp("2021-03-31")),
    )
    twin = fitted.clone(window=10)
    assert type(twin) is HistoricalMean and twin is not fitted
    assert twin.get_params() == {"horizon": 5, "window": 10}
    assert hasattr(fitted, "cutoff_") and not hasattr(twin, "cutoff_")
