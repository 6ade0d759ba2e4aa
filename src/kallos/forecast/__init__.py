"""Forecast stage: the forecaster interface, GRU/LSTM and baselines, and walk-forward."""

from kallos.forecast.base import BaseForecaster, CoinHistory, coin_history
from kallos.forecast.baselines import HistoricalMean, NaivePersistence, ZeroForecaster
from kallos.forecast.driver import ForecastJob, JobResult, forecasts_frame, run_jobs
from kallos.forecast.recurrent import RecurrentForecaster, RecurrentNet, direction_aware_loss
from kallos.forecast.registry import BASELINES, FORECASTERS, is_baseline, make_forecaster, stable_seed
from kallos.forecast.walk_forward import ExpandingWalkForward, Fold

__all__ = [
    "BASELINES",
    "FORECASTERS",
    "BaseForecaster",
    "CoinHistory",
    "ExpandingWalkForward",
    "Fold",
    "ForecastJob",
    "HistoricalMean",
    "JobResult",
    "NaivePersistence",
    "RecurrentForecaster",
    "RecurrentNet",
    "ZeroForecaster",
    "coin_history",
    "direction_aware_loss",
    "forecasts_frame",
    "is_baseline",
    "make_forecaster",
    "run_jobs",
    "stable_seed",
]
