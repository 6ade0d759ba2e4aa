"""Forecast stage: the forecaster interface, the model-agnostic trainer, plug-ins, baselines, walk-forward."""

from kallos.forecast.base import BaseForecaster, CoinHistory, coin_history
from kallos.forecast.baselines import HistoricalMean, NaivePersistence, ZeroForecaster
from kallos.forecast.driver import ForecastJob, JobResult, forecasts_frame, run_jobs
from kallos.forecast.models.ensemble import EnsembleForecaster
from kallos.forecast.models.recurrent import RecurrentNet
from kallos.forecast.models.transformer import TransformerNet
from kallos.forecast.neural import NetworkSettings, NeuralForecaster
from kallos.forecast.registry import (
    FORECASTERS,
    baselines,
    check_config,
    describe,
    is_baseline,
    job_names,
    make_forecaster,
    register,
    stable_seed,
    unregister,
    with_ensembles,
)
from kallos.forecast.spec import ForecasterSpec
from kallos.forecast.training import direction_aware_loss, train_stack
from kallos.forecast.walk_forward import ExpandingWalkForward, Fold

__all__ = [
    "FORECASTERS",
    "BaseForecaster",
    "CoinHistory",
    "EnsembleForecaster",
    "ExpandingWalkForward",
    "Fold",
    "ForecastJob",
    "ForecasterSpec",
    "HistoricalMean",
    "JobResult",
    "NaivePersistence",
    "NetworkSettings",
    "NeuralForecaster",
    "RecurrentNet",
    "TransformerNet",
    "ZeroForecaster",
    "baselines",
    "check_config",
    "coin_history",
    "describe",
    "direction_aware_loss",
    "forecasts_frame",
    "is_baseline",
    "job_names",
    "make_forecaster",
    "register",
    "run_jobs",
    "stable_seed",
    "train_stack",
    "unregister",
    "with_ensembles",
]
