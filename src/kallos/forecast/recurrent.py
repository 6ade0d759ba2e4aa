"""Recurrent forecasters (GRU and LSTM from one module) with a direction-aware loss.

The network reads the last ``lookback`` days of standardised features ending at the
decision date and outputs the ``horizon``-day forward log return. Training minimises

    L = mean_i( w_i · (ŷ_i − y_i)² ),   w_i = λ if ŷ_i · y_i < 0 else 1,

a squared error that costs λ times more when the predicted direction is wrong (a zero
prediction or target counts as agreeing). Early stopping watches the same loss on the
fold's validation block (the last 13 weeks of the training window, after a purge gap).

Reproducibility: every fit seeds its own RNG (:func:`torch.random.fork_rng`), so the
global generator is untouched, and runs single-threaded on the CPU, so the result does
not depend on the machine's core count.
"""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from kallos.config import RecurrentConfig
from kallos.exceptions import InsufficientDataError
from kallos.features.labels import forward_log_return
from kallos.forecast.base import BaseForecaster, CoinHistory
from kallos.forecast.walk_forward import Fold

__all__ = ["RecurrentForecaster", "RecurrentNet", "direction_aware_loss"]

STATE_FORMAT = "kallos.recurrent/1"
CELLS: dict[str, type[nn.Module]] = {"gru": nn.GRU, "lstm": nn.LSTM}


