"""The model-agnostic trainer: K stacked networks trained in one computation.

A neural forecaster plugs in a *stacked network* (:class:`StackedNetwork`): ``K`` independent
models whose parameters share a leading model axis, initialised from ``K`` generators, and a
forward pass ``(K, B, L, F) -> (K, B)``. A single model is ``K = 1``, so a lone fit and a
stack run the same arithmetic. This module owns everything else:

* windowing (:func:`windows`, :func:`valid_windows`) and scaling (:class:`Scaler`, fitted on
  training rows only);
* the direction-aware loss (:func:`direction_aware_loss`)::

      L = mean_i( w_i · (ŷ_i − y_i)² ),   w_i = λ if ŷ_i · y_i < 0 else 1

  (a zero prediction or target counts as agreeing);
* the stacked optimiser (:class:`StackedAdam`: ``torch.optim.Adam``'s update with a per-model
  step mask and step count);
* early stopping per model on its validation block, and masking for unequal sample counts
  (:func:`train_stack`).

Per model in a stack: its own data (windows padded to the longest model's count, rows
shuffled by its own generator, so a model with fewer samples runs fewer mini-batches and its
optimiser state does not move when it has no batch); its own loss (the stacked objective is
the *sum* of per-model losses, so each gradient is exactly the model's own); its own Adam
state; its own early stopping (a model that has not improved for ``patience`` epochs leaves
the stack with its best-epoch weights).

Guarantees (tested in ``tests/forecast/test_training.py`` for every registered network):
a stacked model equals the same model trained alone within 1e-5 (float32 rounding of the
stacked matmuls); reruns are bit-identical under a seed (every random draw comes from the
model's own ``torch.Generator``, training runs single-threaded); a forecast at ``t`` does not
depend on how many dates follow it (fixed-shape inference chunks, :data:`PREDICT_CHUNK`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn

from kallos.config import TrainingConfig

__all__ = [
    "PREDICT_CHUNK",
    "ParamInit",
    "Scaler",
    "StackedAdam",
    "StackedModule",
    "StackedNetwork",
    "TrainingData",
    "direction_aware_loss",
    "dropout_mask",
    "masked_direction_aware_loss",
    "predict_stack",
    "rng_fork_args",
    "torch_threads",
    "train_stack",
    "uniform_init",
    "valid_windows",
    "windows",
]

#: Rows per inference pass. Forecasts run in fixed-shape chunks counted from the first
#: requested date, so a forecast at t never depends on how many dates follow it.
PREDICT_CHUNK = 64


# --------------------------------------------------------------------------- protocol
class StackedNetwork(Protocol):
    """``K`` independent networks evaluated together (what a neural plug-in provides).

    ``params`` holds every parameter with a leading model axis ``K``. ``forward`` maps inputs
    ``(K, batch, lookback, n_features)`` to forecasts ``(K, batch)``; ``params`` replaces the
    module's own (the trainer passes a subset of models), and ``generators`` (one per model)
    switch dropout on — without them the network runs in evaluation mode.
    """

    params: nn.ParameterDict

    def __call__(
        self,
        x: torch.Tensor,
        params: dict[str, torch.Tensor] | None = None,
        generators: Sequence[torch.Generator] | None = None,
    ) -> torch.Tensor: ...

    def to(self, device: torch.device | str) -> StackedNetwork: ...


#: ``(n_features, generators, n_models) -> StackedNetwork``: one model per generator
#: (initialised from it), or ``n_models`` zero-initialised models to load weights into.
NetworkBuilder = Callable[[int, Sequence[torch.Generator], int], StackedNetwork]


@dataclass(frozen=True)
class ParamInit:
    """One parameter of a single model: its name, shape (without the model axis) and initialiser
    ``init(shape, generator) -> tensor`` (draws from that model's generator only)."""

    name: str
    shape: tuple[int, ...]
    init: Callable[[tuple[int, ...], torch.Generator], torch.Tensor]


def uniform_init(bound: float) -> Callable[[tuple[int, ...], torch.Generator], torch.Tensor]:
    """U(−bound, bound), PyTorch's RNN and ``nn.Linear`` default for fan-in ``1/bound²``."""
    return lambda shape, gen: (torch.rand(shape, generator=gen) * 2 - 1) * bound


class StackedModule(nn.Module):
    """Base of the stacked networks: parameters ``(K, *shape)`` built from a list of :class:`ParamInit`.

    Subclasses implement ``forward`` (see :class:`StackedNetwork`).
    """

    def __init__(
        self,
        shapes: Sequence[ParamInit],
        generators: Sequence[torch.Generator] = (),
        n_models: int | None = None,
    ) -> None:
        super().__init__()
        self.n_models = len(generators) if not n_models else n_models
        if self.n_models < 1:
            raise ValueError(f"{type(self).__name__} needs at least one model (generators or n_models)")
        self.params = nn.ParameterDict(
            {
                p.name: nn.Parameter(
                    torch.stack([p.init(p.shape, g) for g in generators])
                    if generators
                    else torch.zeros((self.n_models, *p.shape))
                )
                for p in shapes
            }
        )

    def model_state(self, k: int) -> dict[str, torch.Tensor]:
        """Model ``k``'s parameters without the model axis (detached copies)."""
        return {name: v[k].detach().clone() for name, v in self.params.items()}

    def load_models(self, states: Sequence[dict[str, torch.Tensor]]) -> StackedModule:
        """Set the stack's parameters from one :meth:`model_state`-shaped dict per model."""
        if len(states) != self.n_models:
            raise ValueError(f"{len(states)} model states for a stack of {self.n_models}")
        with torch.no_grad():
            for name, v in self.params.items():
                v.copy_(
                    torch.stack([torch.as_tensor(s[name]).reshape(v.shape[1:]) for s in states]).to(v.device)
                )
        return self


def dropout_mask(
    shape: tuple[int, ...], p: float, generators: Sequence[torch.Generator], device: torch.device
) -> torch.Tensor:
    """Inverted-dropout mask ``(K, *shape)``; model k's draws come from ``generators[k]`` only."""
    keep = torch.stack([torch.rand(shape, generator=g) >= p for g in generators])
    return (keep.to(torch.float32) / (1.0 - p)).to(device)


# --------------------------------------------------------------------------- loss
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


def masked_direction_aware_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, direction_weight: float
) -> torch.Tensor:
    """:func:`direction_aware_loss` per model over its unmasked rows.

    ``pred``, ``target``, ``mask`` have shape ``(K, batch)``; returns ``(K,)`` (NaN where a
    model has no unmasked row).
    """
    wrong = (pred * target) < 0
    weights = torch.where(wrong, direction_weight, 1.0) * mask
    return (weights * (pred - target) ** 2).sum(-1) / mask.sum(-1)


