"""Transformer plug-in: a causal encoder over the lookback window (Vaswani et al. 2017).

Registered as ``transformer``; settings ``forecast.models.transformer`` are
:class:`TransformerSettings`. Defaults: ``d_model = 64``, 4 heads, 2 layers, feed-forward
width 128, dropout 0.1 — about 70k parameters, the same order as the 2×128 GRU's 150k.

Each of the ``K`` stacked networks:

* a linear input projection of the ``F`` features to ``d_model``, plus the fixed sinusoidal
  positional encoding PE(t, 2i) = sin(t / 10000^(2i/d)), PE(t, 2i+1) = cos(·);
* ``num_layers`` pre-norm encoder layers, each ``x + Dropout(MHA(LN(x)))`` with a causal mask
  (day t attends to days ≤ t) then ``x + Dropout(W₂ ReLU(W₁ LN(x)))`` — the arithmetic of
  ``nn.TransformerEncoderLayer(norm_first=True, activation="relu")`` (checked against it in
  the tests, dropout off);
* a final LayerNorm, the last day's vector (it has seen the whole window) → dropout → linear head.

Initialisation follows PyTorch's modules: Xavier-uniform for the fused query/key/value
projection with zero bias and a zero output-projection bias (``nn.MultiheadAttention``),
U(±1/√fan_in) for the other linear layers (``nn.Linear``), LayerNorm weights 1 and biases 0.
Parameters are stacked along a leading model axis and evaluated with batched matmuls, so the
trainer (:mod:`kallos.forecast.training`) trains K of them as one computation. Attention uses
``torch.nn.functional.scaled_dot_product_attention``; dropout masks come from each model's
own generator (attention weights themselves are not dropped).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from kallos.forecast.neural import NetworkSettings, neural_builder
from kallos.forecast.spec import ForecasterSpec
from kallos.forecast.training import ParamInit, StackedModule, dropout_mask, uniform_init

__all__ = ["SPECS", "TransformerNet", "TransformerSettings", "positional_encoding", "transformer_space"]


def positional_encoding(length: int, d_model: int) -> torch.Tensor:
    """Sinusoidal positional encoding ``(length, d_model)`` (Vaswani et al. 2017, section 3.5)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(length, d_model)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : d_model // 2]
    return pe


