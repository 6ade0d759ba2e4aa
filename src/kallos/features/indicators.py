"""Scale-free technical indicators for one coin's daily OHLCV bars, computed with TA-Lib.

Every feature is a ratio, an oscillator, a log return or a normalised volume, so values are
comparable across coins and across years in which prices move by orders of magnitude. The
registry :data:`INDICATORS` maps a feature name to an :class:`IndicatorSpec`; its order is
:data:`FEATURE_NAMES`, the column order of :func:`compute_indicators`.

Units at a glance
-----------------
* TA-Lib oscillators quoted in percent (RSI, Stoch, Williams %R, CCI, CMO, ULTOSC, MFI, ADX,
  +DI, -DI, Aroon oscillator, PPO, TRIX, NATR) are divided by 100: RSI 70 becomes 0.70,
  Williams %R -20 becomes -0.20, CCI 150 becomes 1.5.
* ``logret_*`` are log returns, ``roc_*`` simple returns, ``close_sma_*`` etc. are relative
  distances (``close / SMA - 1``), all as fractions, not percent, not annualised.
* ``rvol_*`` and ``parkinson_14`` are daily (not annualised) volatilities of log returns.
* Volume features are dimensionless: volume enters only relative to its own trailing mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
import talib

from kallos.exceptions import ConfigError, DataValidationError
from kallos.features.labels import check_daily_index

__all__ = [
    "FAMILIES",
    "FEATURE_FAMILIES",
    "FEATURE_NAMES",
    "INDICATORS",
    "BarArrays",
    "IndicatorSpec",
    "compute_indicators",
    "warmup_days",
]

Family = Literal["momentum", "trend", "volatility", "volume", "return"]
PriceInputs = Literal["c", "hlc", "ohlc"]

FAMILIES: tuple[str, ...] = ("return", "momentum", "trend", "volatility", "volume")
"""Feature families, in the order they appear in :data:`FEATURE_NAMES`."""

_PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
_REQUIRED_COLUMNS: tuple[str, ...] = (*_PRICE_COLUMNS, "volume")
_VOLUME_MEAN_WINDOW = 30


class BarArrays(NamedTuple):
    """One contiguous run of bars as float64 arrays of shape (n_rows,), handed to a spec's ``fn``.

    Prices are as given (positive; only the columns a spec declares in ``inputs`` are
    guaranteed finite). ``volume`` is traded value per day with unknown (NaN or <= 0) entries
    replaced by 0; :func:`compute_indicators` masks volume features where that happened.
    """

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


@dataclass(frozen=True)
class IndicatorSpec:
    """One feature of the registry.

    Attributes
    ----------
    name : str
        Column name in the output of :func:`compute_indicators`.
    family : {"return", "momentum", "trend", "volatility", "volume"}
        Feature family.
    fn : callable
        ``fn(bars: BarArrays) -> ndarray of shape (n_rows,)``; causal (row ``i`` of the output
        depends on rows ``<= i`` only) and vectorised.
    lookback : int
        Number of leading rows of a complete run for which the feature is NaN (TA-Lib's
        "lookback"); the first value is at row ``lookback``.
    inputs : {"c", "hlc", "ohlc"}
        Price columns the feature needs: close only, high/low/close, or all four.
    volume_window : int
        0 for price-only features. Otherwise the feature is set to NaN on any row whose trailing
        ``volume_window`` rows contain an unknown volume (NaN or <= 0).
    description : str
        Formula and TA-Lib source in one line.
    """

    name: str
    family: Family
    fn: Callable[[BarArrays], np.ndarray]
    lookback: int
    inputs: PriceInputs = "c"
    volume_window: int = 0
    description: str = ""


# --------------------------------------------------------------------------------------------
# Building blocks. TA-Lib functions are causal and run on the whole array in C; nothing below
# loops over rows. Division by zero yields inf/NaN, which compute_indicators turns into NaN.
# --------------------------------------------------------------------------------------------


def _pct(values: np.ndarray) -> np.ndarray:
    """TA-Lib percent units to fractions."""
    return values / 100.0


def _log_return(b: BarArrays, days: int) -> np.ndarray:
    return np.log(talib.ROCR(b.close, timeperiod=days))


def _close_over_sma(b: BarArrays, days: int) -> np.ndarray:
    return b.close / talib.SMA(b.close, timeperiod=days) - 1.0


def _macd(b: BarArrays, output: int) -> np.ndarray:
    lines = talib.MACD(b.close, fastperiod=12, slowperiod=26, signalperiod=9)
    return lines[output] / b.close


def _stoch(b: BarArrays, output: int) -> np.ndarray:
    lines = talib.STOCH(
        b.high,
        b.low,
        b.close,
        fastk_period=14,
        slowk_period=3,
        slowk_matype=0,
        slowd_period=3,
        slowd_matype=0,
    )
    return _pct(lines[output])


def _bbands(b: BarArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return talib.BBANDS(b.close, timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0)


def _bb_pctb(b: BarArrays) -> np.ndarray:
    upper, _, lower = _bbands(b)
    return (b.close - lower) / (upper - lower)


def _bb_width(b: BarArrays) -> np.ndarray:
    upper, middle, lower = _bbands(b)
    return (upper - lower) / middle


def _realised_vol(b: BarArrays, days: int) -> np.ndarray:
    log_ret = np.log(talib.ROCR(b.close, timeperiod=1))
    return talib.STDDEV(log_ret, timeperiod=days, nbdev=1.0)


def _clv(b: BarArrays) -> np.ndarray:
    span = b.high - b.low
    location = (b.close - b.low) - (b.high - b.close)
    return np.divide(location, span, out=np.zeros_like(span), where=span > 0)


def _parkinson(b: BarArrays) -> np.ndarray:
    log_hl_sq = np.log(b.high / b.low) ** 2
    return np.sqrt(talib.SMA(log_hl_sq, timeperiod=14) / (4.0 * math.log(2.0)))


def _mean_volume(b: BarArrays) -> np.ndarray:
    return talib.SMA(b.volume, timeperiod=_VOLUME_MEAN_WINDOW)


def _volume_log_ratio(b: BarArrays) -> np.ndarray:
    return np.log(b.volume / _mean_volume(b))


def _volume_log_ratio_7_30(b: BarArrays) -> np.ndarray:
    return np.log(talib.SMA(b.volume, timeperiod=7) / _mean_volume(b))


def _obv_change(b: BarArrays) -> np.ndarray:
    obv = talib.OBV(b.close, b.volume)
    return talib.MOM(obv, timeperiod=10) / _mean_volume(b)


def _adosc(b: BarArrays) -> np.ndarray:
    return talib.ADOSC(b.high, b.low, b.close, b.volume, fastperiod=3, slowperiod=10) / _mean_volume(b)


def _mfi(b: BarArrays) -> np.ndarray:
    # TA-Lib's money flow is typical price x volume in base units; volume here is traded
    # value, so divide by the close to recover base units (classic MFI, money flow in USD).
    return _pct(talib.MFI(b.high, b.low, b.close, b.volume / b.close, timeperiod=14))


def _spec(
    name: str,
    family: Family,
    fn: Callable[[BarArrays], np.ndarray],
    lookback: int,
    inputs: PriceInputs = "c",
    volume_window: int = 0,
    description: str = "",
) -> IndicatorSpec:
    return IndicatorSpec(name, family, fn, lookback, inputs, volume_window, description)


_V = _VOLUME_MEAN_WINDOW

_SPECS: tuple[IndicatorSpec, ...] = (
    # return ------------------------------------------------------------------------------
    *(
        _spec(
            f"logret_{d}",
            "return",
            lambda b, d=d: _log_return(b, d),
            d,
            description=f"log(close_t / close_(t-{d})); log(talib.ROCR(close, {d}))",
        )
        for d in (1, 3, 7, 14, 30)
    ),
    # momentum ----------------------------------------------------------------------------
    *(
        _spec(
            f"rsi_{d}",
            "momentum",
            lambda b, d=d: _pct(talib.RSI(b.close, timeperiod=d)),
            d,
            description=f"talib.RSI(close, {d}) / 100 (Wilder 1978), in [0, 1]",
        )
        for d in (7, 14)
    ),
    _spec(
        "stoch_k",
        "momentum",
        lambda b: _stoch(b, 0),
        17,
        "hlc",
        description="talib.STOCH(14, 3, 3) slow %K / 100 (Lane), in [0, 1]",
    ),
    _spec(
        "stoch_d",
        "momentum",
        lambda b: _stoch(b, 1),
        17,
        "hlc",
        description="talib.STOCH(14, 3, 3) slow %D / 100, in [0, 1]",
    ),
    _spec(
        "willr_14",
        "momentum",
        lambda b: _pct(talib.WILLR(b.high, b.low, b.close, timeperiod=14)),
        13,
        "hlc",
        description="talib.WILLR(14) / 100 (Williams %R), in [-1, 0]",
    ),
    _spec(
        "cci_20",
        "momentum",
        lambda b: _pct(talib.CCI(b.high, b.low, b.close, timeperiod=20)),
        19,
        "hlc",
        description="talib.CCI(20) / 100 (Lambert 1980), unbounded, mostly in [-3, 3]",
    ),
    _spec(
        "cmo_14",
        "momentum",
        lambda b: _pct(talib.CMO(b.close, timeperiod=14)),
        14,
        description="talib.CMO(close, 14) / 100 (Chande & Kroll 1994), in [-1, 1]",
    ),
    _spec(
        "ultosc",
        "momentum",
        lambda b: _pct(talib.ULTOSC(b.high, b.low, b.close, timeperiod1=7, timeperiod2=14, timeperiod3=28)),
        28,
        "hlc",
        description="talib.ULTOSC(7, 14, 28) / 100 (Williams 1985), in [0, 1]",
    ),
    *(
        _spec(
            f"roc_{d}",
            "momentum",
            lambda b, d=d: talib.ROCP(b.close, timeperiod=d),
            d,
            description=f"talib.ROCP(close, {d}): simple return close_t / close_(t-{d}) - 1",
        )
        for d in (10, 20, 60)
    ),
    _spec(
        "ppo",
        "momentum",
        lambda b: _pct(talib.PPO(b.close, fastperiod=12, slowperiod=26, matype=1)),
        25,
        description="talib.PPO(close, 12, 26, EMA) / 100 = EMA12 / EMA26 - 1",
    ),
    _spec(
        "macd",
        "momentum",
        lambda b: _macd(b, 0),
        33,
        description="talib.MACD(close, 12, 26, 9) MACD line / close (Appel)",
    ),
    _spec(
        "macd_signal",
        "momentum",
        lambda b: _macd(b, 1),
        33,
        description="talib.MACD(close, 12, 26, 9) signal line / close",
    ),
    _spec(
        "macd_hist",
        "momentum",
        lambda b: _macd(b, 2),
        33,
        description="talib.MACD(close, 12, 26, 9) histogram / close",
    ),
    _spec(
        "trix_15",
        "momentum",
        lambda b: _pct(talib.TRIX(b.close, timeperiod=15)),
        43,
        description="talib.TRIX(close, 15) / 100: 1-day rate of change of a triple EMA (Hutson)",
    ),
    _spec(
        "bop",
        "momentum",
        lambda b: talib.BOP(b.open, b.high, b.low, b.close),
        0,
        "ohlc",
        description="talib.BOP: (close - open) / (high - low), in [-1, 1]",
    ),
    _spec(
        "clv",
        "momentum",
        _clv,
        0,
        "hlc",
        description="close location value ((c - l) - (h - c)) / (h - l), 0 when h == l; in [-1, 1]",
    ),
    # trend -------------------------------------------------------------------------------
    *(
        _spec(
            f"close_sma_{d}",
            "trend",
            lambda b, d=d: _close_over_sma(b, d),
            d - 1,
            description=f"close / talib.SMA(close, {d}) - 1",
        )
        for d in (10, 20, 50)
    ),
    _spec(
        "close_ema_26",
        "trend",
        lambda b: b.close / talib.EMA(b.close, timeperiod=26) - 1.0,
        25,
        description="close / talib.EMA(close, 26) - 1",
    ),
    _spec(
        "sma_10_50",
        "trend",
        lambda b: talib.SMA(b.close, timeperiod=10) / talib.SMA(b.close, timeperiod=50) - 1.0,
        49,
        description="talib.SMA(close, 10) / talib.SMA(close, 50) - 1 (moving-average crossover gap)",
    ),
    _spec(
        "adx_14",
        "trend",
        lambda b: _pct(talib.ADX(b.high, b.low, b.close, timeperiod=14)),
        27,
        "hlc",
        description="talib.ADX(14) / 100 (Wilder 1978), in [0, 1]",
    ),
    _spec(
        "plus_di_14",
        "trend",
        lambda b: _pct(talib.PLUS_DI(b.high, b.low, b.close, timeperiod=14)),
        14,
        "hlc",
        description="talib.PLUS_DI(14) / 100 (Wilder 1978), in [0, 1]",
    ),
    _spec(
        "minus_di_14",
        "trend",
        lambda b: _pct(talib.MINUS_DI(b.high, b.low, b.close, timeperiod=14)),
        14,
        "hlc",
        description="talib.MINUS_DI(14) / 100 (Wilder 1978), in [0, 1]",
    ),
    _spec(
        "aroonosc_14",
        "trend",
        lambda b: _pct(talib.AROONOSC(b.high, b.low, timeperiod=14)),
        14,
        "hlc",
        description="talib.AROONOSC(14) / 100 (Chande 1995), in [-1, 1]",
    ),
    _spec(
        "linreg_slope_14",
        "trend",
        lambda b: talib.LINEARREG_SLOPE(np.log(b.close), timeperiod=14),
        13,
        description="talib.LINEARREG_SLOPE(log close, 14): OLS trend in log price per day",
    ),
    # volatility --------------------------------------------------------------------------
    _spec(
        "natr_14",
        "volatility",
        lambda b: _pct(talib.NATR(b.high, b.low, b.close, timeperiod=14)),
        14,
        "hlc",
        description="talib.NATR(14) / 100 = ATR / close (Wilder 1978)",
    ),
    _spec(
        "bb_pctb_20",
        "volatility",
        _bb_pctb,
        19,
        description="Bollinger %B from talib.BBANDS(close, 20, 2, 2): (c - lower) / (upper - lower)",
    ),
    _spec(
        "bb_width_20",
        "volatility",
        _bb_width,
        19,
        description="Bollinger bandwidth from talib.BBANDS(close, 20, 2, 2): (upper - lower) / middle",
    ),
    *(
        _spec(
            f"rvol_{d}",
            "volatility",
            lambda b, d=d: _realised_vol(b, d),
            d,
            description=f"talib.STDDEV(daily log return, {d}): population std (ddof=0), daily",
        )
        for d in (7, 30)
    ),
    _spec(
        "hl_range",
        "volatility",
        lambda b: (b.high - b.low) / b.close,
        0,
        "hlc",
        description="(high - low) / close",
    ),
    _spec(
        "parkinson_14",
        "volatility",
        _parkinson,
        13,
        "hlc",
        description="Parkinson (1980) range volatility sqrt(mean_14(log(h/l)^2) / (4 log 2)), daily",
    ),
    # volume ------------------------------------------------------------------------------
    _spec(
        "volume_log_ratio_30",
        "volume",
        _volume_log_ratio,
        _V - 1,
        "c",
        _V,
        description="log(volume / talib.SMA(volume, 30))",
    ),
    _spec(
        "volume_log_ratio_7_30",
        "volume",
        _volume_log_ratio_7_30,
        _V - 1,
        "c",
        _V,
        description="log(talib.SMA(volume, 7) / talib.SMA(volume, 30))",
    ),
    _spec(
        "obv_change_10",
        "volume",
        _obv_change,
        _V - 1,
        "c",
        _V,
        description="talib.MOM(talib.OBV(close, volume), 10) / talib.SMA(volume, 30) (Granville 1963)",
    ),
    _spec(
        "adosc_3_10",
        "volume",
        _adosc,
        _V - 1,
        "hlc",
        _V,
        description="talib.ADOSC(3, 10) / talib.SMA(volume, 30) (Chaikin A/D oscillator)",
    ),
    _spec(
        "mfi_14",
        "volume",
        _mfi,
        14,
        "hlc",
        14,
        description="talib.MFI(14) / 100 with base-unit volume = volume / close (Quong & Soudack 1989)",
    ),
)

INDICATORS: Mapping[str, IndicatorSpec] = MappingProxyType({s.name: s for s in _SPECS})
"""Read-only registry: feature name -> :class:`IndicatorSpec`, in :data:`FEATURE_NAMES` order."""

FEATURE_NAMES: tuple[str, ...] = tuple(INDICATORS)
"""Feature names in the stable column order of :func:`compute_indicators`."""

FEATURE_FAMILIES: Mapping[str, str] = MappingProxyType({s.name: s.family for s in _SPECS})
"""Read-only map: feature name -> family (one of :data:`FAMILIES`)."""


def _resolve(names: Sequence[str] | None) -> tuple[IndicatorSpec, ...]:
    if names is None:
        return _SPECS
    if isinstance(names, str):
        names = (names,)
    unknown = [n for n in names if n not in INDICATORS]
    if unknown:
        raise ConfigError(f"unknown feature name(s) {unknown}; known: {list(FEATURE_NAMES)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate feature name(s) in {list(names)}")
    return tuple(INDICATORS[n] for n in names)


def warmup_days(names: Sequence[str] | None = None) -> int:
    """Longest lookback, in days, of the requested features.

    Parameters
    ----------
    names : sequence of str, optional
        Feature names; all of :data:`FEATURE_NAMES` when omitted.

    Returns
    -------
    int
        On a complete run of bars (no missing prices or volumes), rows ``0 .. warmup - 1`` of
        :func:`compute_indicators` contain NaN and every row from ``warmup`` on is complete. After
        a gap the same warm-up applies again from the first row after the gap.
    """
    return max((s.lookback for s in _resolve(names)), default=0)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open ``[start, stop)`` bounds of the maximal runs of True in ``mask``."""
    edges = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def _trailing_any(flags: np.ndarray, window: int) -> np.ndarray:
    """``out[i]`` is True when any of ``flags[max(0, i - window + 1) .. i]`` is True (causal)."""
    counts = np.concatenate(([0], np.cumsum(flags, dtype=np.int64)))
    idx = np.arange(flags.size)
    return (counts[idx + 1] - counts[np.maximum(idx + 1 - window, 0)]) > 0


