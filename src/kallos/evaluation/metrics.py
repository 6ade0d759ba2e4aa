"""Performance metrics of a daily portfolio return series.

All functions take **daily simple returns** (not percent, not log) indexed by date and
annualise with ``periods_per_year`` (default :data:`kallos.types.PERIODS_PER_YEAR` = 365,
because crypto trades every day). The risk-free rate is taken as zero throughout.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
from scipy import stats

from kallos.types import PERIODS_PER_YEAR

__all__ = [
    "cumulative_returns",
    "drawdown",
    "is_constant",
    "iso_date",
    "performance_metrics",
    "rolling_sharpe",
]

_NAN = float("nan")


def iso_date(value: object) -> str:
    """ISO-8601 calendar date of an index label, for the ``start``/``end`` fields of results.

    Parameters
    ----------
    value : object
        An index label: a ``datetime.date``, ``datetime.datetime``, ``pd.Timestamp`` (tz-aware or
        naive) or ``np.datetime64``; anything else is returned as ``str(value)``.

    Returns
    -------
    str
        ``"YYYY-MM-DD"``, the label's date in its own time zone (no conversion; the canonical
        panel is stamped at the UTC close), or the label as text when it is not a date.
    """
    if isinstance(value, (dt.date, np.datetime64)):
        return pd.Timestamp(value).date().isoformat()
    return str(value)


_CONSTANT_RTOL = 1e-12
"""Spread below this fraction of the data's magnitude counts as zero variance (rounding noise)."""


def is_constant(x: np.ndarray, scale: float | None = None) -> bool:
    """True when ``x`` has zero variance up to rounding noise.

    Parameters
    ----------
    x : ndarray of shape (n,)
        Values without NaN (e.g. daily simple returns, or a difference of two return series).
    scale : float, optional
        Magnitude the spread is compared with; default ``max(|x|)``. Pass the magnitude of the
        operands when ``x`` is a difference of two series (their difference can be tiny and still
        not constant).

    Returns
    -------
    bool
        ``max(x) - min(x) <= 1e-12 * scale``; True for an empty array.

    Notes
    -----
    A relative threshold (not ``ptp == 0``) because a series that is constant on paper, such as a
    difference of two identical strategies computed in a different order, carries rounding noise of
    order ``1e-16`` times its magnitude.
    """
    if x.size == 0:
        return True
    magnitude = float(np.max(np.abs(x))) if scale is None else float(scale)
    return bool(np.ptp(x) <= _CONSTANT_RTOL * magnitude)


def cumulative_returns(returns: pd.Series) -> pd.Series:
    """Compounded return since the start, ``prod(1 + r) - 1``, at every date.

    Parameters
    ----------
    returns : pd.Series of shape (n_days,)
        Daily simple returns indexed by date.

    Returns
    -------
    pd.Series of shape (n_days,)
        Wealth minus one, where wealth starts at 1 before the first return; same index as
        ``returns``.

    Notes
    -----
    A NaN return is treated as a zero return (wealth unchanged that day).

    References
    ----------
    .. [1] empyrical ``cum_returns`` (``(1 + r).cumprod() - 1``),
       https://github.com/stefan-jansen/empyrical-reloaded
    """
    r = pd.Series(returns, dtype=float)
    return (1.0 + r.fillna(0.0)).cumprod() - 1.0


def drawdown(returns: pd.Series) -> pd.Series:
    """Drawdown from the running peak of wealth, ``wealth / peak - 1``, at every date.

    Parameters
    ----------
    returns : pd.Series of shape (n_days,)
        Daily simple returns indexed by date.

    Returns
    -------
    pd.Series of shape (n_days,)
        Values in ``[-1, 0]``; same index as ``returns``. Wealth starts at 1 *before* the
        first return, so a loss on the first day already shows as a drawdown.

    Notes
    -----
    A NaN return is treated as a zero return (wealth unchanged that day).

    References
    ----------
    .. [1] Magdon-Ismail, M. and Atiya, A. (2004). "Maximum drawdown". Risk, 17(10), 99-102.
    .. [2] empyrical ``max_drawdown`` (same convention of an initial wealth of 1),
       https://github.com/stefan-jansen/empyrical-reloaded
    """
    wealth = 1.0 + cumulative_returns(returns)
    peak = wealth.cummax().clip(lower=1.0)
    return wealth / peak - 1.0


