"""Accuracy of return forecasts against realised returns, relative to a baseline forecaster.

Inputs are long frames with one row per (forecaster, coin, decision date): ``forecast`` and
``realised`` are both ``h``-day forward **log** returns starting strictly after ``as_of``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd

from kallos.exceptions import DataValidationError

__all__ = [
    "ForecastEvaluation",
    "diebold_mariano",
    "dm_tests",
    "forecast_accuracy",
    "forecast_evaluation",
    "pesaran_timmermann",
    "pt_tests",
    "residuals",
    "with_zero_forecasts",
]

_REQUIRED: Final[tuple[str, ...]] = ("forecaster", "coin_id", "as_of", "forecast", "realised")
_METRICS: Final[tuple[str, ...]] = (
    "n",
    "start",
    "end",
    "rmse",
    "mae",
    "directional_accuracy",
    "majority_accuracy",
    "r2_oos",
)
ZERO: Final[str] = "zero"
_RELATIVE: Final[tuple[str, ...]] = ("rmse_ratio", "mae_ratio", "da_diff")


def _require(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [col for col in columns if col not in frame.columns]
    if missing:
        raise DataValidationError(f"forecasts frame lacks column(s) {missing}; has {list(frame.columns)}")


def _quarter(as_of: pd.Series) -> pd.Series:
    """Calendar quarter label such as ``"2022Q1"`` of each (UTC) date."""
    dates = pd.to_datetime(as_of)
    if dates.dt.tz is not None:
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    return dates.dt.to_period("Q").astype(str)


def residuals(forecasts: pd.DataFrame) -> pd.DataFrame:
    """Add the forecast error ``residual = realised - forecast`` to a forecasts frame.

    Parameters
    ----------
    forecasts : pd.DataFrame of shape (n_rows, n_columns)
        Must hold ``forecast`` and ``realised`` (``h``-day forward log returns).

    Returns
    -------
    pd.DataFrame of shape (n_rows, n_columns + 1)
        A copy of ``forecasts`` with a ``residual`` column (log-return units; NaN where
        either input is NaN). The input is not modified.

    Raises
    ------
    DataValidationError
        If ``forecast`` or ``realised`` is missing.

    References
    ----------
    .. [1] Hyndman, R. J. and Athanasopoulos, G. (2021). *Forecasting: Principles and
       Practice*, 3rd ed., OTexts, section 5.8 (forecast errors), https://otexts.com/fpp3/
    """
    _require(forecasts, ("forecast", "realised"))
    out = forecasts.copy()
    out["residual"] = out["realised"].astype(float) - out["forecast"].astype(float)
    return out


def forecast_accuracy(
    forecasts: pd.DataFrame,
    *,
    by: Sequence[str] = ("forecaster", "coin_id", "quarter"),
    baseline: str = "naive_persistence",
) -> pd.DataFrame:
    """RMSE, MAE and directional accuracy per group, and their ratio to a baseline forecaster.

    Parameters
    ----------
    forecasts : pd.DataFrame of shape (n_rows, >= 5)
        Long frame with columns ``forecaster`` (str), ``coin_id`` (str), ``as_of``
        (datetime64, the decision date), ``forecast`` and ``realised`` (``h``-day forward
        log returns, same horizon on every row), plus any other column named in ``by``.
    by : sequence of str, default ("forecaster", "coin_id", "quarter")
        Grouping columns. ``"quarter"``, when not already a column, is derived from
        ``as_of`` as the calendar quarter label (e.g. ``"2022Q1"``).
    baseline : str, default "naive_persistence"
        Name of the reference forecaster in ``forecaster``.

    Returns
    -------
    pd.DataFrame
        One row per group, sorted by ``by``, columns ``*by, n, start, end, rmse, mae,
        directional_accuracy, rmse_ratio, mae_ratio, da_diff``:

        * ``n``: rows scored; ``start``, ``end``: first and last ``as_of`` of the group
          (datetime64), so the evaluated period is explicit.
        * ``rmse = sqrt(mean((realised - forecast)^2))``, ``mae = mean(|realised - forecast|)``,
          both in log-return units over the horizon.
        * ``directional_accuracy``: fraction of rows with ``sign(forecast) == sign(realised)``.
        * ``majority_accuracy``: the directional accuracy of always predicting the sign that was
          most frequent in the group (known only ex post: the bar a forecaster's direction must
          clear).
        * ``r2_oos``: out-of-sample R² against the zero forecast,
          ``1 - sum((realised - forecast)^2) / sum(realised^2)`` (Campbell and Thompson 2008;
          Gu, Kelly and Xiu 2020): positive only when the forecast beats predicting 0.
        * ``rmse_ratio``, ``mae_ratio``: the group's score divided by the baseline's score on
          the group with the same non-``forecaster`` keys (e.g. the same coin and quarter);
          1.0 for the baseline itself, below 1 when better than the baseline (``inf`` when
          the baseline's error is exactly 0 and the group's is not).
        * ``da_diff``: directional accuracy minus the baseline's (0.0 for the baseline).

        The relative columns are NaN when ``baseline`` is absent, when ``"forecaster"`` is
        not in ``by``, or for a group whose baseline counterpart is missing.

    Raises
    ------
    DataValidationError
        If a required column or a column of ``by`` is missing.

    Notes
    -----
    Rows with a NaN ``realised`` (the horizon has not elapsed) or a NaN ``forecast`` are
    dropped before scoring; ``n`` counts what remains, and groups left empty disappear.
    The baseline ratio compares groups, not matched rows: when the baseline scored other
    dates of the group than the forecaster, both are still compared on their own rows.

    Directional accuracy uses ``numpy.sign``: a zero forecast is a hit only when the
    realised return is exactly zero too, and a non-zero forecast is a miss when the
    realised return is exactly zero.

    References
    ----------
    .. [1] Hyndman, R. J. and Koehler, A. B. (2006). "Another look at measures of forecast
       accuracy". International Journal of Forecasting, 22(4), 679-688 (relative measures
       against a benchmark method).
    .. [2] Pesaran, M. H. and Timmermann, A. (1992). "A Simple Nonparametric Test of
       Predictive Performance". Journal of Business & Economic Statistics, 10(4), 461-465
       (directional accuracy as the proportion of correctly predicted signs).
    .. [3] Campbell, J. Y. and Thompson, S. B. (2008). "Predicting Excess Stock Returns Out of
       Sample: Can Anything Beat the Historical Average?". Review of Financial Studies, 21(4),
       1509-1531; Gu, S., Kelly, B. and Xiu, D. (2020). "Empirical Asset Pricing via Machine
       Learning". Review of Financial Studies, 33(5), 2223-2273 (R² against a zero forecast).
    """
    by = list(by)
    derive_quarter = "quarter" in by and "quarter" not in forecasts.columns
    _require(forecasts, _REQUIRED)
    _require(forecasts, [col for col in by if not (col == "quarter" and derive_quarter)])

    frame = forecasts.dropna(subset=["realised", "forecast"])
    columns = [*by, *_METRICS, *_RELATIVE]
    if frame.empty:
        return pd.DataFrame(columns=columns)

    forecast = frame["forecast"].to_numpy(dtype=float)
    realised = frame["realised"].to_numpy(dtype=float)
    work = pd.DataFrame(
        {
            "as_of": frame["as_of"],
            "_se": (realised - forecast) ** 2,
            "_ae": np.abs(realised - forecast),
            "_hit": (np.sign(forecast) == np.sign(realised)).astype(float),
            "_up": (realised > 0).astype(float),
            "_down": (realised < 0).astype(float),
            "_y2": realised**2,
        },
        index=frame.index,
    )
    for col in by:
        work[col] = _quarter(frame["as_of"]) if (col == "quarter" and derive_quarter) else frame[col]
    aggregations = {
        "n": ("_se", "size"),
        "start": ("as_of", "min"),
        "end": ("as_of", "max"),
        "rmse": ("_se", "mean"),
        "mae": ("_ae", "mean"),
        "directional_accuracy": ("_hit", "mean"),
        "_up": ("_up", "mean"),
        "_down": ("_down", "mean"),
        "_y2": ("_y2", "mean"),
    }
    if by:
        scores = work.groupby(by, sort=True, observed=True, dropna=False).agg(**aggregations).reset_index()
    else:
        scores = pd.DataFrame(
            {name: [getattr(work[src], func)()] for name, (src, func) in aggregations.items()}
        )
    scores["n"] = scores["n"].astype("int64")
    mse = scores["rmse"].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores["r2_oos"] = 1.0 - mse / scores["_y2"].astype(float)
    scores["majority_accuracy"] = np.maximum(scores["_up"], scores["_down"])
    scores["rmse"] = np.sqrt(mse)

    scores[list(_RELATIVE)] = np.nan
    if "forecaster" in by and (scores["forecaster"] == baseline).any():
        keys = [col for col in by if col != "forecaster"]
        base = scores.loc[scores["forecaster"] == baseline, [*keys, "rmse", "mae", "directional_accuracy"]]
        base = base.rename(columns={"rmse": "_rmse", "mae": "_mae", "directional_accuracy": "_da"})
        if keys:
            merged = scores[keys].merge(base, on=keys, how="left")
        else:
            merged = pd.DataFrame({c: np.repeat(base[c].to_numpy(), len(scores)) for c in base.columns})
        with np.errstate(divide="ignore", invalid="ignore"):
            scores["rmse_ratio"] = scores["rmse"].to_numpy() / merged["_rmse"].to_numpy()
            scores["mae_ratio"] = scores["mae"].to_numpy() / merged["_mae"].to_numpy()
        scores["da_diff"] = scores["directional_accuracy"].to_numpy() - merged["_da"].to_numpy()
        is_base = (scores["forecaster"] == baseline).to_numpy()
        scores.loc[is_base, ["rmse_ratio", "mae_ratio"]] = 1.0
        scores.loc[is_base, "da_diff"] = 0.0
    return scores[columns].reset_index(drop=True)


# --------------------------------------------------------------------------- Diebold-Mariano


def diebold_mariano(
    loss_model: np.ndarray | pd.Series, loss_baseline: np.ndarray | pd.Series, horizon: int
) -> tuple[float, float, int]:
    """Diebold-Mariano test of equal predictive accuracy with the HLN small-sample correction.

    Parameters
    ----------
    loss_model, loss_baseline : shape (T,) losses of two forecasts of the same targets
        (here squared errors of ``horizon``-day log-return forecasts), aligned in time.
    horizon : forecast horizon ``h`` in steps; the long-run variance of the loss differential
        uses autocovariances up to lag ``h - 1`` (rectangular window), as ``h``-step forecast
        errors are at most MA(h-1).

    Returns
    -------
    (statistic, p_value, T): ``statistic = sqrt((T + 1 - 2h + h(h-1)/T) / T) * dbar / sqrt(V)``
    with ``d = loss_model - loss_baseline``, ``dbar = mean(d)``,
    ``V = (gamma_0 + 2 sum_{k=1}^{h-1} gamma_k) / T`` (autocovariances with divisor T); the
    two-sided p-value uses Student's t with ``T - 1`` degrees of freedom. A negative statistic
    means the model's loss is lower than the baseline's. NaN when ``T < 2`` or ``V <= 0``
    (the rectangular-window variance can be non-positive; then the test is undefined).

    Notes
    -----
    For ``h = 1`` the statistic equals the one-sample t statistic of ``d`` (checked in the tests
    against :func:`scipy.stats.ttest_1samp`).

    References
    ----------
    .. [1] Diebold, F. X. and Mariano, R. S. (1995). "Comparing Predictive Accuracy".
       Journal of Business & Economic Statistics, 13(3), 253-263.
    .. [2] Harvey, D., Leybourne, S. and Newbold, P. (1997). "Testing the equality of prediction
       mean squared errors". International Journal of Forecasting, 13(2), 281-291.
    """
    from scipy import stats

    d = np.asarray(loss_model, dtype=float) - np.asarray(loss_baseline, dtype=float)
    d = d[np.isfinite(d)]
    t, h = len(d), int(horizon)
    if h < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if t < 2:
        return math.nan, math.nan, t
    dev = d - d.mean()
    gamma = [float(dev[k:] @ dev[: t - k]) / t for k in range(min(h, t))]
    var = (gamma[0] + 2.0 * sum(gamma[1:])) / t
    if not var > 0:
        return math.nan, math.nan, t
    correction = math.sqrt(max(t + 1 - 2 * h + h * (h - 1) / t, 0.0) / t)
    stat = correction * float(d.mean()) / math.sqrt(var)
    p = float(2.0 * stats.t.sf(abs(stat), df=t - 1))
    return stat, p, t


_DM_COLUMNS: Final[tuple[str, ...]] = (
    "forecaster",
    "coin_id",
    "baseline",
    "n",
    "horizon",
    "mse",
    "mse_baseline",
    "dm_stat",
    "p_value",
)


def dm_tests(
    forecasts: pd.DataFrame, baseline: str = "naive_persistence", horizon: int | None = None
) -> pd.DataFrame:
    """Diebold-Mariano (HLN) test of every forecaster against ``baseline``, per coin and pooled.

    Squared-error loss on the dates both forecasters scored (matched on ``coin_id`` and
    ``as_of``). ``horizon`` defaults to the frame's ``horizon`` column. The loss differential is
    taken in ``as_of`` order; where a coin left the universe for a while the series has gaps and
    the lags count forecasts, not days (daily forecasts of an ``h``-day label overlap, hence h-1 lags).
    The pooled row (``coin_id == "all"``) tests the cross-sectional mean of the coins' loss
    differentials per date, one series over time, so the dependence between coins is kept.
    ``baseline="zero"`` needs no rows for the zero forecast: its loss is ``realised^2``.

    Returns
    -------
    pd.DataFrame, one row per (forecaster, coin) plus one pooled row per forecaster, columns
    ``forecaster, coin_id, baseline, n, horizon, mse, mse_baseline, dm_stat, p_value`` (see
    :func:`diebold_mariano`); empty when the baseline is absent.

    Raises
    ------
    DataValidationError
        If a required column is missing, or no horizon is given or present.
    """
    _require(forecasts, _REQUIRED)
    if horizon is None:
        _require(forecasts, ("horizon",))
        hs = forecasts["horizon"].dropna().unique()
        if len(hs) != 1:
            raise DataValidationError(f"forecasts frame mixes horizons {sorted(hs)}; pass horizon=")
        horizon = int(hs[0])
    if baseline == ZERO:
        forecasts = with_zero_forecasts(forecasts)
    frame = forecasts.dropna(subset=["realised", "forecast"])
    frame = frame.assign(_se=(frame["realised"].astype(float) - frame["forecast"].astype(float)) ** 2)
    base = frame.loc[frame["forecaster"] == baseline, ["coin_id", "as_of", "_se"]]
    rows: list[tuple] = []
    if base.empty:
        return pd.DataFrame(rows, columns=list(_DM_COLUMNS))
    for name, g in frame[frame["forecaster"] != baseline].groupby("forecaster", sort=True):
        m = g[["coin_id", "as_of", "_se"]].merge(base, on=["coin_id", "as_of"], suffixes=("", "_b"))
        m = m.sort_values(["coin_id", "as_of"])
        for coin, c in m.groupby("coin_id", sort=True):
            stat, p, n = diebold_mariano(c["_se"].to_numpy(), c["_se_b"].to_numpy(), horizon)
            rows.append((name, coin, baseline, n, horizon, c["_se"].mean(), c["_se_b"].mean(), stat, p))
        daily = m.assign(_d=m["_se"] - m["_se_b"]).groupby("as_of", sort=True)[["_d", "_se", "_se_b"]].mean()
        stat, p, _ = diebold_mariano(daily["_d"].to_numpy(), np.zeros(len(daily)), horizon)
        rows.append((name, "all", baseline, len(m), horizon, m["_se"].mean(), m["_se_b"].mean(), stat, p))
    return pd.DataFrame(rows, columns=list(_DM_COLUMNS))


def with_zero_forecasts(forecasts: pd.DataFrame) -> pd.DataFrame:
    """Add ``forecaster == "zero"`` rows (forecast 0) on every scored (coin, date), unless present.

    The zero forecast is the random walk every return forecast is judged against first.
    """
    if (forecasts["forecaster"] == ZERO).any():
        return forecasts
    keys = forecasts.drop_duplicates(["coin_id", "as_of"]).assign(forecaster=ZERO, forecast=0.0)
    return pd.concat([forecasts, keys], ignore_index=True)


# --------------------------------------------------------------------------- Pesaran-Timmermann


def pesaran_timmermann(forecast: np.ndarray, realised: np.ndarray, horizon: int = 1) -> dict[str, float]:
    """Pesaran-Timmermann test of directional accuracy, classic and serial-correlation robust.

    Parameters
    ----------
    forecast, realised : shape (T,), aligned in time (NaN pairs dropped); only signs are used
        (a sign is "up" when > 0).
    horizon : overlap of consecutive labels (``h``-day labels forecast daily overlap ``h - 1``
        days); sets the Newey-West lags of the robust version, ``max(h - 1, floor(4 (T/100)^(2/9)))``.

    Returns
    -------
    dict with ``n``, ``accuracy`` (share of correct signs ``P``), ``expected`` (``P*`` under
    independence of the signs), ``pt_stat`` and ``p_value`` (classic, one-sided: larger =
    better than chance), ``hac_stat`` and ``hac_p_value`` (the t-statistic of the slope of
    ``1{y > 0}`` on ``1{f > 0}`` with Newey-West standard errors, one-sided), all NaN when
    either sign series is constant (e.g. a zero forecast).

    Notes
    -----
    Classic: ``PT = (P - P*) / sqrt(V(P) - V(P*))`` with ``P* = p_y p_x + (1-p_y)(1-p_x)``,
    ``V(P) = P*(1-P*)/T`` and ``V(P*) = (2p_y-1)^2 p_x(1-p_x)/T + (2p_x-1)^2 p_y(1-p_y)/T +
    4 p_y p_x (1-p_y)(1-p_x)/T^2``; asymptotically N(0, 1) for independent observations. Daily
    forecasts of overlapping labels are serially correlated, which inflates the classic test's
    size; the regression form is asymptotically equivalent and its HAC version stays valid
    (Pesaran and Timmermann 2009).

    References
    ----------
    .. [1] Pesaran, M. H. and Timmermann, A. (1992). "A Simple Nonparametric Test of Predictive
       Performance". Journal of Business & Economic Statistics, 10(4), 461-465.
    .. [2] Pesaran, M. H. and Timmermann, A. (2009). "Testing Dependence Among Serially Correlated
       Multicategory Variables". Journal of the American Statistical Association, 104(485), 325-337.
    """
    import statsmodels.api as sm
    from scipy import stats

    f = np.asarray(forecast, dtype=float)
    y = np.asarray(realised, dtype=float)
    ok = np.isfinite(f) & np.isfinite(y)
    f, y = f[ok], y[ok]
    t = int(f.size)
    x_up, y_up = (f > 0).astype(float), (y > 0).astype(float)
    out = dict.fromkeys(("accuracy", "expected", "pt_stat", "p_value", "hac_stat", "hac_p_value"), math.nan)
    out["n"] = float(t)
    if t < 10:
        return out
    px, py = x_up.mean(), y_up.mean()
    accuracy = float((x_up == y_up).mean())
    out["accuracy"] = accuracy
    if px in (0.0, 1.0) or py in (0.0, 1.0):
        return out
    expected = py * px + (1 - py) * (1 - px)
    v_p = expected * (1 - expected) / t
    v_star = (
        (2 * py - 1) ** 2 * px * (1 - px) / t
        + (2 * px - 1) ** 2 * py * (1 - py) / t
        + 4 * py * px * (1 - py) * (1 - px) / t**2
    )
    out["expected"] = float(expected)
    if v_p - v_star > 0:
        out["pt_stat"] = float((accuracy - expected) / math.sqrt(v_p - v_star))
        out["p_value"] = float(stats.norm.sf(out["pt_stat"]))
    lags = max(int(horizon) - 1, int(4 * (t / 100.0) ** (2.0 / 9.0)))
    fit = sm.OLS(y_up, sm.add_constant(x_up)).fit(cov_type="HAC", cov_kwds={"maxlags": lags})
    out["hac_stat"] = float(fit.tvalues[1])
    out["hac_p_value"] = float(stats.norm.sf(out["hac_stat"]))
    return out


_PT_COLUMNS: Final[tuple[str, ...]] = (
    "forecaster",
    "coin_id",
    "n",
    "accuracy",
    "majority_accuracy",
    "expected",
    "pt_stat",
    "p_value",
    "hac_stat",
    "hac_p_value",
)


def pt_tests(forecasts: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """:func:`pesaran_timmermann` per forecaster and coin, and pooled over coins (``coin_id == "all"``).

    The pooled robust statistic clusters by date (Driscoll-Kraay: ``statsmodels``
    ``cov_type="hac-groupsum"``), so the cross-sectional dependence of coins on one day is kept.
    ``majority_accuracy`` is the accuracy of always predicting the group's most frequent sign.
    """
    import statsmodels.api as sm
    from scipy import stats

    _require(forecasts, _REQUIRED)
    frame = forecasts.dropna(subset=["realised", "forecast"]).sort_values("as_of")
    rows: list[dict] = []
    for name, g in frame.groupby("forecaster", sort=True):
        for coin, c in [*g.groupby("coin_id", sort=True), ("all", g)]:
            f, y = c["forecast"].to_numpy(float), c["realised"].to_numpy(float)
            res = pesaran_timmermann(f, y, horizon)
            up, down = float((y > 0).mean()), float((y < 0).mean())
            if coin == "all" and math.isfinite(res["hac_stat"]):
                x_up, y_up = (f > 0).astype(float), (y > 0).astype(float)
                time = pd.factorize(pd.to_datetime(c["as_of"]))[0]
                lags = max(int(horizon) - 1, int(4 * (len(np.unique(time)) / 100.0) ** (2.0 / 9.0)))
                fit = sm.OLS(y_up, sm.add_constant(x_up)).fit(
                    cov_type="hac-groupsum", cov_kwds={"time": time, "maxlags": lags}
                )
                res["hac_stat"] = float(fit.tvalues[1])
                res["hac_p_value"] = float(stats.norm.sf(res["hac_stat"]))
            rows.append({"forecaster": name, "coin_id": coin, **res, "majority_accuracy": max(up, down)})
    out = pd.DataFrame(rows, columns=list(_PT_COLUMNS))
    out["n"] = out["n"].astype("int64")
    return out


# --------------------------------------------------------------------------- the evaluation


@dataclass(frozen=True)
class ForecastEvaluation:
    """Forecast evaluation tables (all log-return units over the horizon, not annualised).

    Attributes
    ----------
    accuracy : per forecaster, coin and quarter (the quarter of ``as_of + 1 day``, which the
        forecast's trade goes into): :func:`forecast_accuracy` columns, ratios to ``baseline``.
    overall : per forecaster and coin over the whole period, plus ``coin_id == "all"`` pooled;
        ``r2_oos`` is the out-of-sample R² against the zero forecast.
    dm_tests : :func:`dm_tests` against each of ``baselines``, per forecaster and coin and pooled.
    pt_tests : :func:`pt_tests` (directional accuracy against chance and the majority rule).
    residuals : ``forecaster, coin_id, as_of, residual`` (realised - forecast), for histograms.
    decay : per forecaster and ``weeks_since_training`` (whole weeks from the fold cutoff to
        ``as_of``): n, rmse, mae, directional_accuracy; empty without ``fold_cutoff``.
    baseline : the reference of the ratios (the zero forecast by default).
    baselines : the references of the Diebold-Mariano tests.
    """

    accuracy: pd.DataFrame
    overall: pd.DataFrame
    dm_tests: pd.DataFrame
    residuals: pd.DataFrame
    decay: pd.DataFrame
    baseline: str
    pt_tests: pd.DataFrame = field(default_factory=pd.DataFrame)
    baselines: tuple[str, ...] = ()


def _decay(scored: pd.DataFrame) -> pd.DataFrame:
    cols = ["forecaster", "weeks_since_training", "n", "rmse", "mae", "directional_accuracy"]
    if "fold_cutoff" not in scored.columns or scored.empty:
        return pd.DataFrame(columns=cols)
    days = (pd.to_datetime(scored["as_of"]) - pd.to_datetime(scored["fold_cutoff"])).dt.days
    weeks = scored.assign(weeks_since_training=(days // 7).astype("int64"))
    out = forecast_accuracy(weeks, by=("forecaster", "weeks_since_training"))
    return out[cols].reset_index(drop=True)


def forecast_evaluation(
    forecasts: pd.DataFrame,
    baseline: str = ZERO,
    dm_baselines: Sequence[str] = (ZERO, "naive_persistence"),
) -> ForecastEvaluation:
    """Every forecast-evaluation table from one long forecasts frame (e.g. a run's ``forecasts.parquet``).

    Parameters
    ----------
    forecasts : columns ``forecaster, coin_id, as_of, forecast, realised`` and ``horizon``
        (``fold_cutoff`` too for the decay table); forecasts and labels are ``h``-day forward
        log returns. Rows without a realised label are ignored.
    baseline : the reference forecaster of the ratios (default the zero forecast, whose rows are
        added when the frame has none).
    dm_baselines : references of the Diebold-Mariano tests (those present, plus ``zero``).

    Raises
    ------
    DataValidationError
        If a required column is missing.
    """
    _require(forecasts, (*_REQUIRED, "horizon"))
    scored = forecasts.dropna(subset=["realised", "forecast"])
    as_of = pd.to_datetime(scored["as_of"])
    scored = scored.assign(as_of=as_of, quarter=_quarter(as_of + pd.Timedelta(days=1)))
    ratios = with_zero_forecasts(scored) if baseline == ZERO else scored
    accuracy = forecast_accuracy(ratios, by=("forecaster", "coin_id", "quarter"), baseline=baseline)
    overall = pd.concat(
        [
            forecast_accuracy(ratios, by=("forecaster",), baseline=baseline).assign(coin_id="all"),
            forecast_accuracy(ratios, by=("forecaster", "coin_id"), baseline=baseline),
        ],
        ignore_index=True,
    )
    if baseline == ZERO and not (scored["forecaster"] == ZERO).any():  # the added rows are not a model
        accuracy = accuracy[accuracy["forecaster"] != ZERO].reset_index(drop=True)
        overall = overall[overall["forecaster"] != ZERO].reset_index(drop=True)
    res = residuals(scored)[["forecaster", "coin_id", "as_of", "residual"]].reset_index(drop=True)
    horizon = int(scored["horizon"].iloc[0]) if len(scored) else 1
    present = set(scored["forecaster"])
    refs = tuple(b for b in dict.fromkeys(dm_baselines) if b == ZERO or b in present)
    dm = [dm_tests(scored, b, horizon=horizon) for b in refs]
    return ForecastEvaluation(
        accuracy=accuracy,
        overall=overall,
        dm_tests=pd.concat(dm, ignore_index=True) if dm else pd.DataFrame(columns=list(_DM_COLUMNS)),
        residuals=res,
        decay=_decay(scored),
        baseline=baseline,
        pt_tests=pt_tests(scored, horizon),
        baselines=refs,
    )
