"""The neural forecaster: any registered stacked network, trained by :mod:`kallos.forecast.training`.

A network plug-in provides a pydantic settings model (subclass of :class:`NetworkSettings`)
whose :meth:`~NetworkSettings.build_network` returns a stacked network; everything else —
windows, scaling, the direction-aware loss, early stopping, refitting, inference, saving — is
here and in the trainer, the same for every architecture.

The network reads the last ``lookback`` days of standardised features ending at the decision
date and outputs the ``horizon``-day forward log return (scaled by the training labels' RMS).

Refit (``refit=True``): once early stopping has chosen the epoch count ``E`` on the validation
block, the model is trained again from the same initial weights on every labelled sample of the
window, ``[train_start, cutoff − horizon]`` (the last label still ends at the cutoff), for
``E`` epochs, with scalers fitted on that span. Without it the networks never see the
validation block and the purge gaps, the last ~105 days before each decision quarter.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Self

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict

from kallos.config import ForecastConfig, TrainingConfig
from kallos.exceptions import InsufficientDataError
from kallos.features.labels import forward_log_return
from kallos.forecast.base import BaseForecaster, CoinHistory, check_cutoff
from kallos.forecast.training import (
    Scaler,
    StackedModule,
    TrainingData,
    predict_stack,
    train_stack,
    valid_windows,
    windows,
)
from kallos.forecast.walk_forward import Fold

__all__ = ["STATE_FORMAT", "NetworkSettings", "NeuralForecaster", "neural_builder"]

STATE_FORMAT = "kallos.neural/1"


class NetworkSettings(BaseModel):
    """Base of a network plug-in's settings (``forecast.models.<name>``): strict and frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @abstractmethod
    def build_network(
        self, n_features: int, generators: Sequence[torch.Generator] = (), n_models: int = 1
    ) -> StackedModule:
        """A stack with one model per generator (initialised from it), or ``n_models``
        zero-initialised models (to load weights into) when no generator is given."""