def _xavier(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    fan_out, fan_in = shape
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return (torch.rand(shape, generator=gen) * 2 - 1) * bound


def _const(value: float):
    return lambda shape, gen: torch.full(shape, value)


class TransformerNet(StackedModule):
    """A stack of ``K`` causal Transformer encoders (see the module docstring).

    Input ``(K, batch, lookback, n_features)``; output ``(K, batch)``.
    """

    def __init__(
        self,
        n_features: int,
        d_model: int,
        n_heads: int,
        num_layers: int,
        dim_feedforward: int,
        dropout: float,
        generators: Sequence[torch.Generator] = (),
        n_models: int | None = None,
    ) -> None:
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not a multiple of n_heads={n_heads}")
        self.d_model, self.n_heads, self.num_layers, self.dropout = d_model, n_heads, num_layers, dropout
        d, ff = d_model, dim_feedforward
        lin_d, lin_f, lin_ff = (
            uniform_init(1 / math.sqrt(d)),
            uniform_init(1 / math.sqrt(n_features)),
            uniform_init(1 / math.sqrt(ff)),
        )
        shapes = [ParamInit("in_weight", (d, n_features), lin_f), ParamInit("in_bias", (d,), lin_f)]
        for i in range(num_layers):
            shapes += [
                ParamInit(f"layer{i}_ln1_weight", (d,), _const(1.0)),
                ParamInit(f"layer{i}_ln1_bias", (d,), _const(0.0)),
                ParamInit(f"layer{i}_qkv_weight", (3 * d, d), _xavier),
                ParamInit(f"layer{i}_qkv_bias", (3 * d,), _const(0.0)),
                ParamInit(f"layer{i}_out_weight", (d, d), lin_d),
                ParamInit(f"layer{i}_out_bias", (d,), _const(0.0)),
                ParamInit(f"layer{i}_ln2_weight", (d,), _const(1.0)),
                ParamInit(f"layer{i}_ln2_bias", (d,), _const(0.0)),
                ParamInit(f"layer{i}_ff1_weight", (ff, d), lin_d),
                ParamInit(f"layer{i}_ff1_bias", (ff,), lin_d),
                ParamInit(f"layer{i}_ff2_weight", (d, ff), lin_ff),
                ParamInit(f"layer{i}_ff2_bias", (d,), lin_ff),
            ]
        shapes += [
            ParamInit("final_ln_weight", (d,), _const(1.0)),
            ParamInit("final_ln_bias", (d,), _const(0.0)),
            ParamInit("head_weight", (d,), lin_d),
            ParamInit("head_bias", (), lin_d),
        ]
        super().__init__(shapes, generators, n_models)

    @staticmethod
    def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Per-model ``x Wᵀ + b`` for ``x`` ``(K, B, L, in)``, ``weight`` ``(K, out, in)``."""
        k, b, length, _ = x.shape
        y = torch.baddbmm(bias.unsqueeze(1), x.reshape(k, b * length, -1), weight.transpose(1, 2))
        return y.reshape(k, b, length, -1)

    @staticmethod
    def _norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:]) * weight[:, None, None, :] + bias[:, None, None, :]

    def forward(
        self,
        x: torch.Tensor,
        params: dict[str, torch.Tensor] | None = None,
        generators: Sequence[torch.Generator] | None = None,
    ) -> torch.Tensor:
        """Forecasts ``(K, batch)`` of inputs ``(K, batch, lookback, n_features)`` (see
        :class:`~kallos.forecast.training.StackedNetwork`)."""
        p = dict(self.params) if params is None else params
        k, batch, length, _ = x.shape
        d, heads = self.d_model, self.n_heads
        drop = generators is not None and self.dropout > 0

        def dropped(t: torch.Tensor) -> torch.Tensor:
            return t * dropout_mask(tuple(t.shape[1:]), self.dropout, generators, x.device) if drop else t

        h = self._linear(x, p["in_weight"], p["in_bias"]) + positional_encoding(length, d).to(x.device)
        for i in range(self.num_layers):
            a = self._norm(h, p[f"layer{i}_ln1_weight"], p[f"layer{i}_ln1_bias"])
            qkv = self._linear(a, p[f"layer{i}_qkv_weight"], p[f"layer{i}_qkv_bias"])
            q, kk, v = qkv.reshape(k * batch, length, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            att = F.scaled_dot_product_attention(q, kk, v, is_causal=True)  # (K·B, heads, L, d/heads)
            att = att.transpose(1, 2).reshape(k, batch, length, d)
            h = h + dropped(self._linear(att, p[f"layer{i}_out_weight"], p[f"layer{i}_out_bias"]))
            a = self._norm(h, p[f"layer{i}_ln2_weight"], p[f"layer{i}_ln2_bias"])
            ff = torch.relu(self._linear(a, p[f"layer{i}_ff1_weight"], p[f"layer{i}_ff1_bias"]))
            h = h + dropped(self._linear(ff, p[f"layer{i}_ff2_weight"], p[f"layer{i}_ff2_bias"]))
        last = self._norm(h[:, :, -1:], p["final_ln_weight"], p["final_ln_bias"])[:, :, 0]  # (K, B, D)
        return (dropped(last) * p["head_weight"].unsqueeze(1)).sum(-1) + p["head_bias"].unsqueeze(1)


class TransformerSettings(NetworkSettings):
    """``forecast.models.transformer``: the encoder's shape (defaults in the module docstring)."""

    d_model: int = Field(64, ge=4, description="width of every position's vector")
    n_heads: int = Field(4, ge=1, description="attention heads (must divide d_model)")
    num_layers: int = Field(2, ge=1, le=8)
    dim_feedforward: int = Field(128, ge=1, description="hidden width of each feed-forward block")
    dropout: float = Field(0.1, ge=0, lt=1)

    @model_validator(mode="after")
    def _heads_divide(self) -> TransformerSettings:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be a multiple of n_heads={self.n_heads}")
        return self

    def build_network(
        self, n_features: int, generators: Sequence[torch.Generator] = (), n_models: int = 1
    ) -> TransformerNet:
        return TransformerNet(
            n_features,
            self.d_model,
            self.n_heads,
            self.num_layers,
            self.dim_feedforward,
            self.dropout,
            generators,
            None if generators else n_models,
        )


def transformer_space(trial: Any) -> dict[str, Any]:
    """d_model in {32, 64, 128}; n_heads in {2, 4}; num_layers int [1, 3];
    dim_feedforward in {64, 128, 256}; dropout U[0, 0.5]."""
    return {
        "d_model": trial.suggest_categorical("d_model", [32, 64, 128]),
        "n_heads": trial.suggest_categorical("n_heads", [2, 4]),
        "num_layers": trial.suggest_int("num_layers", 1, 3),
        "dim_feedforward": trial.suggest_categorical("dim_feedforward", [64, 128, 256]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
    }


SPECS: tuple[ForecasterSpec, ...] = (
    ForecasterSpec(
        "transformer",
        TransformerSettings,
        neural_builder("transformer"),
        search_space=transformer_space,
        label="Transformer",
        colour="#5c80bc",
        description="Transformer: causal encoder over the lookback window, direction-aware loss",
    ),
)
