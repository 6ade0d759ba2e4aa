"""The Transformer plug-in against PyTorch's own encoder, with the same weights.

``TransformerNet`` is written with stacked (K-axis) parameters so the trainer can fit K models as
one computation; its arithmetic must be exactly that of ``nn.TransformerEncoder`` built from
``nn.TransformerEncoderLayer(norm_first=True, activation="relu")`` under a causal mask, plus a
final LayerNorm. These tests copy one stacked model's weights into the reference and compare.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kallos.forecast.models.transformer import TransformerNet, TransformerSettings, positional_encoding

D, HEADS, LAYERS, FF, FEATURES, LOOKBACK = 16, 4, 2, 24, 5, 12


def reference_encoder(net: TransformerNet, k: int) -> nn.TransformerEncoder:
    """``nn.TransformerEncoder`` holding stacked model ``k``'s weights."""
    layer = nn.TransformerEncoderLayer(
        D, HEADS, FF, dropout=0.0, activation="relu", batch_first=True, norm_first=True
    )
    enc = nn.TransformerEncoder(layer, LAYERS, norm=nn.LayerNorm(D), enable_nested_tensor=False)
    p = net.model_state(k)
    with torch.no_grad():
        for i, lay in enumerate(enc.layers):
            lay.self_attn.in_proj_weight.copy_(p[f"layer{i}_qkv_weight"])
            lay.self_attn.in_proj_bias.copy_(p[f"layer{i}_qkv_bias"])
            lay.self_attn.out_proj.weight.copy_(p[f"layer{i}_out_weight"])
            lay.self_attn.out_proj.bias.copy_(p[f"layer{i}_out_bias"])
            for ours, theirs in (("ln1", lay.norm1), ("ln2", lay.norm2)):
                theirs.weight.copy_(p[f"layer{i}_{ours}_weight"])
                theirs.bias.copy_(p[f"layer{i}_{ours}_bias"])
            for ours, theirs in (("ff1", lay.linear1), ("ff2", lay.linear2)):
                theirs.weight.copy_(p[f"layer{i}_{ours}_weight"])
                theirs.bias.copy_(p[f"layer{i}_{ours}_bias"])
        enc.norm.weight.copy_(p["final_ln_weight"])
        enc.norm.bias.copy_(p["final_ln_bias"])
    return enc.eval()


def randomised(net: TransformerNet, seed: int) -> TransformerNet:
    """Perturb every parameter (LayerNorm weights 1 and biases 0 would hide a wiring mistake)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for v in net.params.values():
            v.add_(0.3 * torch.randn(v.shape, generator=g))
    return net


@pytest.mark.parametrize("k", [0, 2])
def test_matches_torch_transformer_encoder_with_causal_mask(k: int) -> None:
    gens = [torch.Generator().manual_seed(s) for s in range(3)]
    net = randomised(TransformerNet(FEATURES, D, HEADS, LAYERS, FF, 0.0, gens), seed=7)
    x = torch.randn(3, 9, LOOKBACK, FEATURES, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = net(x)[k]
        p = net.model_state(k)
        h = x[k] @ p["in_weight"].T + p["in_bias"] + positional_encoding(LOOKBACK, D)
        mask = nn.Transformer.generate_square_subsequent_mask(LOOKBACK)
        encoded = reference_encoder(net, k)(h, mask=mask, is_causal=True)  # (B, L, D)
        theirs = encoded[:, -1] @ p["head_weight"] + p["head_bias"]
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_causal_the_last_forecast_ignores_nothing_and_earlier_days_ignore_later_ones() -> None:
    """Changing the last day moves the forecast; the encoder's day-t vector never sees day t+1."""
    net = randomised(
        TransformerNet(FEATURES, D, HEADS, 1, FF, 0.0, [torch.Generator().manual_seed(0)]), seed=3
    )
    x = torch.randn(1, 4, LOOKBACK, FEATURES, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        base = net(x)
        # A forecast over the first L-1 days equals one whose last day is then changed, truncated:
        shorter = net(x[:, :, :-1])
        changed_last = x.clone()
        changed_last[:, :, -1] += 5.0
        moved = net(changed_last)
        again_shorter = net(changed_last[:, :, :-1])
    assert not torch.allclose(base, moved)
    torch.testing.assert_close(shorter, again_shorter, rtol=0, atol=0)


def test_default_sizes_are_the_documented_ones() -> None:
    s = TransformerSettings()
    assert (s.d_model, s.n_heads, s.num_layers, s.dim_feedforward, s.dropout) == (64, 4, 2, 128, 0.1)
    n_params = sum(v[0].numel() for v in s.build_network(45, n_models=1).params.values())
    assert 60_000 < n_params < 80_000  # "about 70k parameters" in the module docstring


def test_positional_encoding_known_values() -> None:
    pe = positional_encoding(3, 4)
    torch.testing.assert_close(pe[0], torch.tensor([0.0, 1.0, 0.0, 1.0]))
    # PE(1, 2i) = sin(1 / 10000^(2i/4)), PE(1, 2i+1) = cos(·): frequencies 1 and 0.01.
    expected = torch.tensor([math.sin(1.0), math.cos(1.0), math.sin(0.01), math.cos(0.01)])
    torch.testing.assert_close(pe[1], expected, atol=1e-6, rtol=0)