class RecurrentNet(nn.Module):
    """Stacked GRU or LSTM followed by a linear head on the last time step.

    Input shape ``(batch, lookback, n_features)``; output shape ``(batch,)``.
    """

    def __init__(self, n_features: int, hidden_size: int, num_layers: int, dropout: float, cell: str):
        super().__init__()
        self.rnn = CELLS[cell](
            n_features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(self.dropout(out[:, -1])).squeeze(-1)


def direction_aware_loss(pred: torch.Tensor, target: torch.Tensor, direction_weight: float) -> torch.Tensor:
    """Mean squared error weighted by ``direction_weight`` (λ ≥ 1) where signs disagree.

    Parameters
    ----------
    pred, target : tensors of shape ``(batch,)``.
    direction_weight : λ; ``1`` gives plain MSE.
    """
    wrong = (pred * target) < 0
    weights = torch.where(wrong, torch.full_like(pred, direction_weight), torch.ones_like(pred))
    return (weights * (pred - target) ** 2).mean()


@contextmanager
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _rng_fork_args(device: str) -> dict[str, Any]:
    """:func:`torch.random.fork_rng` arguments restoring every generator ``torch.manual_seed`` reseeds.

    ``torch.manual_seed`` also reseeds every accelerator generator, so on a CUDA device those
    are forked too; on the CPU only the CPU generator (always forked) is touched.
    """
    kind = torch.device(device).type
    if kind == "cpu":
        return {"devices": []}
    return {"devices": range(torch.get_device_module(kind).device_count()), "device_type": kind}


def _valid_windows(features: np.ndarray, lookback: int) -> np.ndarray:
    """Boolean per row: the ``lookback`` rows ending here all have finite features."""
    ok = np.isfinite(features).all(axis=1).astype(np.int64)
    csum = np.concatenate([[0], np.cumsum(ok)])
    out = np.zeros(len(ok), dtype=bool)
    if len(ok) >= lookback:
        out[lookback - 1 :] = (csum[lookback:] - csum[:-lookback]) == lookback
    return out


class RecurrentForecaster(BaseForecaster):
    """GRU (or LSTM) forecaster of the forward log return.

    Parameters
    ----------
    config : network and training hyper-parameters (:class:`kallos.config.RecurrentConfig`).
    cell : ``"gru"`` or ``"lstm"``; also the forecaster's name.
    horizon : label horizon in days.
    seed : seed of this fit's private RNG (weights, dropout, shuffling).
    device : torch device (``"cpu"`` default; ``"cuda"`` where available).
    min_train_samples : fewer training samples raise :class:`InsufficientDataError`.

    Attributes
    ----------
    net_ : the trained network (best validation epoch).
    scaler_mean_, scaler_scale_ : per-feature standardisation fitted on training rows only.
    target_scale_ : root-mean-square of training labels; the net predicts ``y / target_scale_``.
    feature_names_ : feature columns, in order.
    training_ : dict with sample counts, best epoch and per-epoch losses.
    """

    parallel = True

    def __init__(
        self,
        config: RecurrentConfig | None = None,
        cell: str = "gru",
        horizon: int = 7,
        seed: int = 0,
        device: str = "cpu",
        min_train_samples: int = 60,
    ) -> None:
        self.config = config
        self.cell = cell
        self.horizon = horizon
        self.seed = seed
        self.device = device
        self.min_train_samples = min_train_samples

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.cell

    @property
    def _cfg(self) -> RecurrentConfig:
        return self.config or RecurrentConfig()

    # ----------------------------------------------------------------- data
    def _design(self, history: CoinHistory) -> tuple[np.ndarray, np.ndarray]:
        feats = history.features.to_numpy(dtype=np.float64)
        return feats, _valid_windows(feats, self._cfg.lookback)

    def _windows(self, scaled: np.ndarray, rows: np.ndarray) -> torch.Tensor:
        lookback = self._cfg.lookback
        view = np.lib.stride_tricks.sliding_window_view(scaled, lookback, axis=0)  # (T-L+1, F, L)
        x = view[rows - (lookback - 1)].transpose(0, 2, 1)
        return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32, device=self.device)

    def _scale(self, feats: np.ndarray) -> np.ndarray:
        scaled = (feats - self.scaler_mean_) / self.scaler_scale_
        return np.where(np.isfinite(scaled), scaled, 0.0)

    # ----------------------------------------------------------------- fit
    def _fit(self, history: CoinHistory, fold: Fold) -> None:
        cfg = self._cfg
        feats, win_ok = self._design(history)
        labels = forward_log_return(history.close, self.horizon).to_numpy()
        dates = history.features.index
        has_y = np.isfinite(labels) & win_ok
        train_rows = np.flatnonzero(has_y & (dates >= fold.train_start) & (dates <= fold.train_end))
        val_rows = np.flatnonzero(has_y & (dates >= fold.validation_start) & (dates <= fold.validation_end))
        if len(train_rows) < self.min_train_samples:
            raise InsufficientDataError(
                f"{history.coin_id}: {len(train_rows)} training samples in "
                f"{fold.train_start.date()}..{fold.train_end.date()} (need {self.min_train_samples})"
            )
        # Standardise with statistics of the rows the training windows read (training data only).
        first = train_rows[0] - (cfg.lookback - 1)
        rows = np.arange(first, train_rows[-1] + 1)
        block = feats[rows][np.isfinite(feats[rows]).all(axis=1)]
        self.scaler_mean_ = block.mean(axis=0)
        scale = block.std(axis=0)
        self.scaler_scale_ = np.where(scale > 1e-12, scale, 1.0)
        self.feature_names_ = list(history.features.columns)
        y_train = labels[train_rows]
        self.target_scale_ = float(math.sqrt(np.mean(y_train**2))) or 1.0

        scaled = self._scale(feats)
        x_train, x_val = self._windows(scaled, train_rows), self._windows(scaled, val_rows)
        to_t = lambda a: torch.as_tensor(a / self.target_scale_, dtype=torch.float32, device=self.device)  # noqa: E731
        y_tr, y_va = to_t(y_train), to_t(labels[val_rows])

        with _single_thread(), torch.random.fork_rng(**_rng_fork_args(self.device)):
            torch.manual_seed(self.seed)
            net = RecurrentNet(feats.shape[1], cfg.hidden_size, cfg.num_layers, cfg.dropout, self.cell)
            net.to(self.device)
            self.net_, self.training_ = self._train(net, x_train, y_tr, x_val, y_va)
        self.training_.update(n_train=len(train_rows), n_validation=len(val_rows))

    def _train(self, net, x_train, y_train, x_val, y_val) -> tuple[RecurrentNet, dict[str, Any]]:
        cfg = self._cfg
        opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        gen = torch.Generator().manual_seed(self.seed)
        lam = cfg.direction_weight
        best, best_epoch, best_state, stale = math.inf, 0, None, 0
        train_losses, val_losses = [], []
        n = len(x_train)
        for epoch in range(1, cfg.max_epochs + 1):
            net.train()
            perm = torch.randperm(n, generator=gen)
            total = 0.0
            for i in range(0, n, cfg.batch_size):
                idx = perm[i : i + cfg.batch_size].to(self.device)
                loss = direction_aware_loss(net(x_train[idx]), y_train[idx], lam)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            train_losses.append(total / n)
            if len(x_val) == 0:
                best_state, best_epoch = copy.deepcopy(net.state_dict()), epoch
                continue
            net.eval()
            with torch.no_grad():
                val = float(direction_aware_loss(net(x_val), y_val, lam))
            val_losses.append(val)
            if val < best - 1e-9:
                best, best_epoch, best_state, stale = val, epoch, copy.deepcopy(net.state_dict()), 0
            else:
                stale += 1
                if stale >= cfg.patience:
                    break
        if best_state is None:  # every validation loss was NaN (a diverged network): keep the last state
            best_state, best_epoch = copy.deepcopy(net.state_dict()), len(train_losses)
        net.load_state_dict(best_state)
        net.eval()
        info = {
            "best_epoch": best_epoch,
            "epochs": len(train_losses),
            "best_validation_loss": best if math.isfinite(best) else None,
            "train_loss": train_losses,
            "validation_loss": val_losses,
        }
        return net, info

    # ----------------------------------------------------------------- predict
    def _predict(self, history: CoinHistory, dates: pd.DatetimeIndex) -> pd.Series:
        out = pd.Series(np.nan, index=dates, dtype=float)
        if len(dates) == 0:
            return out
        feats = history.features[self.feature_names_].to_numpy(dtype=np.float64)
        win_ok = _valid_windows(feats, self._cfg.lookback)
        pos = history.features.index.get_indexer(dates)
        usable = (pos >= 0) & win_ok[np.clip(pos, 0, None)]
        if not usable.any():
            return out
        x = self._windows(self._scale(feats), pos[usable])
        # One window per forward pass: BLAS rounds differently for different batch shapes, so a
        # batched forecast at t would depend (in its last bits) on how many later dates share
        # its batch. Single-row passes make each forecast bit-identical whatever follows t.
        with _single_thread(), torch.no_grad():
            pred = np.array([float(self.net_(x[i : i + 1])[0]) for i in range(len(x))])
        out[usable] = pred * self.target_scale_
        return out

    # ----------------------------------------------------------------- state (no pickle)
    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Tensors (the network's state_dict) and JSON-able metadata of a fitted model."""
        tensors = {k: v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}
        meta = {
            "format": STATE_FORMAT,
            "params": {
                "config": self._cfg.model_dump(mode="json"),
                "cell": self.cell,
                "horizon": self.horizon,
                "seed": self.seed,
                "min_train_samples": self.min_train_samples,
            },
            "feature_names": self.feature_names_,
            "scaler": {"mean": self.scaler_mean_.tolist(), "scale": self.scaler_scale_.tolist()},
            "target_scale": self.target_scale_,
            "cutoff": self.cutoff_.date().isoformat(),
            "training": self.training_,
        }
        return tensors, meta

    @classmethod
    def from_state(
        cls, tensors: dict[str, np.ndarray], meta: dict[str, Any], device: str = "cpu"
    ) -> RecurrentForecaster:
        """Rebuild a fitted forecaster from :meth:`to_state` output."""
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"not a Kallos recurrent model state: format {meta.get('format')!r}")
        p = meta["params"]
        model = cls(
            config=RecurrentConfig(**p["config"]),
            cell=p["cell"],
            horizon=p["horizon"],
            seed=p["seed"],
            device=device,
            min_train_samples=p["min_train_samples"],
        )
        cfg = model._cfg
        names = meta["feature_names"]
        net = RecurrentNet(len(names), cfg.hidden_size, cfg.num_layers, cfg.dropout, model.cell)
        net.load_state_dict({k: torch.as_tensor(v) for k, v in tensors.items()})
        net.to(device).eval()
        model.net_ = net
        model.feature_names_ = list(names)
        model.scaler_mean_ = np.asarray(meta["scaler"]["mean"], dtype=np.float64)
        model.scaler_scale_ = np.asarray(meta["scaler"]["scale"], dtype=np.float64)
        model.target_scale_ = float(meta["target_scale"])
        model.cutoff_ = pd.Timestamp(meta["cutoff"])
        model.training_ = meta["training"]
        return model
