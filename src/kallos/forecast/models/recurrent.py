"""Recurrent network plug-in: GRU or LSTM cells, optional attention pooling (one plug-in, three names).

Registered as ``gru``, ``lstm`` and ``gru_attention`` (:data:`SPECS`); settings
``forecast.models.<name>`` are :class:`RecurrentSettings`. Defaults: 2 layers of 128 units,
dropout 0.2 between layers and before the head.

:class:`RecurrentNet` holds a *stack* of ``K`` independent networks (every parameter has a
leading model axis) and runs them with batched matmuls; the trainer
(:mod:`kallos.forecast.training`) treats it like any other stacked network. The cells follow
PyTorch's ``nn.GRU``/``nn.LSTM`` equations and initialisation (gate orders r,z,n and i,f,g,o;
weights U(−1/√H, 1/√H)); attention pooling is dot-product attention with one learned query
vector ``a`` (Luong et al. 2015, "dot" score): α = softmax_t(h_t · a), pooled = Σ_t α_t h_t.

Speed on the CPU: each layer's input projection is one GEMM over all time steps (only
``h W_hhᵀ`` stays in the time loop); autograd differentiates the time loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from kallos.forecast.neural import NetworkSettings, neural_builder
from kallos.forecast.spec import ForecasterSpec
from kallos.forecast.training import ParamInit, StackedModule, dropout_mask, uniform_init

__all__ = ["CELLS", "SPECS", "RecurrentNet", "RecurrentSettings", "recurrent_space"]


# --------------------------------------------------------------------------- cells
class Cell:
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
    """GRU hidden states ``(K, L, B, H)`` (arguments as :meth:`Cell.sequence`), without an
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

    Inputs and output as :meth:`Cell.sequence`. The forward keeps each step's gates (no
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


class _GRUCell(Cell):
    """r, z = σ(·); n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)); h' = n + z ⊙ (h − n)."""

    gates = 3

    def step(self, gi: torch.Tensor, gh: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        i_rz, i_n = gi.split([2 * state.shape[-1], state.shape[-1]], dim=-1)
        h_rz, h_n = gh.split([2 * state.shape[-1], state.shape[-1]], dim=-1)
        r, z = torch.sigmoid(i_rz + h_rz).chunk(2, dim=-1)
        n = torch.tanh(i_n + r * h_n)
        return torch.lerp(n, state, z)  # n + z ⊙ (h − n)

    def sequence(self, gi: torch.Tensor, w_hh_t: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        """As :meth:`Cell.sequence`, with the hand-written BPTT of :class:`_GRUSequence` when
        differentiating and the same arithmetic without saving gates otherwise."""
        if torch.is_grad_enabled() and any(t.requires_grad for t in (gi, w_hh_t, b_hh)):
            return _GRUSequence.apply(gi, w_hh_t, b_hh)
        return _gru_forward(gi, w_hh_t, b_hh)


class _LSTMCell(Cell):
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
CELLS: dict[str, Cell] = {"gru": _GRUCell(), "lstm": _LSTMCell()}


# --------------------------------------------------------------------------- network
class RecurrentNet(StackedModule):
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
        if cell not in CELLS:
            raise KeyError(f"unknown recurrent cell {cell!r}; choose from {sorted(CELLS)}")
        self.cell_name, self.cell, self.attention = cell, CELLS[cell], attention
        self.hidden_size, self.num_layers, self.dropout = hidden_size, num_layers, dropout
        super().__init__(self._shapes(n_features, CELLS[cell].gates), generators, n_models)

    def _shapes(self, n_features: int, gates: int) -> list[ParamInit]:
        """U(−1/√H, 1/√H) per parameter (PyTorch's RNN and, for fan-in H, Linear default)."""
        g, h = gates, self.hidden_size
        init = uniform_init(1.0 / math.sqrt(h))
        out = []
        for layer in range(self.num_layers):
            fin = n_features if layer == 0 else h
            out += [
                ParamInit(f"layer{layer}_w_ih", (g * h, fin), init),
                ParamInit(f"layer{layer}_w_hh", (g * h, h), init),
                ParamInit(f"layer{layer}_b_ih", (g * h,), init),
                ParamInit(f"layer{layer}_b_hh", (g * h,), init),
            ]
        if self.attention:
            out.append(ParamInit("attention", (h,), init))
        return [*out, ParamInit("head_weight", (h,), init), ParamInit("head_bias", (), init)]

    def forward(
        self,
        x: torch.Tensor,
        params: dict[str, torch.Tensor] | None = None,
        generators: Sequence[torch.Generator] | None = None,
    ) -> torch.Tensor:
        """Forecasts ``(K, batch)`` of inputs ``(K, batch, lookback, n_features)`` (see
        :class:`~kallos.forecast.training.StackedNetwork`)."""
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
                seq = seq * dropout_mask(tuple(seq.shape[1:]), self.dropout, generators, x.device)
        if self.attention:
            scores = torch.softmax((seq * p["attention"][:, None, None, :]).sum(-1), dim=1)  # (K, L, B)
            pooled = (scores.unsqueeze(-1) * seq).sum(1)
        else:
            pooled = seq[:, -1]
        if drop:
            pooled = pooled * dropout_mask(tuple(pooled.shape[1:]), self.dropout, generators, x.device)
        return (pooled * p["head_weight"].unsqueeze(1)).sum(-1) + p["head_bias"].unsqueeze(1)


# --------------------------------------------------------------------------- plug-in
class RecurrentSettings(NetworkSettings):
    """``forecast.models.<gru|lstm|gru_attention>``: the recurrent network's shape."""

    cell: Literal["gru", "lstm"] = Field("gru", description="recurrent cell")
    attention: bool = Field(False, description="attention pooling over time steps instead of the last step")
    hidden_size: int = Field(128, ge=1)
    num_layers: int = Field(2, ge=1, le=8)
    dropout: float = Field(0.2, ge=0, lt=1)

    def build_network(
        self, n_features: int, generators: Sequence[torch.Generator] = (), n_models: int = 1
    ) -> RecurrentNet:
        return RecurrentNet(
            n_features,
            self.hidden_size,
            self.num_layers,
            self.dropout,
            self.cell,
            self.attention,
            generators,
            None if generators else n_models,
        )


def recurrent_space(trial: Any) -> dict[str, Any]:
    """The study's space: hidden_size int [32, 256] (log scale); num_layers int [1, 4]; dropout U[0, 0.7]."""
    return {
        "hidden_size": trial.suggest_int("hidden_size", 32, 256, log=True),
        "num_layers": trial.suggest_int("num_layers", 1, 4),
        "dropout": trial.suggest_float("dropout", 0.0, 0.7),
    }


def _spec(name: str, label: str, colour: str, **defaults: Any) -> ForecasterSpec:
    return ForecasterSpec(
        name=name,
        settings=RecurrentSettings,
        build=neural_builder(name),
        defaults=defaults,
        search_space=recurrent_space,
        label=label,
        colour=colour,
        description=f"{label}: recurrent network over the lookback window, direction-aware loss",
    )


SPECS: tuple[ForecasterSpec, ...] = (
    _spec("gru", "GRU", "#e4572e", cell="gru"),
    _spec("lstm", "LSTM", "#f29e4c", cell="lstm"),
    _spec("gru_attention", "GRU + attention", "#c33c54", cell="gru", attention=True),
)
