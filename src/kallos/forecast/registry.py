"""Forecasters by name: one line per plug-in spec (:class:`~kallos.forecast.spec.ForecasterSpec`).

Adding a forecaster is one plug-in module (its settings model, builder and search space) plus
one line in :data:`SPECS` — or, from outside the package, :func:`register`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

import pandas as pd

from kallos.config import ForecastConfig, StudyConfig
from kallos.exceptions import ConfigError
from kallos.forecast.base import BaseForecaster
from kallos.forecast.baselines import SPECS as BASELINE_SPECS
from kallos.forecast.models.ensemble import SPECS as ENSEMBLE_SPECS
from kallos.forecast.models.ensemble import mean_forecast
from kallos.forecast.models.recurrent import SPECS as RECURRENT_SPECS
from kallos.forecast.models.transformer import SPECS as TRANSFORMER_SPECS
from kallos.forecast.spec import ForecasterSpec

__all__ = [
    "FORECASTERS",
    "baselines",
    "check_config",
    "describe",
    "ensemble_members",
    "is_baseline",
    "job_names",
    "make_forecaster",
    "register",
    "spec",
    "stable_seed",
    "unregister",
    "with_ensembles",
]

SPECS: tuple[ForecasterSpec, ...] = (
    *RECURRENT_SPECS,  # gru, lstm, gru_attention
    *TRANSFORMER_SPECS,  # transformer
    *ENSEMBLE_SPECS,  # ensemble
    *BASELINE_SPECS,  # zero, historical_mean, naive_persistence
)

FORECASTERS: dict[str, ForecasterSpec] = {s.name: s for s in SPECS}
"""Every registered forecaster spec by name."""


def baselines() -> tuple[str, ...]:
    """Registered forecasters that are simple estimates, in registration order (plug-ins included)."""
    return tuple(n for n, s in FORECASTERS.items() if s.kind == "baseline")


def register(new: ForecasterSpec, *, replace: bool = False) -> ForecasterSpec:
    """Register a plug-in spec (from outside the package; inside it, add a line to ``SPECS``).

    Raises
    ------
    ValueError
        If the name is taken and ``replace`` is false.
    """
    if new.name in FORECASTERS and not replace:
        raise ValueError(f"forecaster {new.name!r} is already registered; pass replace=True")
    FORECASTERS[new.name] = new
    return new


def unregister(name: str) -> None:
    """Remove a spec added with :func:`register` (a no-op for an unknown name)."""
    FORECASTERS.pop(name, None)


def spec(name: str) -> ForecasterSpec:
    """The spec registered as ``name``.

    Raises
    ------
    KeyError
        If ``name`` is not registered (the message lists the known names).
    """
    try:
        return FORECASTERS[name]
    except KeyError:
        raise KeyError(f"unknown forecaster {name!r}; choose from {sorted(FORECASTERS)}") from None


def is_baseline(name: str) -> bool:
    """Whether forecaster ``name`` is a baseline (simple estimate) rather than a learned model."""
    return name in FORECASTERS and FORECASTERS[name].kind == "baseline"


def make_forecaster(name: str, cfg: ForecastConfig, seed: int = 0, device: str = "cpu") -> BaseForecaster:
    """An unfitted forecaster registered as ``name``, with the settings of ``cfg.models[name]``.

    Raises
    ------
    KeyError
        If ``name`` is not registered (the message lists the known names).
    ConfigError
        If ``cfg.models[name]`` does not validate against the spec's settings.
    """
    return spec(name).make(cfg, seed, device, make=lambda m, s: make_forecaster(m, cfg, s, device))


def ensemble_members(name: str, cfg: ForecastConfig) -> tuple[str, ...]:
    """The member forecasters of ensemble ``name`` (empty for any other kind)."""
    s = spec(name)
    return tuple(s.resolve(cfg.settings_for(name)).members) if s.kind == "ensemble" else ()


def job_names(names: Iterable[str], cfg: ForecastConfig) -> tuple[str, ...]:
    """The forecasters to train for ``names``: each ensemble replaced by its members, in order, once each."""
    out: dict[str, None] = {}
    for n in names:
        out.update(dict.fromkeys(ensemble_members(n, cfg) or (n,)))
    return tuple(out)


def with_ensembles(forecasts: pd.DataFrame, names: Sequence[str], cfg: ForecastConfig) -> pd.DataFrame:
    """``forecasts`` (long: forecaster, coin_id, as_of, horizon, forecast, fold_cutoff) with each
    ensemble of ``names`` added as :func:`~kallos.forecast.models.ensemble.mean_forecast` of its
    members' rows, then restricted to ``names``."""
    frames = [forecasts]
    keys = ["coin_id", "as_of", "horizon", "fold_cutoff"]
    for n in names:
        members = ensemble_members(n, cfg)
        if not members:
            continue
        rows = forecasts[forecasts["forecaster"].isin(members)]
        wide = rows.pivot_table(
            index=keys, columns="forecaster", values="forecast", aggfunc="first", dropna=False
        )
        wide = wide.reindex(columns=list(members))
        combined = mean_forecast(wide).dropna().rename("forecast").reset_index()
        frames.append(combined.assign(forecaster=n)[forecasts.columns])
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else forecasts
    out = out[out["forecaster"].isin(list(names))]
    return out.sort_values(["forecaster", "coin_id", "as_of"], ignore_index=True)


def describe(names: Iterable[str]) -> list[dict[str, str]]:
    """Display records (name, label, colour, kind) of ``names``, in order (see ``ForecasterSpec.display``)."""
    return [spec(n).display for n in names]


def check_config(config: StudyConfig) -> StudyConfig:
    """Validate the study's forecaster names and every ``forecast.models.<name>`` table through its spec.

    Returns ``config`` unchanged, so callers can write ``check_config(load_config(...))``.

    Raises
    ------
    ConfigError
        Naming the offending key: an unknown name in ``forecast.forecasters``,
        ``forecast.models`` or ``trading.strategy``, an invalid setting, or an ensemble member
        that is not a learned model.
    """
    f = config.forecast
    known = sorted(FORECASTERS)
    if unknown := [n for n in f.forecasters if n not in FORECASTERS]:
        raise ConfigError(f"forecast.forecasters: unknown {unknown}; choose from {known}")
    if unknown := [n for n in f.models if n not in FORECASTERS]:
        raise ConfigError(f"forecast.models: unknown forecaster(s) {unknown}; choose from {known}")
    for name in dict.fromkeys([*f.forecasters, *f.models]):
        FORECASTERS[name].resolve(f.settings_for(name))
        for member in ensemble_members(name, f):
            if member not in FORECASTERS or FORECASTERS[member].kind != "learned":
                learned = sorted(n for n, s in FORECASTERS.items() if s.kind == "learned")
                raise ConfigError(
                    f"forecast.models.{name}.members: {member!r} is not a learned forecaster; "
                    f"choose from {learned}"
                )
    strategy = config.trading.strategy
    if "/" in strategy and strategy.split("/", 1)[0] not in FORECASTERS:
        raise ConfigError(f"trading.strategy={strategy!r}: unknown forecaster; choose from {known}")
    return config


def stable_seed(*parts: object) -> int:
    """A seed derived from ``parts`` that is the same in every process and run."""
    return zlib.crc32("|".join(map(str, parts)).encode()) & 0x7FFFFFFF
