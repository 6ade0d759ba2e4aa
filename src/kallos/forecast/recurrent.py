"""Recurrent forecasters: one model family (GRU or LSTM cell, optional attention pooling).

The network reads the last ``lookback`` days of standardised features ending at the
decision date and outputs the ``horizon``-day forward log return. Training minimises

    L = mean_i( w_i · (ŷ_i − y_i)² ),   w_i = λ if ŷ_i · y_i < 0 else 1,

a squared error that costs λ times more when the predicted direction is wrong (a zero
prediction or target counts as agreeing). Early stopping watches the same loss on the
fold's validation block (the last 13 weeks of the training window, after a purge gap).

One code path for every variant and for any number of models: :class:`RecurrentNet` holds a
*stack* of ``K`` independent networks (every parameter has a leading model axis) and runs
them with batched matmuls. A single forecaster is the ``K = 1`` case, so the batched
trainer (:mod:`kallos.forecast.batched`) and a lone fit run the same arithmetic. The cells
follow PyTorch's ``nn.GRU``/``nn.LSTM`` equations and initialisation (gate orders r,z,n and
i,f,g,o; weights U(−1/√H, 1/√H)); attention pooling is dot-product attention with one learned
query vector ``a`` (Luong et al. 2015, "dot" score): α = softmax_t(h_t · a), pooled = Σ_t α_t h_t.

Speed on the CPU: each layer's input projection is one GEMM over all time steps (only
``h W_hhᵀ`` stays in the time loop), and the GRU layer has a hand-written backward through
time (:class:`_GRUSequence`: a few fused kernels per step instead of autograd's
per-step graph). The LSTM uses the generic autograd loop.

Reproducibility: every random draw (initial weights, shuffling, dropout masks) comes from a
per-model ``torch.Generator`` seeded with the model's seed, training runs single-threaded,
so a model's result does not depend on the machine's core count or on the other models in
its stack (up to float rounding of the stacked matmuls, see :mod:`kallos.forecast.batched`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from kallos.config import RecurrentConfig
from kallos.exceptions import InsufficientDataError
from kallos.features.labels import forward_log_return
from kallos.forecast.base import BaseForecaster, CoinHistory, check_cutoff
from kallos.forecast.walk_forward import Fold

__all__ = [
    "CELLS",
    "RecurrentForecaster",
    "RecurrentNet",
    "TrainingData",
    "direction_aware_loss",
    "masked_direction_aware_loss",
]

STATE_FORMAT = "kallos.recurrent/2"
#: Rows per inference pass. Forecasts run in fixed-shape chunks counted from the first
#: requested date, so a forecast at t never depends on how many dates follow it.
PREDICT_CHUNK = 64


# --------------------------------------------------------------------------- cells
class _Cell:
    """One recurrent cell: how many gate blocks it has and one time step."""

    gates: ClassVar[int]

    def init_state(self, h0: torch.Tensor) -> Any:
        return h0

    def output(self, state: Any) -> torch.Tensor:
        return state

    def step(self, gi: torch.Tensor, gh: torch.Tensor, state: Any) -> Any:
        raise NotImplementedError

    def sequence(self, gi: torch.Tensor, w_hh_t: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(K, L, B, H)`` of a layer from zero state.

        ``gi`` ``(K, L, B, G·H)``: every step's input projection ``x_t W_ihᵀ + b_ih``;
        ``w_hh_t`` ``(K, H, G·H)`` = ``W_hhᵀ`` (contiguous); ``b_hh`` ``(K, 1, G·H)``.
        This generic loop differentiates through autograd, step by step.
        """
        k, _, batch, width = gi.shape
        state, outs = self.init_state(gi.new_zeros((k, batch, width // self.gates))), []
        for gi_t in gi.unbind(1):  # unbind, not gi[:, t]: one backward copy instead of L
            state = self.step(gi_t, torch.baddbmm(b_hh, self.output(state), w_hh_t), state)
            outs.append(self.output(state))
        return torch.stack(outs, dim=1)


_tanh_backward = torch.ops.aten.tanh_backward  # grad ⊙ (1 − y²) in one kernel (autograd's own)
_sigmoid_backward = torch.ops.aten.sigmoid_backward  # grad ⊙ y ⊙ (1 − y)


def _gru_forward(
    gi: torch.Tensor, w_hh_t: torch.Tensor, b_hh: torch.Tensor, saved: list[torch.Tensor] | None = None
) -> torch.Tensor:
    """GRU hidden states ``(K, L, B, H)`` (arguments as :meth:`_Cell.sequence`), without an
    autograd graph. A ``saved`` list receives every step's ``[r, z]``, ``n`` and ``W_hn h + b_hn``
    (references, no copies) for :class:`_GRUSequence`'s backward."""
    k, _, batch, width = gi.shape
    hsz = width // 3
    h, hs = gi.new_zeros((k, batch, hsz)), []
    for gi_t in gi.unbind(1):
        gh = torch.baddbmm(b_hh, h, w_hh_t)
        rz = torch.sigmoid(gi_t[..., : 2 * hsz] + gh[..., : 2 * hsz])
        gh_n = gh[..., 2 * hsz :]
        n = torch.tanh(torch.addcmul(gi_t[..., 2 * hsz :], rz[..., :hsz], gh_n))
        h = torch.lerp(n, h, rz[..., hsz:])  # n + z ⊙ (h − n)
        hs.append(h)
        if saved is not None:
            saved += [rz, n, gh_n]
    return torch.stack(hs, dim=1)


class _GRUSequence(torch.autograd.Function):
    """A whole GRU layer over the sequence with a hand-written backward through time.

    Inputs and output as :meth:`_Cell.sequence`. The forward keeps each step's gates (no
    copies); the backward runs the reverse time loop with fused element-wise kernels
    (``aten.tanh_backward``/``sigmoid_backward``) and one ``baddbmm`` for the carried gradient
    (``dh_{t-1} = z ⊙ dh_t + dgh_t W_hh``), and accumulates ``dW_hhᵀ += h_{t-1}ᵀ dgh_t`` and
    ``db_hh += 1ᵀ dgh_t`` in place — instead of autograd's per-step graph of ~15 nodes. (One
    ``(K, H, L·B) @ (K, L·B, 3H)`` matmul after the loop gives the same sums, but needs ``dgh``
    of every step materialised; on the 2-core benchmark machine that copy cost more than it
    saved.) ``dgi`` flows back into the one input-projection GEMM, so ``dW_ih`` is one matmul.
    Checked with ``torch.autograd.gradcheck`` (float64) and against ``nn.GRU`` in the tests.
    """

    @staticmethod
    def forward(ctx: Any, gi: torch.Tensor, w_hh_t: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        saved: list[torch.Tensor] = []
        out = _gru_forward(gi, w_hh_t, b_hh, saved)
        ctx.save_for_backward(out, w_hh_t, *saved)
        return out

    @staticmethod
    def backward(ctx: Any, d_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out, w_hh_t, *saved = ctx.saved_tensors
        k, length, batch, hsz = out.shape
        w_hh = w_hh_t.transpose(1, 2)
        hs, d_outs = out.unbind(1), d_out.unbind(1)
        zero = out.new_zeros((k, batch, hsz))
        d_w, d_b = torch.zeros_like(w_hh_t), torch.zeros((k, 1, 3 * hsz), dtype=out.dtype, device=out.device)
        ones = out.new_ones((k, 1, batch))  # db_hh += 1ᵀ dgh_t as one fused baddbmm
        carry, d_gis = zero, []  # carry: dL/dh_t through h_{t+1}
        for t in range(length - 1, -1, -1):
            rz, n, gh_n = saved[3 * t : 3 * t + 3]
            r, z = rz[..., :hsz], rz[..., hsz:]
            h_prev = hs[t - 1] if t else zero
            dh = carry + d_outs[t]
            dn_pre = _tanh_backward(torch.addcmul(dh, dh, z, value=-1), n)  # h = (1 − z) n + z h_prev
            d_r = _sigmoid_backward(dn_pre * gh_n, r)
            d_z = _sigmoid_backward(dh * (h_prev - n), z)
            d_gh_t = torch.cat([d_r, d_z, dn_pre * r], dim=-1)
            d_gis.append(torch.cat([d_r, d_z, dn_pre], dim=-1))
            # Weight gradients accumulated while d_gh_t is still in cache (same sums as one
            # (K, H, L·B) @ (K, L·B, 3H) matmul, without materialising d_gh for all steps).
            d_w.baddbmm_(h_prev.transpose(1, 2), d_gh_t)
            d_b.baddbmm_(ones, d_gh_t)
            carry = torch.baddbmm(dh * z, d_gh_t, w_hh)
        return torch.stack(d_gis[::-1], dim=1), d_w, d_b


class _GRUCell(_Cell):
    """r, z = σ(·); n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)); h' = n + z ⊙ (h − n)."""

    gates = 3

    def step(self, gi: torch.Tensor, gh: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        i_rz, i_n = gi.split([2 * state.shape[-1], state.shape[-1]], dim=-1)
        h_rz, h_n = gh.split([2 * state.shape[-1], state.shape[-1]], dim=-1)
        r, z = torch.sigmoid(i_rz + h_rz).chunk(2, dim=-1)
        n = torch.tanh(i_n + r * h_n)
        return torch.lerp(n, state, z)  # n + z ⊙ (h − n)

    def sequence(self, gi: torch.Tensor, w_hh_t: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        """As :meth:`_Cell.sequence`, with the hand-written BPTT of :class:`_GRUSequence` when
        differentiating and the same arithmetic without saving gates otherwise."""
        if torch.is_grad_enabled() and any(t.requires_grad for t in (gi, w_hh_t, b_hh)):
            return _GRUSequence.apply(gi, w_hh_t, b_hh)
        return _gru_forward(gi, w_hh_t, b_hh)


class _LSTMCell(_Cell):
    """i, f, o = σ(·), g = tanh(·); c' = f ⊙ c + i ⊙ g; h' = o ⊙ tanh(c')."""

    gates = 4

    def init_state(self, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return h0, h0

    def output(self, state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return state[0]

    def step(
        self, gi: torch.Tensor, gh: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        _, c = state
        gates = gi + gh
        hsz = c.shape[-1]
        ifo = torch.sigmoid(torch.cat([gates[..., : 2 * hsz], gates[..., 3 * hsz :]], dim=-1))
        i, f, o = ifo.chunk(3, dim=-1)
        g = torch.tanh(gates[..., 2 * hsz : 3 * hsz])
        c = f * c + i * g
        return o * torch.tanh(c), c


#: Cells by name: a registry, not an if/elif chain.
CELLS: dict[str, _Cell] = {"gru": _GRUCell(), "lstm": _LSTMCell()}


# --------------------------------------------------------------------------- network
def _dropout_mask(
    shape: tuple[int, ...], p: float, generators: Sequence[torch.Generator], device: torch.device
) -> torch.Tensor:
    """Inverted-dropout mask ``(K, *shape)``; model k's draws come from ``generators[k]`` only."""
    keep = torch.stack([torch.rand(shape, generator=g) >= p for g in generators])
    return (keep.to(torch.float32) / (1.0 - p)).to(device)


class RecurrentNet(nn.Module):
    """A stack of ``K`` independent recurrent networks evaluated together.

    Each network: ``num_layers`` GRU/LSTM layers, then the last hidden state (or, with
    ``attention``, the attention-pooled hidden states) → dropout → linear head.

    Input ``(K, batch, lookback, n_features)``; output ``(K, batch)``. Parameters are
    named ``layer{l}_{w_ih,w_hh,b_ih,b_hh}``, ``attention`` (``(K, H)``, only with
    attention), ``head_weight`` (``(K, H)``), ``head_bias`` (``(K,)``).
    """

    def __init__(
        self,
        n_features: int,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        cell: str,
        attention: bool = False,
        generators: Sequence[torch.Generator] = (),
        n_models: int | None = None,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise KeyError(f"unknown recurrent cell {cell!r}; choose from {sorted(CELLS)}")
        self.cell_name, self.cell, self.attention = cell, CELLS[cell], attention
        self.hidden_size, self.num_layers, self.dropout = hidden_size, num_layers, dropout
        self.n_models = len(generators) if n_models is None else n_models
        if self.n_models < 1:
            raise ValueError("RecurrentNet needs at least one model (generators or n_models)")
        self.params = nn.ParameterDict({k: nn.Parameter(v) for k, v in self._init(n_features, generators)})

    def _shapes(self, n_features: int) -> list[tuple[str, tuple[int, ...], float]]:
        g, h = self.cell.gates, self.hidden_size
        bound = 1.0 / math.sqrt(h)
        out = []
        for layer in range(self.num_layers):
            fin = n_features if layer == 0 else h
            out += [
                (f"layer{layer}_w_ih", (g * h, fin), bound),
                (f"layer{layer}_w_hh", (g * h, h), bound),
                (f"layer{layer}_b_ih", (g * h,), bound),
                (f"layer{layer}_b_hh", (g * h,), bound),
            ]
        if self.attention:
            out.append(("attention", (h,), bound))
        return [*out, ("head_weight", (h,), bound), ("head_bias", (), bound)]

    def _init(self, n_features: int, generators: Sequence[torch.Generator]):
        """U(−1/√H, 1/√H) per parameter (PyTorch's RNN and, for fan-in H, Linear default)."""
        for name, shape, bound in self._shapes(n_features):
            if generators:
                draws = [(torch.rand(shape, generator=gen) * 2 - 1) * bound for gen in generators]
                yield name, torch.stack(draws)
            else:
                yield name, torch.zeros((self.n_models, *shape))

    def forward(
        self,
        x: torch.Tensor,
        params: dict[str, torch.Tensor] | None = None,
        generators: Sequence[torch.Generator] | None = None,
    ) -> torch.Tensor:
        """Forecasts ``(K, batch)`` of inputs ``(K, batch, lookback, n_features)``.

        ``params`` replaces the module's parameters (the batched trainer passes a subset of
        models); ``generators`` (one per model) switch dropout on — without them the net runs
        in evaluation mode.
        """
        p = dict(self.params) if params is None else params
        k, batch, lookback, _ = x.shape
        drop = generators is not None and self.dropout > 0
        seq = x.transpose(1, 2).contiguous()  # time-major within each model: (K, L, B, F)
        for layer in range(self.num_layers):
            w_ih, w_hh = p[f"layer{layer}_w_ih"], p[f"layer{layer}_w_hh"]
            gi = torch.baddbmm(
                p[f"layer{layer}_b_ih"].unsqueeze(1),
                seq.reshape(k, lookback * batch, -1),
                w_ih.transpose(1, 2),
            ).reshape(k, lookback, batch, -1)
            # One contiguous copy of W_hhᵀ per pass instead of a transposed operand at every step.
            w_hh_t, b_hh = w_hh.transpose(1, 2).contiguous(), p[f"layer{layer}_b_hh"].unsqueeze(1)
            seq = self.cell.sequence(gi, w_hh_t, b_hh)  # (K, L, B, H)
            if drop and layer < self.num_layers - 1:
                seq = seq * _dropout_mask(tuple(seq.shape[1:]), self.dropout, generators, x.device)
        if self.attention:
            scores = torch.softmax((seq * p["attention"][:, None, None, :]).sum(-1), dim=1)  # (K, L, B)
            pooled = (scores.unsqueeze(-1) * seq).sum(1)
        else:
            pooled = seq[:, -1]
        if drop:
            pooled = pooled * _dropout_mask(tuple(pooled.shape[1:]), self.dropout, generators, x.device)
        return (pooled * p["head_weight"].unsqueeze(1)).sum(-1) + p["head_bias"].unsqueeze(1)

    def model_state(self, k: int) -> dict[str, torch.Tensor]:
        """Model ``k``'s parameters without the model axis (detached copies)."""
        return {name: v[k].detach().clone() for name, v in self.params.items()}

    def load_models(self, states: Sequence[dict[str, torch.Tensor]]) -> RecurrentNet:
        """Set the stack's parameters from one :meth:`model_state`-shaped dict per model."""
        if len(states) != self.n_models:
            raise ValueError(f"{len(states)} model states for a stack of {self.n_models}")
        with torch.no_grad():
            for name, v in self.params.items():
                v.copy_(
                    torch.stack([torch.as_tensor(s[name]).reshape(v.shape[1:]) for s in states]).to(v.device)
                )
        return self


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


@contextmanager
def _threads(n: int = 1):
    """Run the block with ``n`` torch intra-op threads, restoring the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
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


@dataclass(frozen=True)
class TrainingData:
    """One model's training problem: scaled windows ``(n, lookback, F)`` and scaled labels ``(n,)``.

    ``train_dates`` and ``validation_dates`` are the decision dates of the samples (the label of
    the sample dated ``d`` is the forward return from ``d`` to ``d + horizon``); empty when unknown.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    seed: int
    train_dates: pd.DatetimeIndex = field(default_factory=lambda: pd.DatetimeIndex([]))
    validation_dates: pd.DatetimeIndex = field(default_factory=lambda: pd.DatetimeIndex([]))


# --------------------------------------------------------------------------- forecaster
class RecurrentForecaster(BaseForecaster):
    """Recurrent forecaster of the forward log return (GRU or LSTM, optional attention).

    Parameters
    ----------
    config : network and training hyper-parameters (:class:`kallos.config.RecurrentConfig`).
    cell : ``"gru"`` or ``"lstm"``; ``None`` takes ``config.cell``.
    horizon : label horizon in days.
    seed : seed of this fit's private generator (weights, dropout, shuffling).
    device : torch device (``"cpu"`` default; ``"cuda"`` where available).
    min_train_samples : fewer training samples raise :class:`InsufficientDataError`.
    attention : attention pooling over time steps; ``None`` takes ``config.attention``.

    The forecaster's name is the cell, with ``_attention`` appended when pooling by attention.

    Attributes
    ----------
    net_ : the trained network (a one-model :class:`RecurrentNet`, best validation epoch).
    scaler_mean_, scaler_scale_ : per-feature standardisation fitted on training rows only.
    target_scale_ : root-mean-square of training labels; the net predicts ``y / target_scale_``.
    feature_names_ : feature columns, in order.
    training_ : dict with sample counts, best epoch and per-epoch losses.
    """

    parallel = True

    def __init__(
        self,
        config: RecurrentConfig | None = None,
        cell: str | None = None,
        horizon: int = 7,
        seed: int = 0,
        device: str = "cpu",
        min_train_samples: int = 60,
        attention: bool | None = None,
    ) -> None:
        self.config = config
        self.cell = cell
        self.horizon = horizon
        self.seed = seed
        self.device = device
        self.min_train_samples = min_train_samples
        self.attention = attention

    @property
    def _cfg(self) -> RecurrentConfig:
        cfg = self.config or RecurrentConfig()
        update = {k: v for k, v in (("cell", self.cell), ("attention", self.attention)) if v is not None}
        return cfg.model_copy(update=update) if update else cfg

    @property
    def name(self) -> str:  # type: ignore[override]
        cfg = self._cfg
        return f"{cfg.cell}_attention" if cfg.attention else cfg.cell

    @property
    def stack_key(self) -> tuple[Any, ...]:
        """Models with equal keys can be trained together in one :class:`RecurrentNet` stack."""
        return (type(self).__name__, self._cfg.model_dump_json(), self.horizon, self.device)

    def new_net(
        self, n_features: int, generators: Sequence[torch.Generator] = (), n_models: int = 1
    ) -> RecurrentNet:
        """A stack of this forecaster's architecture: one model per generator (initialised from it),
        or ``n_models`` zero-initialised models (to load weights into) when no generator is given."""
        cfg = self._cfg
        return RecurrentNet(
            n_features,
            cfg.hidden_size,
            cfg.num_layers,
            cfg.dropout,
            cfg.cell,
            cfg.attention,
            generators,
            None if generators else n_models,
        )

    # ----------------------------------------------------------------- data
    def _windows(self, scaled: np.ndarray, rows: np.ndarray) -> torch.Tensor:
        lookback = self._cfg.lookback
        view = np.lib.stride_tricks.sliding_window_view(scaled, lookback, axis=0)  # (T-L+1, F, L)
        x = view[rows - (lookback - 1)].transpose(0, 2, 1)
        return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32, device=self.device)

    def _scale(self, feats: np.ndarray) -> np.ndarray:
        scaled = (feats - self.scaler_mean_) / self.scaler_scale_
        return np.where(np.isfinite(scaled), scaled, 0.0)

    def prepare(self, history: CoinHistory, fold: Fold) -> TrainingData:
        """Fit the scalers on ``history`` (up to the cutoff) and build the training problem.

        Sets ``scaler_mean_``, ``scaler_scale_``, ``target_scale_``, ``feature_names_``.

        Raises
        ------
        DataValidationError
            If ``history`` holds any row after ``fold.cutoff`` (as :meth:`fit`; the stacked
            trainer calls this method directly).
        InsufficientDataError
            If fewer than ``min_train_samples`` training windows have a label.
        """
        check_cutoff(history, fold)
        cfg = self._cfg
        feats = history.features.to_numpy(dtype=np.float64)
        win_ok = _valid_windows(feats, cfg.lookback)
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

        def to_t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a / self.target_scale_, dtype=torch.float32, device=self.device)

        return TrainingData(
            self._windows(scaled, train_rows),
            to_t(y_train),
            self._windows(scaled, val_rows),
            to_t(labels[val_rows]),
            self.seed,
            train_dates=pd.DatetimeIndex(dates[train_rows]),
            validation_dates=pd.DatetimeIndex(dates[val_rows]),
        )

    def install(self, state: dict[str, torch.Tensor], training: dict[str, Any], data: TrainingData) -> None:
        """Adopt trained weights (one model's :meth:`RecurrentNet.model_state`) and the training log."""
        net = self.new_net(len(self.feature_names_)).load_models([state]).to(self.device)
        net.eval()
        self.net_ = net
        self.training_ = {**training, "n_train": len(data.x_train), "n_validation": len(data.x_val)}

    # ----------------------------------------------------------------- fit
    def _fit(self, history: CoinHistory, fold: Fold) -> None:
        from kallos.forecast.batched import train_stack  # the trainer imports this module

        data = self.prepare(history, fold)
        ((state, info),) = train_stack([data], self)
        self.install(state, info, data)

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
        x = self._windows(self._scale(feats), np.clip(pos, self._cfg.lookback - 1, None))
        # Fixed-shape passes of PREDICT_CHUNK rows counted from the first date (the last one
        # zero-padded): BLAS rounds differently for different batch shapes, so this makes
        # the forecast at t bit-identical whatever dates follow t.
        pred = np.empty(len(x))
        with _threads(1), torch.no_grad():
            for start in range(0, len(x), PREDICT_CHUNK):
                chunk = x[start : start + PREDICT_CHUNK]
                pad = chunk.new_zeros((PREDICT_CHUNK - len(chunk), *chunk.shape[1:]))
                y = self.net_(torch.cat([chunk, pad])[None])[0, : len(chunk)]
                pred[start : start + len(chunk)] = y.double().cpu().numpy()
        out[usable] = pred[usable] * self.target_scale_
        return out

    # ----------------------------------------------------------------- state (no pickle)
    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Tensors (one model's parameters) and JSON-able metadata of a fitted model."""
        tensors = {k: v.cpu().numpy() for k, v in self.net_.model_state(0).items()}
        meta = {
            "format": STATE_FORMAT,
            "params": {
                "config": self.config.model_dump(mode="json") if self.config else None,
                "cell": self.cell,
                "attention": self.attention,
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
        """Rebuild a fitted forecaster from :meth:`to_state` output.

        Raises
        ------
        ValueError
            If ``meta`` is not a state of this format.
        """
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"not a Kallos recurrent model state: format {meta.get('format')!r}")
        p = meta["params"]
        model = cls(
            config=RecurrentConfig(**p["config"]) if p["config"] is not None else None,
            cell=p["cell"],
            horizon=p["horizon"],
            seed=p["seed"],
            device=device,
            min_train_samples=p["min_train_samples"],
            attention=p["attention"],
        )
        names = meta["feature_names"]
        net = model.new_net(len(names)).load_models([{k: torch.as_tensor(v) for k, v in tensors.items()}])
        model.net_ = net.to(device).eval()
        model.feature_names_ = list(names)
        model.scaler_mean_ = np.asarray(meta["scaler"]["mean"], dtype=np.float64)
        model.scaler_scale_ = np.asarray(meta["scaler"]["scale"], dtype=np.float64)
        model.target_scale_ = float(meta["target_scale"])
        model.cutoff_ = pd.Timestamp(meta["cutoff"])
        model.training_ = meta["training"]
        return model
