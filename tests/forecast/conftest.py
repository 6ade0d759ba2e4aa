"""Seeded synthetic coin histories and tiny model settings shared by the forecast tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kallos.config import ForecastConfig, TrainingConfig
from kallos.features import forward_log_return
from kallos.forecast import CoinHistory, ExpandingWalkForward, Fold, NeuralForecaster, make_forecaster

#: Tiny network settings per neural plug-in (fast enough for the unit tests).
TINY_NETWORKS: dict[str, dict[str, Any]] = {
    **{n: {"hidden_size": 8, "num_layers": 1, "dropout": 0.0} for n in ("gru", "lstm", "gru_attention")},
    "transformer": {"d_model": 8, "n_heads": 2, "num_layers": 1, "dim_feedforward": 16, "dropout": 0.0},
}

HORIZON = 7
START = pd.Timestamp("2020-01-01")
CUTOFF = pd.Timestamp("2020-12-31")


def synthetic_history(n: int = 470, seed: int = 0, coin: str = "syn", noise: float = 0.005) -> CoinHistory:
    """A random-walk close with a learnable feature: a noisy copy of the 7-day forward log return.

    Columns: ``signal`` (future return + N(0, noise)), ``noise`` (N(0, 1)), ``level`` (N(5, 2)).
    The signal leaks the future on purpose: it makes the problem learnable, so a trained
    network must beat predicting zero by a wide margin.
    """
    rng = np.random.default_rng(seed)
    index = pd.date_range(START, periods=n, freq="D")
    close = pd.Series(100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n))), index=index, name=coin)
    label = forward_log_return(close, HORIZON).fillna(0.0).to_numpy()
    features = pd.DataFrame(
        {
            "signal": label + rng.normal(0.0, noise, n),
            "noise": rng.normal(0.0, 1.0, n),
            "level": rng.normal(5.0, 2.0, n),
        },
        index=index,
    )
    return CoinHistory(coin, close, features)


@pytest.fixture(scope="session")
def make_history() -> Callable[..., CoinHistory]:
    return synthetic_history


@pytest.fixture(scope="session")
def splitter() -> ExpandingWalkForward:
    return ExpandingWalkForward(START, horizon=HORIZON, validation_days=60)


@pytest.fixture(scope="session")
def fold(splitter) -> Fold:
    """Cutoff 2020-12-31: train 2020-01-01..2020-10-18, validation 2020-10-26..2020-12-24."""
    return splitter.fold(CUTOFF)


@dataclass(frozen=True)
class Tiny:
    """Tiny model settings: trainer settings plus every neural plug-in's network table.

    ``model_copy(update=...)`` routes each key to the trainer (a :class:`TrainingConfig` field)
    or to every network table; :meth:`model` builds a registered forecaster through the registry.
    """

    forecast: ForecastConfig

    @property
    def training(self) -> TrainingConfig:
        return self.forecast.training

    def model_copy(self, update: dict[str, Any]) -> Tiny:
        training = {k: v for k, v in update.items() if k in TrainingConfig.model_fields}
        network = {k: v for k, v in update.items() if k not in training}
        models = {
            n: {**t, **{k: v for k, v in network.items() if k in _fields(n)}}
            for n, t in self.forecast.models.items()
        }
        return Tiny(
            self.forecast.model_copy(
                update={"training": self.forecast.training.model_copy(update=training), "models": models}
            )
        )

    def model(
        self,
        name: str = "gru",
        seed: int = 0,
        device: str = "cpu",
        attention: bool = False,
        min_train_samples: int = 30,
        horizon: int = 7,
        refit: bool = False,
    ) -> NeuralForecaster:
        name = "gru_attention" if attention and name == "gru" else name
        cfg = self.forecast.model_copy(
            update={"min_train_samples": min_train_samples, "horizon": horizon, "refit": refit}
        )
        model = make_forecaster(name, cfg, seed, device)
        assert isinstance(model, NeuralForecaster)
        return model


def _fields(name: str) -> set[str]:
    from kallos.forecast import FORECASTERS

    return set(FORECASTERS[name].settings.model_fields)


@pytest.fixture(scope="session")
def tiny_config() -> Tiny:
    training = TrainingConfig(lookback=5, learning_rate=1e-2, batch_size=32, max_epochs=5, patience=5)
    return Tiny(ForecastConfig(horizon=7, min_train_samples=30, training=training, models=TINY_NETWORKS))
