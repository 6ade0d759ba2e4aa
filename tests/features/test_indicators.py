"""Tests for kallos.features.indicators: registry, causality, known answers, scale invariance, gaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from kallos.exceptions import ConfigError, DataValidationError
from kallos.features import (
    FAMILIES,
    FEATURE_FAMILIES,
    FEATURE_NAMES,
    INDICATORS,
    compute_indicators,
    trailing_log_return,
    warmup_days,
)

BINANCE_LONG = Path("/work/shared/data/binance_spot_daily/long.parquet")
PRICE_FEATURES = [n for n in FEATURE_NAMES if INDICATORS[n].volume_window == 0]
VOLUME_FEATURES = [n for n in FEATURE_NAMES if INDICATORS[n].volume_window > 0]


def random_walk_bars(
    n_rows: int, seed: int, start: str = "2020-01-01", price0: float = 100.0
) -> pd.DataFrame:
    """Seeded OHLCV random walk: daily log returns N(0, 3%), intraday range, lognormal USD volume."""
    rng = np.random.default_rng(seed)
    close = price0 * np.exp(np.cumsum(rng.normal(0.0, 0.03, n_rows)))
    open_ = np.r_[price0, close[:-1]] * np.exp(rng.normal(0.0, 0.005, n_rows))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.01, n_rows)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.01, n_rows)))
    volume = 1e7 * np.exp(rng.normal(0.0, 0.5, n_rows))
    index = pd.date_range(start, periods=n_rows, freq="D", name="date")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


def gapped(bars: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``bars`` with a missing close, a missing high/low, missing and zero volumes."""
    out = bars.copy()
    out.iloc[150, out.columns.get_loc("close")] = np.nan
    out.iloc[151:153, [out.columns.get_loc("high"), out.columns.get_loc("low")]] = np.nan
    out.iloc[90, out.columns.get_loc("open")] = np.nan
    out.iloc[[40, 260, 261], out.columns.get_loc("volume")] = np.nan
    out.iloc[300, out.columns.get_loc("volume")] = 0.0
    return out


def first_valid_position(series: pd.Series) -> int:
    return int(np.flatnonzero(series.notna().to_numpy())[0])


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return random_walk_bars(400, seed=7)


@pytest.fixture(scope="module")
def features(bars: pd.DataFrame) -> pd.DataFrame:
    return compute_indicators(bars)


@pytest.fixture(scope="module")
def btc_2021() -> pd.DataFrame:
    if not BINANCE_LONG.exists():
        pytest.skip(f"real data not available at {BINANCE_LONG}")
    raw = pd.read_parquet(BINANCE_LONG, filters=[("coin_id", "==", "btc")])
    raw = raw[(raw["date"] >= "2021-01-01") & (raw["date"] <= "2021-12-31")]
    out = raw.set_index("date")[["open", "high", "low", "close", "quote_volume_est"]]
    return out.rename(columns={"quote_volume_est": "volume"})


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


def test_registry_has_at_least_30_unique_features_in_every_family() -> None:
    assert len(FEATURE_NAMES) >= 30
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert FEATURE_NAMES == tuple(INDICATORS) == tuple(FEATURE_FAMILIES)
    assert set(FEATURE_FAMILIES.values()) == {"momentum", "trend", "volatility", "volume", "return"}
    assert set(FAMILIES) == set(FEATURE_FAMILIES.values())
    counts = pd.Series(FEATURE_FAMILIES).value_counts()
    assert counts.min() >= 5, counts
    for name, spec in INDICATORS.items():
        assert spec.name == name
        assert spec.inputs in {"c", "hlc", "ohlc"}
        assert (spec.volume_window > 0) == (spec.family == "volume"), name
        assert spec.description, name


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        INDICATORS["x"] = INDICATORS["rsi_14"]  # type: ignore[index]
    with pytest.raises(TypeError):
        FEATURE_FAMILIES["rsi_14"] = "trend"  # type: ignore[index]


def test_output_columns_index_and_dtype(bars: pd.DataFrame, features: pd.DataFrame) -> None:
    assert list(features.columns) == list(FEATURE_NAMES)
    assert features.index.equals(bars.index)
    assert (features.dtypes == np.float64).all()


