"""Ensemble plug-in: the equal-weight mean of chosen member forecasters (default GRU, LSTM, Transformer).

forecast_t = (1/M) Σ_m forecast_{m,t}, defined only where every member has a forecast (so the
ensemble never silently becomes a smaller ensemble). Settings ``forecast.models.ensemble``:
``members``, the registered learned forecasters to combine.

In a study the members' walk-forward models are the study's own (same seeds, same registry
entries): the ensemble's forecasts are combined from theirs by :func:`mean_forecast`, so it
costs no extra training and equals the mean of the members it is reported beside. As a library
object, :class:`EnsembleForecaster` fits its members itself and combines them the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kallos.config import ForecastConfig
from kallos.forecast.base import BaseForecaster, CoinHistory
from kallos.forecast.spec import ForecasterSpec
from kallos.forecast.walk_forward import Fold

__all__ = ["SPECS", "EnsembleForecaster", "EnsembleSettings", "mean_forecast"]


class EnsembleSettings(BaseModel):
    """``forecast.models.ensemble``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    members: tuple[str, ...] = Field(
        ("gru", "lstm", "transformer"),
        description="registered learned forecasters averaged with equal weight",
    )

    @field_validator("members")
    @classmethod
    def _distinct(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(v) < 2 or len(set(v)) != len(v):
            raise ValueError(f"needs at least two distinct members, got {list(v)}")
        return v


def mean_forecast(member_forecasts: pd.DataFrame) -> pd.Series:
    """Equal-weight mean across the columns of ``member_forecasts`` (one column per member, rows
    are dates); NaN on a row where any member is NaN."""
    values = member_forecasts.to_numpy(dtype=float)
    out = np.where(np.isfinite(values).all(axis=1), values.mean(axis=1), np.nan)
    return pd.Series(out, index=member_forecasts.index)


class EnsembleForecaster(BaseForecaster):
    """Equal-weight mean of ``members``' forecasts (see the module docstring).

    Parameters
    ----------
    members : unfitted member forecasters (each is cloned and fitted on the same data).
    horizon : label horizon in days (the members' own).
    name : the registered name (default ``"ensemble"``).
    """

    parallel = True

    def __init__(
        self, members: Sequence[BaseForecaster] = (), horizon: int = 7, name: str = "ensemble"
    ) -> None:
        self.members = members
        self.horizon = horizon
        self.name = name

    def _fit(self, history: CoinHistory, fold: Fold) -> None:
        self.members_ = [m.clone().fit(history, fold) for m in self.members]

    def _predict(self, history: CoinHistory, dates: pd.DatetimeIndex) -> pd.Series:
        frame = pd.concat({m.name: m.predict(history, dates) for m in self.members_}, axis=1)
        return mean_forecast(frame)


def _build(
    settings: EnsembleSettings,
    config: ForecastConfig,
    seed: int,
    device: str,
    make: Callable[[str, int], BaseForecaster] | None = None,
) -> EnsembleForecaster:
    if make is None:
        raise ValueError(
            "an ensemble is built through the registry (kallos.forecast.registry.make_forecaster)"
        )
    return EnsembleForecaster(
        tuple(make(m, seed + i) for i, m in enumerate(settings.members)), config.horizon
    )


SPECS: tuple[ForecasterSpec, ...] = (
    ForecasterSpec(
        "ensemble",
        EnsembleSettings,
        _build,
        kind="ensemble",
        label="equal-weight ensemble",
        colour="#f6ae2d",
        description="equal-weight mean of the member forecasters (default GRU, LSTM, Transformer)",
    ),
)
