"""Accuracy of return forecasts against realised returns, relative to a baseline forecaster.

Inputs are long frames with one row per (forecaster, coin, decision date): ``forecast`` and
``realised`` are both ``h``-day forward **log** returns starting strictly after ``as_of``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd

from kallos.exceptions import DataValidationError

__all__ = [
    "forecast_accuracy",
    "residuals",
]

_REQUIRED: Final[tuple[str, ...]] = ("forecaster", "coin_id", "as_of", "forecast", "realised")
_METRICS: Final[tuple[str, ...]] = ("n", "start", "end", "rmse", "mae", "directional_accuracy")
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
    }
    if by:
        scores = work.groupby(by, sort=True, observed=True, dropna=False).agg(**aggregations).reset_index()
    else:
        scores = pd.DataFrame(
            {name: [getattr(work[src], func)()] for name, (src, func) in aggregations.items()}
        )
    scores["n"] = scores["n"].astype("int64")
    scores["rmse"] = np.sqrt(scores["rmse"].astype(float))

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
