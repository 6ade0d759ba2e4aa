"""Simple forecasters the GRU must beat."""

from __future__ import annotations

import pandas as pd

from kallos.features.labels import trailing_log_return
from kallos.forecast.base import BaseForecaster, CoinHistory, daily_log_returns
from kallos.forecast.walk_forward import Fold

__all__ = ["HistoricalMean", "NaivePersistence"]


class HistoricalMean(BaseForecaster):
    """Trailing mean daily log return, scaled to the horizon.

    forecast_t = horizon × mean(log r_{t-window+1..t}); NaN until ``window`` returns exist.

    Parameters
    ----------
    horizon : days ahead (the label horizon).
    window : trailing days of daily log returns (default 365).
    """

    name = "historical_mean"

    def __init__(self, horizon: int = 7, window: int = 365) -> None:
        self.horizon = horizon
        self.window = window

    def _fit(self, history: CoinHistory, fold: Fold) -> None:
        """Nothing to learn: the estimate is a trailing mean recomputed at each date."""

    def _predict(self, history: CoinHistory, dates: pd.DatetimeIndex) -> pd.Series:
        r = daily_log_returns(history.close)
        mean = r.rolling(self.window, min_periods=self.window).mean()
        return (self.horizon * mean).reindex(dates)


class NaivePersistence(BaseForecaster):
    """The last horizon's realised log return: forecast_t = log(close_t / close_{t-horizon})."""

    name = "naive_persistence"

    def __init__(self, horizon: int = 7) -> None:
        self.horizon = horizon

    def _fit(self, history: CoinHistory, fold: Fold) -> None:
        """Nothing to learn."""

    def _predict(self, history: CoinHistory, dates: pd.DatetimeIndex) -> pd.Series:
        return trailing_log_return(history.close, self.horizon).reindex(dates)