def test_names_selects_and_orders_a_subset(bars: pd.DataFrame, features: pd.DataFrame) -> None:
    subset = compute_indicators(bars, names=["natr_14", "rsi_14"])
    assert list(subset.columns) == ["natr_14", "rsi_14"]
    pd.testing.assert_frame_equal(subset, features[["natr_14", "rsi_14"]])
    assert warmup_days(["rsi_14"]) == 14
    with pytest.raises(ConfigError, match="rsi_99"):
        compute_indicators(bars, names=["rsi_99"])
    with pytest.raises(ConfigError, match="duplicate"):
        warmup_days(["rsi_14", "rsi_14"])


# ---------------------------------------------------------------------------------------------
# Warm-up, NaN and inf
# ---------------------------------------------------------------------------------------------


def test_warmup_days_is_exact(features: pd.DataFrame) -> None:
    warmup = warmup_days()
    assert warmup == 60
    assert warmup == max(spec.lookback for spec in INDICATORS.values())
    assert not features.iloc[warmup:].isna().any().any()
    assert features.iloc[warmup - 1].isna().any()
    for name in FEATURE_NAMES:
        assert first_valid_position(features[name]) == INDICATORS[name].lookback, name


def test_no_inf_on_degenerate_bars() -> None:
    """Flat prices (high == low), zero and missing volume must give NaN or numbers, never inf."""
    bars = random_walk_bars(200, seed=3)
    flat = bars["close"].iloc[80]
    bars.iloc[80:130, :4] = flat
    bars.iloc[100:110, bars.columns.get_loc("volume")] = 0.0
    bars.iloc[150:152, bars.columns.get_loc("volume")] = np.nan
    features = compute_indicators(bars)
    assert not np.isinf(features.to_numpy()).any()
    assert (features.loc[bars.index[80:130], ["clv", "bop", "hl_range"]] == 0.0).all().all()


def test_empty_and_short_input() -> None:
    empty = compute_indicators(random_walk_bars(0, seed=0))
    assert empty.shape == (0, len(FEATURE_NAMES))
    short = compute_indicators(random_walk_bars(10, seed=0))
    assert short.shape == (10, len(FEATURE_NAMES))
    assert short["rsi_14"].isna().all()
    assert short["logret_1"].iloc[1:].notna().all()


# ---------------------------------------------------------------------------------------------
# Causality: nothing after t changes any feature at or before t
# ---------------------------------------------------------------------------------------------


def _noise_after(bars: pd.DataFrame, cut: int, seed: int) -> pd.DataFrame:
    """Replace every row after position ``cut`` by valid but unrelated bars (other scale, gaps)."""
    rng = np.random.default_rng(seed)
    tail = len(bars) - cut - 1
    if tail <= 0:
        return bars
    noise = random_walk_bars(tail, seed=seed, price0=float(np.exp(rng.normal(0.0, 5.0))))
    noise["volume"] *= np.exp(rng.normal(0.0, 3.0))
    noise.loc[rng.random(tail) < 0.05, "close"] = np.nan
    noise.loc[rng.random(tail) < 0.05, "volume"] = np.nan
    out = bars.copy()
    out.iloc[cut + 1 :] = noise.to_numpy()
    return out


@pytest.mark.parametrize("variant", ["complete", "gapped"])
@settings(max_examples=30, deadline=None)
@given(cut=st.integers(0, 399), seed=st.integers(0, 2**32 - 1))
def test_features_are_causal(variant: str, bars: pd.DataFrame, cut: int, seed: int) -> None:
    source = bars if variant == "complete" else gapped(bars)
    full = compute_indicators(source).to_numpy()
    truncated = compute_indicators(source.iloc[: cut + 1]).to_numpy()
    np.testing.assert_array_equal(truncated, full[: cut + 1])
    perturbed = compute_indicators(_noise_after(source, cut, seed)).to_numpy()
    np.testing.assert_array_equal(perturbed[: cut + 1], full[: cut + 1])


# ---------------------------------------------------------------------------------------------
# Known answers
# ---------------------------------------------------------------------------------------------