# --------------------------------------------------------------------------- threads and RNG
@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, restoring the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def rng_fork_args(device: str | torch.device) -> dict[str, Any]:
    """:func:`torch.random.fork_rng` arguments restoring every generator ``torch.manual_seed`` reseeds.

    ``torch.manual_seed`` also reseeds every accelerator generator, so on a CUDA device those
    are forked too; on the CPU only the CPU generator (always forked) is touched.
    """
    kind = torch.device(device).type
    if kind == "cpu":
        return {"devices": []}
    return {"devices": range(torch.get_device_module(kind).device_count()), "device_type": kind}


# --------------------------------------------------------------------------- windows and scaling
def valid_windows(features: np.ndarray, lookback: int) -> np.ndarray:
    """Boolean per row of ``features`` ``(T, F)``: the ``lookback`` rows ending here are all finite."""
    ok = np.isfinite(features).all(axis=1).astype(np.int64)
    csum = np.concatenate([[0], np.cumsum(ok)])
    out = np.zeros(len(ok), dtype=bool)
    if len(ok) >= lookback:
        out[lookback - 1 :] = (csum[lookback:] - csum[:-lookback]) == lookback
    return out


def windows(scaled: np.ndarray, rows: np.ndarray, lookback: int, device: str | torch.device) -> torch.Tensor:
    """Input windows ``(len(rows), lookback, F)`` (float32) ending at each of ``rows`` of
    ``scaled`` ``(T, F)``.

    Every row must be at least ``lookback - 1``.
    """
    view = np.lib.stride_tricks.sliding_window_view(scaled, lookback, axis=0)  # (T-L+1, F, L)
    x = view[rows - (lookback - 1)].transpose(0, 2, 1)
    return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32, device=device)