def _validated_arrays(bars: pd.DataFrame, coin_id: str | None) -> dict[str, np.ndarray]:
    who = f" for coin {coin_id!r}" if coin_id else ""
    if not isinstance(bars, pd.DataFrame):
        raise DataValidationError(f"bars{who}: expected a pandas DataFrame, got {type(bars).__name__}")
    missing = [c for c in _REQUIRED_COLUMNS if c not in bars.columns]
    if missing:
        raise DataValidationError(f"bars{who}: missing column(s) {missing}; need {list(_REQUIRED_COLUMNS)}")
    check_daily_index(bars.index, what="bars", coin_id=coin_id)
    arrays: dict[str, np.ndarray] = {}
    for col in _REQUIRED_COLUMNS:
        try:
            values = bars[col].to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise DataValidationError(f"bars{who}: column {col!r} is not numeric ({exc})") from exc
        floor_ok = values >= 0 if col == "volume" else values > 0
        bad = np.flatnonzero(~np.isnan(values) & ~(np.isfinite(values) & floor_ok))
        if bad.size:
            i = int(bad[0])
            rule = "finite and >= 0 (or NaN)" if col == "volume" else "positive and finite (or NaN)"
            raise DataValidationError(
                f"bars{who}: {col} must be {rule}, got {values[i]!r} on {bars.index[i].date()}"
            )
        arrays[col] = np.ascontiguousarray(values)
    return arrays