def test_log_returns_match_pandas(bars: pd.DataFrame, features: pd.DataFrame) -> None:
    log_close = np.log(bars["close"])
    for days in (1, 3, 7, 14, 30):
        expected = log_close.diff(days)
        pd.testing.assert_series_equal(features[f"logret_{days}"], expected, check_names=False, rtol=1e-12)
        pd.testing.assert_series_equal(
            features[f"logret_{days}"],
            trailing_log_return(bars["close"], days),
            check_names=False,
            rtol=1e-12,
        )
    np.testing.assert_allclose(features["roc_20"], bars["close"].pct_change(20), rtol=1e-12, atol=1e-15)


def test_rsi_is_talib_rsi_over_100_and_matches_wilder(bars: pd.DataFrame, features: pd.DataFrame) -> None:
    close = bars["close"].to_numpy()
    np.testing.assert_array_equal(features["rsi_14"].to_numpy(), talib.RSI(close, timeperiod=14) / 100)
    # Independent Wilder (1978) recursion: simple mean of the first 14 moves, then alpha = 1/14.
    change = np.diff(close)
    gain, loss = np.clip(change, 0, None), np.clip(-change, 0, None)
    avg_gain, avg_loss = gain[:14].mean(), loss[:14].mean()
    wilder = [avg_gain / (avg_gain + avg_loss)]
    for g, lo in zip(gain[14:], loss[14:], strict=True):
        avg_gain, avg_loss = (13 * avg_gain + g) / 14, (13 * avg_loss + lo) / 14
        wilder.append(avg_gain / (avg_gain + avg_loss))
    np.testing.assert_allclose(features["rsi_14"].to_numpy()[14:], wilder, rtol=1e-10)
    assert features["rsi_14"].dropna().between(0, 1).all()


def test_moving_average_ratios_match_pandas(bars: pd.DataFrame, features: pd.DataFrame) -> None:
    close = bars["close"]
    np.testing.assert_allclose(features["close_sma_20"], close / close.rolling(20).mean() - 1, rtol=1e-9)
    np.testing.assert_allclose(
        features["close_ema_26"].iloc[60:],
        (close / talib.EMA(close.to_numpy(), 26) - 1).iloc[60:],
        rtol=1e-12,
    )
    sma_gap = close.rolling(10).mean() / close.rolling(50).mean() - 1
    np.testing.assert_allclose(features["sma_10_50"], sma_gap, rtol=1e-9, atol=1e-12)


def test_volatility_features_match_by_hand(bars: pd.DataFrame, features: pd.DataFrame) -> None:
    close, high, low = bars["close"], bars["high"], bars["low"]
    log_ret = np.log(close).diff()
    np.testing.assert_allclose(features["rvol_30"], log_ret.rolling(30).std(ddof=0), rtol=1e-7)
    np.testing.assert_allclose(features["rvol_7"], log_ret.rolling(7).std(ddof=0), rtol=1e-7)
    np.testing.assert_allclose(features["hl_range"], (high - low) / close, rtol=1e-14)
    mean20, std20 = close.rolling(20).mean(), close.rolling(20).std(ddof=0)
    np.testing.assert_allclose(features["bb_pctb_20"], (close - mean20 + 2 * std20) / (4 * std20), rtol=1e-7)
    np.testing.assert_allclose(features["bb_width_20"], 4 * std20 / mean20, rtol=1e-7)
    natr = talib.NATR(high.to_numpy(), low.to_numpy(), close.to_numpy(), timeperiod=14) / 100
    np.testing.assert_array_equal(features["natr_14"].to_numpy(), natr)
    parkinson = np.sqrt((np.log(high / low) ** 2).rolling(14).mean() / (4 * np.log(2)))
    np.testing.assert_allclose(features["parkinson_14"], parkinson, rtol=1e-9)