class NeuralForecaster(BaseForecaster):
    """Forecaster of the forward log return with a stacked network plug-in.

    Parameters
    ----------
    name : the registered forecaster name (``"gru"``, ``"transformer"``, ...).
    network : the plug-in's settings (:class:`NetworkSettings`).
    training : trainer settings (lookback, optimiser, epochs, patience, direction weight λ).
    horizon : label horizon in days.
    seed : seed of this fit's private generator (weights, dropout, shuffling).
    device : torch device (``"cpu"`` default; ``"cuda"`` where available).
    min_train_samples : fewer training samples raise :class:`InsufficientDataError`.
    refit : retrain on the whole window for the early-stopped epoch count (module docstring).

    Attributes
    ----------
    net_ : the trained network (a one-model stack).
    scaler_ : :class:`~kallos.forecast.training.Scaler` fitted on the training rows only.
    feature_names_ : feature columns, in order.
    training_ : sample counts, best epoch and per-epoch losses (and the refit's, with ``refit``).
    """

    parallel = True

    def __init__(
        self,
        name: str,
        network: NetworkSettings,
        training: TrainingConfig | None = None,
        horizon: int = 7,
        seed: int = 0,
        device: str = "cpu",
        min_train_samples: int = 60,
        refit: bool = False,
    ) -> None:
        self.name = name
        self.network = network
        self.training = training
        self.horizon = horizon
        self.seed = seed
        self.device = device
        self.min_train_samples = min_train_samples
        self.refit = refit

    @property
    def training_config(self) -> TrainingConfig:
        return self.training or TrainingConfig()

    @property
    def stack_key(self) -> tuple[Any, ...]:
        """Models with equal keys can be trained together in one stack."""
        return (
            type(self).__name__,
            self.name,
            type(self.network).__qualname__,
            self.network.model_dump_json(),
            self.training_config.model_dump_json(),
            self.horizon,
            self.device,
            self.refit,
        )

    def new_net(
        self, n_features: int, generators: Sequence[torch.Generator] = (), n_models: int = 1
    ) -> StackedModule:
        """A stack of this forecaster's network (see :meth:`NetworkSettings.build_network`)."""
        return self.network.build_network(n_features, generators, n_models)

    # ----------------------------------------------------------------- data
    def prepare(self, history: CoinHistory, fold: Fold, refit: bool = False) -> TrainingData:
        """Fit the scaler on the training rows of ``history`` (up to the cutoff) and build the problem.

        ``refit=False``: training samples dated ``[train_start, train_end]``, validation samples
        ``[validation_start, validation_end]``. ``refit=True``: every labelled sample dated
        ``[train_start, validation_end]`` trains (labels end by the cutoff), no validation.
        Sets ``scaler_`` and ``feature_names_``.

        Raises
        ------
        DataValidationError
            If ``history`` holds any row after ``fold.cutoff``.
        InsufficientDataError
            If fewer than ``min_train_samples`` training windows have a label.
        """
        check_cutoff(history, fold)
        lookback = self.training_config.lookback
        feats = history.features.to_numpy(dtype=np.float64)
        labels = forward_log_return(history.close, self.horizon).to_numpy()
        dates = history.features.index
        has_y = np.isfinite(labels) & valid_windows(feats, lookback)
        train_end = fold.validation_end if refit else fold.train_end
        train_rows = np.flatnonzero(has_y & (dates >= fold.train_start) & (dates <= train_end))
        val_rows = (
            np.array([], dtype=np.int64)
            if refit
            else np.flatnonzero(has_y & (dates >= fold.validation_start) & (dates <= fold.validation_end))
        )
        if len(train_rows) < self.min_train_samples:
            raise InsufficientDataError(
                f"{history.coin_id}: {len(train_rows)} training samples in "
                f"{fold.train_start.date()}..{train_end.date()} (need {self.min_train_samples})"
            )
        self.scaler_ = Scaler.fit(feats, train_rows, labels, lookback)
        self.feature_names_ = list(history.features.columns)
        scaled = self.scaler_.transform(feats)

        def to_t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a / self.scaler_.target_scale, dtype=torch.float32, device=self.device)

        return TrainingData(
            windows(scaled, train_rows, lookback, self.device),
            to_t(labels[train_rows]),
            windows(scaled, val_rows, lookback, self.device),
            to_t(labels[val_rows]),
            self.seed,
            train_dates=pd.DatetimeIndex(dates[train_rows]),
            validation_dates=pd.DatetimeIndex(dates[val_rows]),
        )

    def install(self, state: dict[str, torch.Tensor], training: dict[str, Any], data: TrainingData) -> None:
        """Adopt trained weights (one model's ``model_state``) and the training log."""
        net = self.new_net(len(self.feature_names_)).load_models([state]).to(self.device)
        net.eval()
        self.net_ = net
        self.training_ = {**training, "n_train": len(data.x_train), "n_validation": len(data.x_val)}

    # ----------------------------------------------------------------- fit
    @staticmethod
    def fit_stack(
        models: Sequence[NeuralForecaster], histories: Sequence[CoinHistory], folds: Sequence[Fold]
    ) -> list[InsufficientDataError | None]:
        """Fit ``models`` (equal :attr:`stack_key`) as one stacked computation, each on its history.

        Every history must end at or before its fold's cutoff. Returns, per model, ``None`` when
        it was fitted or the :class:`InsufficientDataError` that stopped it.
        """
        errors: list[InsufficientDataError | None] = [None] * len(models)
        live, data = [], []
        for i, (model, history, fold) in enumerate(zip(models, histories, folds, strict=True)):
            try:
                data.append(model.prepare(history, fold))
                live.append(i)
            except InsufficientDataError as err:
                errors[i] = err
        if not live:
            return errors
        first = models[live[0]]
        cfg, build = first.training_config, first.new_net
        trained = train_stack(data, build, cfg, first.device)
        if first.refit:
            stopped = trained
            data = [models[i].prepare(histories[i], folds[i], refit=True) for i in live]
            epochs = [info["best_epoch"] for _, info in stopped]
            trained = [
                (state, {**info, "early_stopping": early})
                for (state, info), (_, early) in zip(
                    train_stack(data, build, cfg, first.device, epochs=epochs), stopped, strict=True
                )
            ]
        for i, d, (state, info) in zip(live, data, trained, strict=True):
            models[i].install(state, info, d)
            models[i].cutoff_ = folds[i].cutoff
        return errors

    def _fit(self, history: CoinHistory, fold: Fold) -> None:
        (err,) = self.fit_stack([self], [history], [fold])
        if err is not None:
            raise err

    # ----------------------------------------------------------------- predict
    def _predict(self, history: CoinHistory, dates: pd.DatetimeIndex) -> pd.Series:
        out = pd.Series(np.nan, index=dates, dtype=float)
        if len(dates) == 0:
            return out
        lookback = self.training_config.lookback
        feats = history.features[self.feature_names_].to_numpy(dtype=np.float64)
        win_ok = valid_windows(feats, lookback)
        pos = history.features.index.get_indexer(dates)
        usable = (pos >= 0) & win_ok[np.clip(pos, 0, None)]
        if not usable.any():
            return out
        x = windows(self.scaler_.transform(feats), np.clip(pos, lookback - 1, None), lookback, self.device)
        out[usable] = predict_stack(self.net_, x)[usable] * self.scaler_.target_scale
        return out

    # ----------------------------------------------------------------- state (no pickle)
    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Tensors (one model's parameters) and JSON-able metadata of a fitted model."""
        tensors = {k: v.cpu().numpy() for k, v in self.net_.model_state(0).items()}
        meta = {
            "format": STATE_FORMAT,
            "params": self.to_state_params(),
            "feature_names": self.feature_names_,
            "scaler": {
                "mean": self.scaler_.mean.tolist(),
                "scale": self.scaler_.scale.tolist(),
                "target_scale": self.scaler_.target_scale,
            },
            "cutoff": self.cutoff_.date().isoformat(),
            "training": self.training_,
        }
        return tensors, meta

    def load_state(
        self, tensors: dict[str, np.ndarray], meta: dict[str, Any], device: str | None = None
    ) -> Self:
        """A fitted copy of this forecaster with the weights and scaler of :meth:`to_state` output.

        Raises
        ------
        ValueError
            If ``meta`` is not a state of this format, or was saved by a forecaster with other
            parameters (another network, training settings, horizon or seed).
        """
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"not a Kallos neural model state: format {meta.get('format')!r}")
        model = self.clone(**({"device": device} if device else {}))
        ours = model.to_state_params()
        if meta["params"] != ours:
            diff = sorted(k for k in ours if meta["params"].get(k) != ours[k])
            raise ValueError(
                f"model state of {meta['params'].get('name')!r} differs from this forecaster in {diff}"
            )
        names = meta["feature_names"]
        net = model.new_net(len(names)).load_models([{k: torch.as_tensor(v) for k, v in tensors.items()}])
        model.net_ = net.to(model.device).eval()
        model.feature_names_ = list(names)
        s = meta["scaler"]
        model.scaler_ = Scaler(
            np.asarray(s["mean"], dtype=np.float64),
            np.asarray(s["scale"], dtype=np.float64),
            float(s["target_scale"]),
        )
        model.cutoff_ = pd.Timestamp(meta["cutoff"])
        model.training_ = meta["training"]
        return model

    def to_state_params(self) -> dict[str, Any]:
        """The ``params`` block :meth:`to_state` writes (JSON round-tripped)."""
        return json.loads(
            json.dumps(
                {
                    "name": self.name,
                    "network": self.network.model_dump(mode="json"),
                    "training": self.training_config.model_dump(mode="json"),
                    "horizon": self.horizon,
                    "seed": self.seed,
                    "min_train_samples": self.min_train_samples,
                    "refit": self.refit,
                }
            )
        )


def neural_builder(name: str) -> Callable[[NetworkSettings, ForecastConfig, int, str], NeuralForecaster]:
    """A spec builder: ``(settings, forecast config, seed, device) -> NeuralForecaster`` named
    ``name``, with the study's trainer settings, horizon, sample minimum and refit flag."""

    def build(settings: NetworkSettings, config: ForecastConfig, seed: int, device: str) -> NeuralForecaster:
        return NeuralForecaster(
            name,
            settings,
            config.training,
            config.horizon,
            seed,
            device,
            config.min_train_samples,
            config.refit,
        )

    return build