def rolling_sharpe(
    returns: pd.Series,
    window: int = 90,
    *,
    periods_per_year: int = PERIODS_PER_YEAR,
) -> pd.Series:
    """Annualised Sharpe ratio over a trailing window of days (risk-free rate 0).

    Parameters
    ----------
    returns : pd.Series of shape (n_days,)
        Daily simple returns indexed by date.
    window : int, default 90
        Trailing window length in days; the first ``window - 1`` values are NaN.
    periods_per_year : int, default 365
        Periods per year used to annualise (``sqrt(periods_per_year)``).

    Returns
    -------
    pd.Series of shape (n_days,)
        ``mean / std * sqrt(periods_per_year)`` over each window, standard deviation with
        ``ddof=1``; NaN where the window is incomplete, holds a NaN, or has zero variance.

    Raises
    ------
    ValueError
        If ``window < 2``.

    References
    ----------
    .. [1] Sharpe, W. F. (1994). "The Sharpe Ratio". Journal of Portfolio Management, 21(1), 49-58.
    .. [2] Lo, A. W. (2002). "The Statistics of Sharpe Ratios". Financial Analysts Journal, 58(4),
       36-52 (the ``sqrt(q)`` annualisation of an i.i.d. Sharpe ratio).
    """
    if window < 2:
        raise ValueError(f"window must be at least 2 days, got {window}")
    r = pd.Series(returns, dtype=float)
    roll = r.rolling(window, min_periods=window)
    mean = roll.mean()
    std = roll.std(ddof=1)
    out = mean / std.where(std > 0.0) * math.sqrt(periods_per_year)
    return out.rename(r.name)


def _cagr(growth: float, exponent: float) -> float:
    """``growth ** exponent - 1``; ``inf`` when a short, explosive sample overflows, NaN below 0."""
    if not growth >= 0.0:
        return _NAN
    try:
        return float(growth**exponent - 1.0)
    except OverflowError:
        return math.inf


def _turnover_stats(turnover: pd.Series | None, years: float) -> tuple[float, float]:
    if turnover is None:
        return _NAN, _NAN
    t = pd.Series(turnover, dtype=float).dropna().to_numpy()
    annual = float(t.sum() / years) if years > 0 else _NAN
    nonzero = t[t != 0.0]
    per_rebalance = float(nonzero.mean()) if nonzero.size else _NAN
    return annual, per_rebalance


def _effective_n(holdings: pd.DataFrame | None) -> float:
    if holdings is None:
        return _NAN
    w = holdings.to_numpy(dtype=float, na_value=np.nan)
    if w.size == 0:
        return _NAN
    herfindahl = np.nansum(w * w, axis=1)
    valid = herfindahl > 0.0
    if not valid.any():
        return _NAN
    return float(np.mean(1.0 / herfindahl[valid]))