def test_momentum_and_trend_features_by_hand(bars: pd.DataFrame, features: pd.DataFrame) -> None:
    o, h, lo, c = (bars[k].to_numpy() for k in ("open", "high", "low", "close"))
    np.testing.assert_allclose(features["clv"], ((c - lo) - (h - c)) / (h - lo), rtol=1e-12)
    np.testing.assert_allclose(features["bop"], (c - o) / (h - lo), rtol=1e-12)
    np.testing.assert_array_equal(features["macd_hist"].to_numpy(), talib.MACD(c, 12, 26, 9)[2] / c)
    np.testing.assert_array_equal(features["willr_14"].to_numpy(), talib.WILLR(h, lo, c, 14) / 100)
    hh, ll = bars["high"].rolling(14).max(), bars["low"].rolling(14).min()
    np.testing.assert_allclose(features["willr_14"], (c - hh) / (hh - ll), rtol=1e-12)
    # Linear-regression slope of log close over 14 days: OLS by hand at a few rows.
    log_c = np.log(c)
    for row in (13, 100, 399):
        slope = np.polyfit(np.arange(14), log_c[row - 13 : row + 1], 1)[0]
        assert features["linreg_slope_14"].iloc[row] == pytest.approx(slope, rel=1e-8, abs=1e-12)
    ema12, ema26 = talib.EMA(c, 12), talib.EMA(c, 26)
    np.testing.assert_allclose(features["ppo"].iloc[40:], (ema12 / ema26 - 1)[40:], rtol=1e-9)