@dataclass(frozen=True, eq=False)
class Scaler:
    """Per-feature standardisation and the label scale, fitted on training rows only.

    ``mean``/``scale`` ``(F,)``: of the feature rows the training windows read (rows with a
    non-finite feature left out; a constant feature gets scale 1). ``target_scale``: the
    root-mean-square of the training labels (the network predicts ``y / target_scale``).
    """

    mean: np.ndarray
    scale: np.ndarray
    target_scale: float

    @classmethod
    def fit(cls, feats: np.ndarray, train_rows: np.ndarray, labels: np.ndarray, lookback: int) -> Scaler:
        """Fit on the rows the windows ending at ``train_rows`` read, and on ``labels[train_rows]``."""
        rows = np.arange(train_rows[0] - (lookback - 1), train_rows[-1] + 1)
        block = feats[rows][np.isfinite(feats[rows]).all(axis=1)]
        scale = block.std(axis=0)
        target = float(math.sqrt(np.mean(labels[train_rows] ** 2))) or 1.0
        return cls(block.mean(axis=0), np.where(scale > 1e-12, scale, 1.0), target)

    def transform(self, feats: np.ndarray) -> np.ndarray:
        """Standardised features; non-finite values become 0 (the training mean)."""
        scaled = (feats - self.mean) / self.scale
        return np.where(np.isfinite(scaled), scaled, 0.0)


@dataclass(frozen=True)
class TrainingData:
    """One model's training problem: scaled windows ``(n, lookback, F)`` and scaled labels ``(n,)``.

    ``train_dates`` and ``validation_dates`` are the decision dates of the samples (the label of
    the sample dated ``d`` is the forward return from ``d`` to ``d + horizon``); empty when unknown.
    An empty validation block means no early stopping (the model trains its epoch budget).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    seed: int
    train_dates: pd.DatetimeIndex = field(default_factory=lambda: pd.DatetimeIndex([]))
    validation_dates: pd.DatetimeIndex = field(default_factory=lambda: pd.DatetimeIndex([]))


# --------------------------------------------------------------------------- optimiser
class StackedAdam:
    """Adam (Kingma & Ba 2015, as in ``torch.optim.Adam`` with L2 ``weight_decay``) for stacked models.

    Each tensor in ``params`` has a leading model axis ``K``; :meth:`step` updates only the
    models in ``active`` and keeps a step count per model for the bias corrections.
    """

    def __init__(
        self,
        params: dict[str, torch.Tensor],
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params, self.lr, self.weight_decay, self.betas, self.eps = params, lr, weight_decay, betas, eps
        self.m = {k: torch.zeros_like(v) for k, v in params.items()}
        self.v = {k: torch.zeros_like(v) for k, v in params.items()}
        first = next(iter(params.values()))
        self.steps = torch.zeros(first.shape[0], dtype=torch.float64)

    @torch.no_grad()
    def step(self, grads: dict[str, torch.Tensor], active: torch.Tensor | None = None) -> None:
        """One update of the ``active`` models (boolean ``(K,)``; ``None`` = all)."""
        b1, b2 = self.betas
        every = active is None
        if not every:
            active_cpu = active.cpu()
        self.steps += 1 if every else active_cpu.to(torch.float64)
        steps = self.steps.clamp(min=1)
        device = next(iter(self.params.values())).device
        step_size = (self.lr / (1 - b1**steps)).to(torch.float32).to(device)
        bc2_sqrt = torch.sqrt(1 - b2**steps).to(torch.float32).to(device)
        for name, p in self.params.items():
            g = grads[name]
            if self.weight_decay:
                g = g + self.weight_decay * p
            view = (-1,) + (1,) * (p.dim() - 1)
            m_new = self.m[name] * b1 + g * (1 - b1)
            v_new = self.v[name] * b2 + g * g * (1 - b2)
            denom = v_new.sqrt() / bc2_sqrt.view(view) + self.eps
            p_new = p - step_size.view(view) * m_new / denom
            if every:
                self.m[name], self.v[name] = m_new, v_new
                p.copy_(p_new)
            else:
                keep = active.view(view)
                self.m[name] = torch.where(keep, m_new, self.m[name])
                self.v[name] = torch.where(keep, v_new, self.v[name])
                p.copy_(torch.where(keep, p_new, p))

    def select(self, keep: torch.Tensor, params: dict[str, torch.Tensor]) -> None:
        """Keep only the models at indices ``keep`` (after the stack shrank to ``params``)."""
        self.params = params
        self.m = {k: v[keep] for k, v in self.m.items()}
        self.v = {k: v[keep] for k, v in self.v.items()}
        self.steps = self.steps[keep.cpu()]


# --------------------------------------------------------------------------- training
def _pad(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack tensors of different lengths along a new axis 0, zero-padding axis 1."""
    n = max(1, max(len(t) for t in tensors))
    first = tensors[0]
    out = first.new_zeros((len(tensors), n, *first.shape[1:]))
    for i, t in enumerate(tensors):
        out[i, : len(t)] = t
    return out


def _info(best: float, best_epoch: int, train: list[float], val: list[float]) -> dict[str, Any]:
    return {
        "best_epoch": best_epoch,
        "epochs": len(train),
        "best_validation_loss": best if math.isfinite(best) else None,
        "train_loss": train,
        "validation_loss": val,
    }