def performance_metrics(
    returns: pd.Series,
    *,
    turnover: pd.Series | None = None,
    holdings: pd.DataFrame | None = None,
    periods_per_year: int = PERIODS_PER_YEAR,
    var_level: float = 0.95,
) -> dict[str, float | int | str]:
    """Summary statistics of one daily return series (risk-free rate 0).

    Parameters
    ----------
    returns : pd.Series of shape (n_days,)
        Daily simple portfolio returns (net or gross), indexed by date.
    turnover : pd.Series of shape (n_dates,), optional
        One-way turnover traded at each decision date as a fraction of portfolio value,
        0 on non-rebalance days (``BacktestResult.turnover``). Used as given: the caller
        restricts it to the evaluated period.
    holdings : pd.DataFrame of shape (n_days, n_assets), optional
        Portfolio weights per date (rows) and coin (columns); NaN counts as 0.
    periods_per_year : int, default 365
        Periods per year used to annualise.
    var_level : float, default 0.95
        Confidence level of the historical value at risk; must lie in ``(0, 1)``.

    Returns
    -------
    dict
        ``start``, ``end`` : str
            ISO dates of the first and last non-NaN return ("" when there is none).
        ``n_days`` : int
            Number of non-NaN daily returns.
        ``total_return`` : float
            ``prod(1 + r) - 1`` over the whole sample (simple, not annualised).
        ``cagr`` : float
            Geometric annual growth, ``(1 + total_return) ** (periods_per_year / n_days) - 1``.
        ``annual_volatility`` : float
            ``std(r, ddof=1) * sqrt(periods_per_year)``.
        ``sharpe`` : float
            Annualised, ``mean(r) / std(r, ddof=1) * sqrt(periods_per_year)``.
        ``sortino`` : float
            Annualised, ``mean(r) * periods_per_year / DD`` with the downside deviation
            ``DD = sqrt(mean(min(r, 0) ** 2)) * sqrt(periods_per_year)``: the mean runs over
            *all* days (target 0), not only the losing ones.
        ``calmar`` : float
            ``cagr / |max_drawdown|``.
        ``max_drawdown`` : float
            Most negative value of :func:`drawdown`, e.g. ``-0.55`` for a 55 % peak-to-trough loss.
        ``var`` : float
            Historical daily value at risk as a *return*: the ``1 - var_level`` quantile of
            daily returns (linear interpolation), e.g. ``-0.05`` means a 5 % daily loss.
        ``cvar`` : float
            Expected shortfall as a return: mean of the daily returns ``<= var``.
        ``skewness`` : float
            Sample skewness, bias-corrected (adjusted Fisher-Pearson ``G1``, as pandas ``skew``).
        ``kurtosis`` : float
            Excess (Fisher) kurtosis, bias-corrected (as pandas ``kurt``).
        ``win_rate`` : float
            Fraction of days with ``r > 0``.
        ``turnover_annual`` : float
            ``sum(turnover) / (n_days / periods_per_year)``; NaN without ``turnover``.
        ``turnover_per_rebalance`` : float
            Mean of the non-zero turnover values; NaN without ``turnover`` or rebalances.
        ``effective_n`` : float
            Time average over rows of ``holdings`` of ``1 / sum(w ** 2)`` (the inverse
            Herfindahl index of the weights); NaN without ``holdings``.

    Raises
    ------
    ValueError
        If ``var_level`` is not in ``(0, 1)`` or ``periods_per_year`` is not positive.

    Notes
    -----
    NaN returns are dropped before anything is computed. Empty or all-NaN input gives
    ``n_days = 0`` and NaN everywhere else; a single day gives NaN volatility and ratios.
    Constant input (spread below ``1e-12`` of the returns' magnitude, so rounding noise
    counts as constant) keeps the well-defined levels
    (``total_return``, ``cagr``, ``annual_volatility = 0``, ``max_drawdown``, ``var``,
    ``cvar``, ``win_rate``) and gives NaN for every ratio with a zero denominator
    (``sharpe``, ``sortino``, ``calmar`` when there is no drawdown) and for the higher
    moments. No exception is raised for such input. A short explosive sample whose CAGR
    overflows reports ``cagr = inf``.

    The Sharpe, Sortino, volatility and CAGR conventions match empyrical
    (``sharpe_ratio``, ``sortino_ratio``, ``downside_risk``, ``annual_volatility``,
    ``cagr`` with ``annualization=365``) and quantstats; both libraries default to 252
    periods a year, so their defaults differ from these numbers by ``sqrt(365 / 252)``
    (Sharpe, Sortino, volatility).

    References
    ----------
    .. [1] Sharpe, W. F. (1994). "The Sharpe Ratio". Journal of Portfolio Management, 21(1), 49-58.
    .. [2] Sortino, F. and Price, L. (1994). "Performance Measurement in a Downside Risk
       Framework". Journal of Investing, 3(3), 59-64.
    .. [3] Young, T. W. (1991). "Calmar Ratio: A Smoother Tool". Futures, 20(1), 40.
    .. [4] Jorion, P. (2006). *Value at Risk*, 3rd ed., McGraw-Hill (historical VaR);
       Acerbi, C. and Tasche, D. (2002). "Expected Shortfall: a natural coherent alternative
       to Value at Risk". Economic Notes, 31(2), 379-388.
    .. [5] Joanes, D. N. and Gill, C. A. (1998). "Comparing measures of sample skewness and
       kurtosis". The Statistician, 47(1), 183-189 (bias-corrected ``G1``, ``G2``).
    .. [6] empyrical-reloaded documentation, https://github.com/stefan-jansen/empyrical-reloaded
    """
    if not 0.0 < var_level < 1.0:
        raise ValueError(f"var_level must lie in (0, 1), got {var_level}")
    if periods_per_year <= 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")

    r_series = pd.Series(returns, dtype=float).dropna()
    r = r_series.to_numpy()
    n = int(r.size)
    out: dict[str, float | int | str] = {
        "start": iso_date(r_series.index[0]) if n else "",
        "end": iso_date(r_series.index[-1]) if n else "",
        "n_days": n,
    }
    keys = (
        "total_return",
        "cagr",
        "annual_volatility",
        "sharpe",
        "sortino",
        "calmar",
        "max_drawdown",
        "var",
        "cvar",
        "skewness",
        "kurtosis",
        "win_rate",
    )
    if n == 0:
        out.update(dict.fromkeys(keys, _NAN))
        out["turnover_annual"], out["turnover_per_rebalance"] = _NAN, _NAN
        out["effective_n"] = _effective_n(holdings)
        return out

    ann = float(periods_per_year)
    constant = is_constant(r)

    total_return = float(np.prod(1.0 + r) - 1.0)
    growth = 1.0 + total_return
    cagr = _cagr(growth, ann / n)

    mean = float(r.mean())
    if n < 2:
        std = _NAN
    else:
        std = 0.0 if constant else float(r.std(ddof=1))
    annual_volatility = std * math.sqrt(ann)
    sharpe = mean / std * math.sqrt(ann) if std > 0.0 else _NAN

    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2))) * math.sqrt(ann)
    sortino = mean * ann / downside if downside > 0.0 else _NAN

    max_drawdown = float(drawdown(r_series).min())
    calmar = cagr / abs(max_drawdown) if max_drawdown < 0.0 else _NAN

    var = float(np.quantile(r, 1.0 - var_level))
    cvar = float(r[r <= var].mean())

    skewness = float(stats.skew(r, bias=False)) if (n >= 3 and not constant) else _NAN
    kurtosis = float(stats.kurtosis(r, fisher=True, bias=False)) if (n >= 4 and not constant) else _NAN

    out.update(
        {
            "total_return": total_return,
            "cagr": cagr,
            "annual_volatility": annual_volatility,
            "sharpe": sharpe,
            "sortino": sortino,
            "calmar": calmar,
            "max_drawdown": max_drawdown,
            "var": var,
            "cvar": cvar,
            "skewness": skewness,
            "kurtosis": kurtosis,
            "win_rate": float(np.mean(r > 0.0)),
        }
    )
    out["turnover_annual"], out["turnover_per_rebalance"] = _turnover_stats(turnover, n / ann)
    out["effective_n"] = _effective_n(holdings)
    return out