def test_volume_features_by_hand(bars: pd.DataFrame, features: pd.DataFrame) -> None:
    close, volume = bars["close"], bars["volume"]
    mean30 = volume.rolling(30).mean()
    np.testing.assert_allclose(
        features["volume_log_ratio_30"], np.log(volume / mean30), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(
        features["volume_log_ratio_7_30"], np.log(volume.rolling(7).mean() / mean30), rtol=1e-9, atol=1e-12
    )
    signed = np.sign(close.diff()).fillna(0.0) * volume
    np.testing.assert_allclose(features["obv_change_10"], signed.rolling(10).sum() / mean30, rtol=1e-9)
    h, lo, c = (bars[k].to_numpy() for k in ("high", "low", "close"))
    mfi = talib.MFI(h, lo, c, volume.to_numpy() / c, 14) / 100
    np.testing.assert_array_equal(features["mfi_14"].to_numpy(), mfi)
    typical = (bars["high"] + bars["low"] + close) / 3
    flow = typical * volume / close
    up = typical.diff() > 0
    down = typical.diff() < 0
    by_hand = flow.where(up, 0).rolling(14).sum() / (flow.where(up | down, 0).rolling(14).sum())
    np.testing.assert_allclose(features["mfi_14"].iloc[14:], by_hand.iloc[14:], rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# Scale invariance
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price_factor", "volume_factor"), [(1e3, 1.0), (1e-6, 1.0), (1e3, 1e3), (1.0, 1e-3)]
)
def test_features_are_scale_free(
    bars: pd.DataFrame, features: pd.DataFrame, price_factor: float, volume_factor: float
) -> None:
    scaled = bars.copy()
    scaled[["open", "high", "low", "close"]] *= price_factor
    scaled["volume"] *= volume_factor
    result = compute_indicators(scaled)
    pd.testing.assert_frame_equal(result, features, rtol=1e-7, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Missing data policy
# ---------------------------------------------------------------------------------------------


def test_missing_close_restarts_warmup(bars: pd.DataFrame, features: pd.DataFrame) -> None:
    gap_row = 150
    holed = bars.copy()
    holed.iloc[gap_row, holed.columns.get_loc("close")] = np.nan
    result = compute_indicators(holed)
    pd.testing.assert_frame_equal(result.iloc[:gap_row], features.iloc[:gap_row])
    assert result.iloc[gap_row].isna().all()
    after = result.iloc[gap_row + 1 :]
    for name in FEATURE_NAMES:
        assert first_valid_position(after[name]) == INDICATORS[name].lookback, name
    # After the warm-up the restarted features are complete again.
    assert not after.iloc[warmup_days() :].isna().any().any()


def test_close_only_bars_give_close_based_features(bars: pd.DataFrame, features: pd.DataFrame) -> None:
    close_only = bars.assign(open=np.nan, high=np.nan, low=np.nan)
    result = compute_indicators(close_only)
    close_based = [n for n in FEATURE_NAMES if INDICATORS[n].inputs == "c"]
    range_based = [n for n in FEATURE_NAMES if INDICATORS[n].inputs != "c"]
    assert len(close_based) >= 20
    pd.testing.assert_frame_equal(result[close_based], features[close_based])
    assert result[range_based].isna().all().all()


@pytest.mark.parametrize("bad_volume", [np.nan, 0.0])
def test_unknown_volume_blanks_volume_features_only(
    bars: pd.DataFrame, features: pd.DataFrame, bad_volume: float
) -> None:
    row = 200
    holed = bars.copy()
    holed.iloc[row, holed.columns.get_loc("volume")] = bad_volume
    result = compute_indicators(holed)
    pd.testing.assert_frame_equal(result[PRICE_FEATURES], features[PRICE_FEATURES])
    for name in VOLUME_FEATURES:
        window = INDICATORS[name].volume_window
        assert result[name].iloc[row : row + window].isna().all(), name
        assert result[name].iloc[row + window :].notna().all(), name
        pd.testing.assert_series_equal(result[name].iloc[:row], features[name].iloc[:row])


# ---------------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------------


def test_rejects_missing_column(bars: pd.DataFrame) -> None:
    with pytest.raises(DataValidationError, match="volume"):
        compute_indicators(bars.drop(columns="volume"))


def test_rejects_gapped_index_naming_the_date(bars: pd.DataFrame) -> None:
    with pytest.raises(DataValidationError, match="2020-02-11") as info:
        compute_indicators(bars.drop(index=pd.Timestamp("2020-02-10")), coin_id="btc")
    assert "btc" in str(info.value)
    with pytest.raises(DataValidationError, match="2020-01-02"):
        compute_indicators(pd.concat([bars.iloc[:2], bars.iloc[1:5]]))


def test_rejects_non_positive_price_naming_the_date(bars: pd.DataFrame) -> None:
    bad = bars.copy()
    bad.iloc[5, bad.columns.get_loc("low")] = 0.0
    with pytest.raises(DataValidationError, match=r"low .*2020-01-06"):
        compute_indicators(bad)
    bad = bars.copy()
    bad.iloc[7, bad.columns.get_loc("volume")] = -1.0
    with pytest.raises(DataValidationError, match=r"volume .*2020-01-08"):
        compute_indicators(bad)


# ---------------------------------------------------------------------------------------------
# Real data: Binance BTCUSDT 2021
# ---------------------------------------------------------------------------------------------


def test_real_btc_2021_complete_finite_and_causal(btc_2021: pd.DataFrame) -> None:
    assert len(btc_2021) == 365
    result = compute_indicators(btc_2021, coin_id="btc")
    values = result.to_numpy()
    assert not np.isinf(values).any()
    assert not result.iloc[warmup_days() :].isna().any().any()
    for cut in (45, 180, 300):
        truncated = compute_indicators(btc_2021.iloc[: cut + 1]).to_numpy()
        np.testing.assert_array_equal(truncated, values[: cut + 1])
        noisy = btc_2021.copy()
        noisy.iloc[cut + 1 :] = noisy.iloc[cut + 1 :].to_numpy()[::-1] * 3.0
        np.testing.assert_array_equal(compute_indicators(noisy).to_numpy()[: cut + 1], values[: cut + 1])
    # Known answers on real prices: BTCUSDT closed at 57,184.07 on 2021-12-01 and 46,216.93 on 2021-12-31.
    close = btc_2021["close"]
    last = result.loc["2021-12-31"]
    assert last["logret_30"] == pytest.approx(np.log(46_216.93 / 57_184.07), rel=1e-12)
    assert last["logret_30"] == pytest.approx(-0.212929, abs=1e-6)
    assert last["close_sma_20"] == pytest.approx(close.iloc[-1] / close.iloc[-20:].mean() - 1)
    bounded = ["rsi_14", "stoch_k", "stoch_d", "ultosc", "mfi_14", "adx_14", "plus_di_14", "minus_di_14"]
    assert result[bounded].dropna().apply(lambda s: s.between(0, 1).all()).all()