def train_stack(
    data: Sequence[TrainingData],
    build: NetworkBuilder,
    training: TrainingConfig,
    device: str = "cpu",
    *,
    epochs: Sequence[int] | None = None,
    threads: int = 1,
) -> list[tuple[dict[str, torch.Tensor], dict[str, Any]]]:
    """Train one model per item of ``data`` together, each network built by ``build``.

    Parameters
    ----------
    data : one :class:`TrainingData` per model (scaled windows ``(n_k, lookback, F)``, scaled
        labels ``(n_k,)``, validation likewise, and the model's seed). Every item must have the
        same ``lookback`` and ``F`` and at least one training sample.
    build : the plug-in's stacked network builder (:data:`NetworkBuilder`).
    training : optimiser, batch size, epochs, patience and direction weight λ.
    device : torch device.
    epochs : per-model epoch budget (default ``training.max_epochs`` each); a refit passes the
        epoch count early stopping chose.
    threads : torch intra-op threads while training (default 1: results independent of the
        machine; benchmarks raise it to compare with other libraries at equal thread counts).

    Returns
    -------
    Per model, in order: its best-validation-epoch parameters (the last epoch's without a
    validation block) as a ``StackedModule.model_state``-shaped dict, and its training log
    (``best_epoch``, ``epochs``, ``best_validation_loss``, per-epoch ``train_loss`` and
    ``validation_loss``).

    Raises
    ------
    ValueError
        If ``data`` is empty, a model has no training sample, or ``epochs`` has the wrong length.
    """
    if not data:
        raise ValueError("train_stack needs at least one model")
    if any(len(d.x_train) == 0 for d in data):
        raise ValueError("every model needs at least one training sample")
    budget = [training.max_epochs] * len(data) if epochs is None else [max(1, int(e)) for e in epochs]
    if len(budget) != len(data):
        raise ValueError(f"{len(budget)} epoch budgets for {len(data)} models")
    with torch_threads(threads), torch.random.fork_rng(**rng_fork_args(device)):
        return _Trainer(data, build, training, device, budget).run()


