"""Simple forecasters the learned models must beat.

The hardest of them is :class:`ZeroForecaster`, the random walk: for 7-day crypto returns,
predicting zero beats naive persistence by construction (about sqrt(2) in RMSE) and is the
reference of the out-of-sample R² (Campbell and Thompson 2008). With zero expected returns the
optimiser's ``max_sharpe`` is undefined and falls back to minimum volatility at every rebalance,
and ``max_quadratic_utility`` becomes minimum variance, so the zero strategy is the
minimum-variance portfolio.
"""

from __future__ import annotations

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from kallos.features.labels import trailing_log_return
from kallos.forecast.base import BaseForecaster, CoinHistory, daily_log_returns
from kallos.forecast.spec import ForecasterSpec
from kallos.forecast.walk_forward import Fold

__all__ = [
    "SPECS",
    "HistoricalMean",
    "HistoricalMeanSettings",
    "NaivePersistence",
    "NoSettings",
    "ZeroForecaster",
]


class ZeroForecaster(BaseForecaster):
    """The random walk: forecast_t = 0 wherever the close of ``t`` is known (NaN elsewhere).

    Parameters
    ----------
    horizon : days ahead (the label horizon); recorded for the interface, the forecast is 0.
    """

    name = "zero"

    def __init__(self, horizon: int = 7) -> None:
        self.horizon = horizon

    def _fit(self, history: CoinHistory, fold: Fold) -> None:
        """Nothing to learn."""

    def _predict(self, history: CoinHistory, dates: pd.DatetimeIndex) -> pd.Series:
        known = history.close.reindex(dates).notna()
        return pd.Series(0.0, index=dates).where(known)


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


class NoSettings(BaseModel):
    """A forecaster without settings (``forecast.models.<name>`` must be empty)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class HistoricalMeanSettings(NoSettings):
    """``forecast.models.historical_mean``."""

    window: int = Field(365, ge=2, description="trailing days of daily log returns")


SPECS: tuple[ForecasterSpec, ...] = (
    ForecasterSpec(
        "zero",
        NoSettings,
        lambda s, cfg, seed, device: ZeroForecaster(cfg.horizon),
        kind="baseline",
        label="zero (random walk)",
        colour="#3bb273",
        description="forecast 0: the random walk, reference of R²_oos",
    ),
    ForecasterSpec(
        "historical_mean",
        HistoricalMeanSettings,
        lambda s, cfg, seed, device: HistoricalMean(cfg.horizon, s.window),
        kind="baseline",
        label="historical mean",
        colour="#2e86ab",
        description="trailing mean daily log return x horizon",
    ),
    ForecasterSpec(
        "naive_persistence",
        NoSettings,
        lambda s, cfg, seed, device: NaivePersistence(cfg.horizon),
        kind="baseline",
        label="naive persistence",
        colour="#7e57c2",
        description="the last horizon's realised log return",
    ),
)
