"""Batched training: K recurrent models (coins, folds or trials) trained in one computation.

Every parameter of a :class:`~kallos.forecast.recurrent.RecurrentNet` has a leading model
axis, and the forward pass uses batched matmuls (``torch.baddbmm``), so one step trains K
models for roughly the Python/dispatch overhead of one. Per model:

* its own data: windows are padded to the longest model's count; each model shuffles its
  own rows with its own generator, so models with fewer samples run fewer mini-batches per
  epoch (a model without a batch at a step is left out of that step's forward pass and its
  optimiser state does not move);
* its own loss: the direction-aware loss over its own rows (the stacked objective is the
  *sum* of per-model losses, so each model's gradient is exactly its own);
* its own Adam state and step count (Adam is elementwise; :class:`StackedAdam` implements
  ``torch.optim.Adam``'s update with a per-model step mask);
* its own early stopping: a model whose validation loss has not improved for ``patience``
  epochs is removed from the stack (its best-epoch weights kept), and the others go on.

Equivalence: a model trained in a stack equals the same model trained alone (``K = 1``, the
path :meth:`RecurrentForecaster.fit` takes) up to float32 rounding of the stacked matmuls —
``tests/forecast/test_batched.py`` checks parameters and forecasts agree within 1e-5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from kallos.forecast.recurrent import (
    RecurrentForecaster,
    TrainingData,
    _rng_fork_args,
    _threads,
    masked_direction_aware_loss,
)

__all__ = ["StackedAdam", "train_stack"]


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
    data: Sequence[TrainingData], template: RecurrentForecaster, threads: int = 1
) -> list[tuple[dict[str, torch.Tensor], dict[str, Any]]]:
    """Train one model per item of ``data`` together, with ``template``'s architecture and settings.

    Parameters
    ----------
    data : one :class:`TrainingData` per model (scaled windows ``(n_k, lookback, F)``, scaled
        labels ``(n_k,)``, validation likewise, and the model's seed). Every item must have the
        same ``lookback`` and ``F`` and at least one training sample.
    template : a :class:`RecurrentForecaster` whose config (cell, attention, sizes, optimiser,
        epochs, patience, direction weight λ) and device every model shares.
    threads : torch intra-op threads while training (default 1: results independent of the
        machine; benchmarks raise it to compare with other libraries at equal thread counts).

    Returns
    -------
    Per model, in order: its best-validation-epoch parameters (a
    :meth:`RecurrentNet.model_state`-shaped dict) and its training log (``best_epoch``,
    ``epochs``, ``best_validation_loss``, per-epoch ``train_loss`` and ``validation_loss``).

    Raises
    ------
    ValueError
        If ``data`` is empty or a model has no training sample.
    """
    if not data:
        raise ValueError("train_stack needs at least one model")
    if any(len(d.x_train) == 0 for d in data):
        raise ValueError("every model needs at least one training sample")
    cfg, device = template._cfg, template.device
    with _threads(threads), torch.random.fork_rng(**_rng_fork_args(device)):
        return _Trainer(data, template, cfg, device).run()


class _Trainer:
    """The state of one stacked training run (models leave the stack as they stop)."""

    def __init__(self, data: Sequence[TrainingData], template: RecurrentForecaster, cfg, device: str) -> None:
        self.cfg, self.device = cfg, torch.device(device)
        self.gens = [torch.Generator().manual_seed(d.seed) for d in data]
        self.net = template.new_net(data[0].x_train.shape[-1], self.gens).to(self.device)
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

    # ------------------------------------------------------------------ helpers
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

    # ------------------------------------------------------------------ epochs
    def _epoch(self) -> torch.Tensor:
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
        cfg = self.cfg
        for epoch in range(1, cfg.max_epochs + 1):
            train = self._epoch()
            val = self._validate()
            keep = []
            for pos, m in enumerate(self.live):
                self.train_losses[m].append(train[pos])
                done = epoch == cfg.max_epochs
                if not bool(self.has_val[pos]):
                    self.best_state[m], self.best_epoch[m] = self._state(pos), epoch
                else:
                    self.val_losses[m].append(val[pos])
                    if val[pos] < self.best[m] - 1e-9:
                        self.best[m], self.best_epoch[m], self.stale[m] = val[pos], epoch, 0
                        self.best_state[m] = self._state(pos)
                    else:
                        self.stale[m] += 1
                        done = done or self.stale[m] >= cfg.patience
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