def compute_indicators(
    bars: pd.DataFrame, *, names: Sequence[str] | None = None, coin_id: str | None = None
) -> pd.DataFrame:
    """Compute the scale-free technical features of one coin from its daily OHLCV bars.

    Parameters
    ----------
    bars : pd.DataFrame of shape (n_days, >= 5)
        One coin's bars with columns ``open``, ``high``, ``low``, ``close`` (prices, positive,
        one currency) and ``volume`` (traded value per day in USD; NaN or 0 when unknown). The
        index is a complete daily ``DatetimeIndex`` (one row per calendar day, sorted, no
        duplicates) stamped at each day's close. Missing prices are NaN. Other columns are ignored.
    names : sequence of str, optional
        Subset of :data:`FEATURE_NAMES` to compute, in the order wanted; all when omitted.
    coin_id : str, optional
        Coin named in error messages.

    Returns
    -------
    pd.DataFrame of shape (n_days, n_features)
        Float64 features, same index as ``bars``, columns ``names`` (default
        :data:`FEATURE_NAMES`). Units are listed in the module docstring and in each
        ``INDICATORS[name].description``. No ±inf: any non-finite value is NaN.

    Raises
    ------
    DataValidationError
        On a missing column, a non-numeric column, an index that is not strictly daily
        consecutive, a non-positive or infinite price, or a negative or infinite volume. The
        message names the first offending date.
    ConfigError
        On an unknown or duplicated name in ``names``.

    Notes
    -----
    *Causality.* Row ``t`` depends on rows ``<= t`` only: TA-Lib runs forward through time
    and every window here is trailing.

    *Missing prices.* A row lacking a price that a feature needs (``close`` for most, ``high``
    and ``low`` for range-based ones, ``open`` for ``bop``) is a gap for that feature. Each
    feature is computed separately on every maximal run of rows where its inputs are present,
    so the feature is NaN on the gap and restarts with its full warm-up
    (``INDICATORS[name].lookback`` rows) after it. TA-Lib would otherwise carry one NaN
    through every later value of a recursive indicator (EMA, RSI, ADX). A close-only source
    (no open/high/low) therefore still yields the close-based features; the others are NaN.

    *Missing volume.* Volumes that are NaN or <= 0 are unknown. They are replaced by 0 in the
    arrays handed to TA-Lib (so OBV, A/D and the money flow ignore that day) and every volume
    feature is set to NaN on rows whose trailing ``INDICATORS[name].volume_window`` days (30,
    14 for MFI) include an unknown volume. Price features are unaffected by volume.

    *Scale.* Every feature is invariant to multiplying all prices by a constant, and to
    multiplying volume by a constant (up to floating-point rounding).

    *Speed.* About 4 ms for 4,700 rows of one coin: one vectorised TA-Lib call per feature per
    run of complete rows.

    References
    ----------
    J. W. Wilder, *New Concepts in Technical Trading Systems*, 1978 (RSI, ATR, ADX, ±DI).
    J. Bollinger, *Bollinger on Bollinger Bands*, 2001. M. Parkinson, "The extreme value
    method for estimating the variance of the rate of return", J. Business 53(1), 1980.
    TA-Lib function reference: https://ta-lib.org/functions/
    """
    specs = _resolve(names)
    arrays = _validated_arrays(bars, coin_id)
    n_rows = len(bars)
    out = np.full((n_rows, len(specs)), np.nan)

    volume = arrays["volume"]
    volume_known = np.isfinite(volume) & (volume > 0)
    volume_filled = np.where(volume_known, volume, 0.0)
    present = {c: np.isfinite(arrays[c]) for c in _PRICE_COLUMNS}
    masks: dict[PriceInputs, np.ndarray] = {"c": present["close"]}
    masks["hlc"] = masks["c"] & present["high"] & present["low"]
    masks["ohlc"] = masks["hlc"] & present["open"]

    with np.errstate(divide="ignore", invalid="ignore"):
        for inputs, mask in masks.items():
            columns = [j for j, s in enumerate(specs) if s.inputs == inputs]
            if not columns:
                continue
            for start, stop in _runs(mask):
                run = BarArrays(
                    *(arrays[c][start:stop] for c in _PRICE_COLUMNS), volume=volume_filled[start:stop]
                )
                for j in columns:
                    out[start:stop, j] = specs[j].fn(run)
        for j, spec in enumerate(specs):
            if spec.volume_window:
                out[_trailing_any(~volume_known, spec.volume_window), j] = np.nan

    out[~np.isfinite(out)] = np.nan
    return pd.DataFrame(out, index=bars.index.copy(), columns=[s.name for s in specs])