class _Trainer:
    """The state of one stacked training run (models leave the stack as they stop)."""

    def __init__(
        self,
        data: Sequence[TrainingData],
        build: NetworkBuilder,
        cfg: TrainingConfig,
        device: str,
        budget: list[int],
    ) -> None:
        self.cfg, self.device, self.budget = cfg, torch.device(device), budget
        self.gens = [torch.Generator().manual_seed(d.seed) for d in data]
        self.net = build(data[0].x_train.shape[-1], self.gens, len(data)).to(self.device)
        self.params = {k: v.detach().clone() for k, v in self.net.params.items()}
        self.x_train, self.y_train = _pad([d.x_train for d in data]), _pad([d.y_train for d in data])
        self.x_val, self.y_val = _pad([d.x_val for d in data]), _pad([d.y_val for d in data])
        n_val = torch.tensor([len(d.x_val) for d in data])
        self.val_mask = (torch.arange(self.x_val.shape[1]) < n_val[:, None]).to(torch.float32).to(self.device)
        self.has_val = n_val > 0
        self.n = torch.tensor([len(d.x_train) for d in data])
        self.live = list(range(len(data)))  # original index of each stack position
        self.opt = StackedAdam(self.params, cfg.learning_rate, cfg.weight_decay)
        k = len(data)
        self.best = [math.inf] * k
        self.best_epoch = [0] * k
        self.stale = [0] * k
        self.best_state: list[dict[str, torch.Tensor] | None] = [None] * k
        self.train_losses: list[list[float]] = [[] for _ in range(k)]
        self.val_losses: list[list[float]] = [[] for _ in range(k)]

    def _state(self, pos: int) -> dict[str, torch.Tensor]:
        return {name: v[pos].detach().clone() for name, v in self.params.items()}

    def _shrink(self, keep: list[int]) -> None:
        idx = torch.tensor(keep, dtype=torch.long)
        dev_idx = idx.to(self.device)
        self.params = {k: v[dev_idx].clone() for k, v in self.params.items()}
        self.opt.select(dev_idx, self.params)
        for attr in ("x_train", "y_train", "x_val", "y_val", "val_mask"):
            setattr(self, attr, getattr(self, attr)[dev_idx])
        self.n, self.has_val = self.n[idx], self.has_val[idx]
        self.live = [self.live[i] for i in keep]
        self.gens = [self.gens[i] for i in keep]

    def _epoch(self) -> list[float]:
        """One pass over every live model's data; returns each model's mean training loss."""
        bs, lam = self.cfg.batch_size, self.cfg.direction_weight
        k = len(self.live)
        n = self.n
        n_batches = (n + bs - 1) // bs
        perms = torch.zeros((k, int(n_batches.max()) * bs), dtype=torch.long)  # padding: row 0
        for i, gen in enumerate(self.gens):
            perms[i, : n[i]] = torch.randperm(int(n[i]), generator=gen)
        totals = torch.zeros(k, dtype=torch.float64, device=self.device)
        for b in range(int(n_batches.max())):
            active = n_batches > b
            pos = torch.nonzero(active).flatten()
            count = (n[pos] - b * bs).clamp(max=bs)
            # Always a full-width batch (short ones masked): dropout masks then have the same
            # shape, so draw the same numbers, whatever the other models in the stack.
            idx = perms[pos, b * bs : (b + 1) * bs]
            mask = (torch.arange(bs) < count[:, None]).to(torch.float32).to(self.device)
            dev_pos, dev_idx = pos.to(self.device), idx.to(self.device)
            x = self.x_train[dev_pos[:, None], dev_idx]
            y = self.y_train[dev_pos[:, None], dev_idx]
            every = len(pos) == k
            leaves = {name: v.detach().requires_grad_() for name, v in self.params.items()}
            used = leaves if every else {name: v[dev_pos] for name, v in leaves.items()}
            gens = [self.gens[i] for i in pos.tolist()]
            loss = masked_direction_aware_loss(self.net(x, used, gens), y, mask, lam)
            grads = torch.autograd.grad(loss.sum(), list(leaves.values()))
            self.opt.step(dict(zip(leaves, grads, strict=True)), None if every else active.to(self.device))
            totals[dev_pos] += loss.detach().double() * count.to(self.device)
        return (totals.cpu() / n.double()).tolist()

    @torch.no_grad()
    def _validate(self) -> list[float]:
        if self.x_val.shape[1] == 0 or not bool(self.has_val.any()):
            return [math.nan] * len(self.live)
        pred = self.net(self.x_val, self.params)
        loss = masked_direction_aware_loss(pred, self.y_val, self.val_mask, self.cfg.direction_weight)
        return loss.double().cpu().tolist()

    def run(self) -> list[tuple[dict[str, torch.Tensor], dict[str, Any]]]:
        for epoch in range(1, max(self.budget) + 1):
            train = self._epoch()
            val = self._validate()
            keep = []
            for pos, m in enumerate(self.live):
                self.train_losses[m].append(train[pos])
                done = epoch >= self.budget[m]
                if not bool(self.has_val[pos]):
                    self.best_state[m], self.best_epoch[m] = self._state(pos), epoch
                else:
                    self.val_losses[m].append(val[pos])
                    if val[pos] < self.best[m] - 1e-9:
                        self.best[m], self.best_epoch[m], self.stale[m] = val[pos], epoch, 0
                        self.best_state[m] = self._state(pos)
                    else:
                        self.stale[m] += 1
                        done = done or self.stale[m] >= self.cfg.patience
                if done and self.best_state[m] is None:  # every validation loss NaN: keep the last state
                    self.best_state[m], self.best_epoch[m] = self._state(pos), epoch
                if not done:
                    keep.append(pos)
            if not keep:
                break
            if len(keep) < len(self.live):
                self._shrink(keep)
        logs = zip(self.best, self.best_epoch, self.train_losses, self.val_losses, strict=True)
        return [(state, _info(*log)) for state, log in zip(self.best_state, logs, strict=True)]


def predict_stack(net: StackedNetwork, x: torch.Tensor, threads: int = 1) -> np.ndarray:
    """Forecasts ``(n,)`` (float64, scaled units) of a one-model network on windows ``x`` ``(n, L, F)``.

    Runs fixed-shape passes of :data:`PREDICT_CHUNK` rows counted from the first window (the
    last one zero-padded): BLAS rounds differently for different batch shapes, so this makes
    the forecast at ``t`` bit-identical whatever windows follow it.
    """
    pred = np.empty(len(x))
    with torch_threads(threads), torch.no_grad():
        for start in range(0, len(x), PREDICT_CHUNK):
            chunk = x[start : start + PREDICT_CHUNK]
            pad = chunk.new_zeros((PREDICT_CHUNK - len(chunk), *chunk.shape[1:]))
            y = net(torch.cat([chunk, pad])[None])[0, : len(chunk)]
            pred[start : start + len(chunk)] = y.double().cpu().numpy()
    return pred
