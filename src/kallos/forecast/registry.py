"""Forecasters by name: a registry, not an if/elif chain."""

from __future__ import annotations

import zlib
from collections.abc import Callable

from kallos.config import ForecastConfig
from kallos.forecast.base import BaseForecaster
from kallos.forecast.baselines import HistoricalMean, NaivePersistence, ZeroForecaster
from kallos.forecast.recurrent import RecurrentForecaster

__all__ = ["BASELINES", "FORECASTERS", "is_baseline", "make_forecaster", "stable_seed"]

Factory = Callable[[ForecastConfig, int, str], BaseForecaster]


def _recurrent(cell: str, attention: bool = False) -> Factory:
    def build(cfg: ForecastConfig, seed: int, device: str) -> BaseForecaster:
        return RecurrentForecaster(
            cfg.recurrent, cell, cfg.horizon, seed, device, cfg.min_train_samples, attention=attention
        )

    return build


FORECASTERS: dict[str, Factory] = {
    "gru": _recurrent("gru"),
    "lstm": _recurrent("lstm"),
    "gru_attention": _recurrent("gru", attention=True),
    "historical_mean": lambda cfg, seed, device: HistoricalMean(cfg.horizon, cfg.historical_mean_window),
    "naive_persistence": lambda cfg, seed, device: NaivePersistence(cfg.horizon),
    "zero": lambda cfg, seed, device: ZeroForecaster(cfg.horizon),
}

BASELINES: frozenset[str] = frozenset({"zero", "historical_mean", "naive_persistence"})
"""Registered forecasters that are simple estimates; every other one is a learned model."""


def is_baseline(name: str) -> bool:
    """Whether forecaster ``name`` is a baseline (simple estimate) rather than a learned model."""
    return name in BASELINES


def make_forecaster(name: str, cfg: ForecastConfig, seed: int = 0, device: str = "cpu") -> BaseForecaster:
    """An unfitted forecaster registered as ``name``.

    Raises
    ------
    KeyError
        If ``name`` is not registered (the message lists the known names).
    """
    try:
        factory = FORECASTERS[name]
    except KeyError:
        raise KeyError(f"unknown forecaster {name!r}; choose from {sorted(FORECASTERS)}") from None
    return factory(cfg, seed, device)


def stable_seed(*parts: object) -> int:
    """A seed derived from ``parts`` that is the same in every process and run."""
    return zlib.crc32("|".join(map(str, parts)).encode()) & 0x7FFFFFFF
