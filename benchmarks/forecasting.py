"""Forecaster training speed against this machine's measured matrix-multiply limit.

On a CPU a 2×128 GRU batch is matrix-multiply bound, so the honest target is a fraction of the
machine's own GEMM throughput, not another library's time. One run prints, side by side:

1. **Roofline.** Single-thread float32 GEMM throughput (GFLOP/s, ``torch.mm``) at each model's
   own matrix shapes (the input projection over all time steps, the per-step recurrent product,
   the Transformer's projections); a model's roofline is the FLOP-weighted harmonic mean.
2. **Training FLOPs per sample** (forward matrix products ×3: the backward pass costs two
   products per forward one), counted from the default sizes.
3. **Achieved** GFLOP/s of :func:`kallos.forecast.training.train_stack` for the GRU, LSTM and
   Transformer at their default sizes (one thread, fixed epochs, no early stopping), as a
   fraction of the roofline, and Darts ``BlockRNNModel(model="GRU")`` on the same windows when
   Darts is installed (``pip install -e '.[bench]'``).
4. **The hand-written GRU backward** against autograd on the same layer: time ratio and the
   largest gradient difference (it is kept only while ≥ 1.3× faster with equal gradients).
5. **K stacked models against one at a time** (the walk-forward trains K = coins per fold).

Run: ``python benchmarks/forecasting.py [--samples 1024 --epochs 3 --stack 8]``. Figures are
timings of this machine; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np
import torch

from kallos.config import TrainingConfig
from kallos.forecast.models.recurrent import CELLS, RecurrentSettings
from kallos.forecast.models.transformer import TransformerSettings
from kallos.forecast.training import TrainingData, torch_threads, train_stack

FEATURES, LOOKBACK, BATCH = 45, 30, 64


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def gemm_gflops(m: int, k: int, n: int) -> float:
    """Single-thread float32 ``(m, k) @ (k, n)`` throughput in GFLOP/s."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    reps = max(1, int(2e8 / (2 * m * k * n)))

    def run() -> None:
        for _ in range(reps):
            torch.mm(a, b)

    return 2 * m * k * n * reps / best_of(run) / 1e9


def recurrent_shapes(gates: int, hidden: int, layers: int) -> list[tuple[int, int, int, int]]:
    """(m, k, n, count per forward of one batch) of a recurrent stack's matrix products."""
    shapes = []
    for layer in range(layers):
        width = FEATURES if layer == 0 else hidden
        shapes.append((BATCH * LOOKBACK, width, gates * hidden, 1))  # input projection, all steps
        shapes.append((BATCH, hidden, gates * hidden, LOOKBACK))  # recurrent product per step
    return shapes


def transformer_shapes(s: TransformerSettings) -> list[tuple[int, int, int, int]]:
    rows, d, head = BATCH * LOOKBACK, s.d_model, s.d_model // s.n_heads
    shapes = [(rows, FEATURES, d, 1)]
    for _ in range(s.num_layers):
        ff = s.dim_feedforward
        shapes += [(rows, d, 3 * d, 1), (rows, d, d, 1), (rows, d, ff, 1), (rows, ff, d, 1)]
        shapes += [(LOOKBACK, head, LOOKBACK, 2 * BATCH * s.n_heads)]  # QKᵀ and (weights)V per head
    return shapes


def roofline(shapes: list[tuple[int, int, int, int]]) -> tuple[float, float]:
    """(training FLOPs per sample, FLOP-weighted GEMM GFLOP/s at these shapes)."""
    flops = [2 * m * k * n * c for m, k, n, c in shapes]
    seconds = sum(f / (gemm_gflops(m, k, n) * 1e9) for f, (m, k, n, _) in zip(flops, shapes, strict=True))
    return 3 * sum(flops) / BATCH, sum(flops) / seconds / 1e9


def problems(n: int, k: int) -> list[TrainingData]:
    rng = np.random.default_rng(0)
    out = []
    for seed in range(k):
        x = torch.from_numpy(rng.standard_normal((n, LOOKBACK, FEATURES)).astype(np.float32))
        y = torch.from_numpy((0.1 * x[:, -1, 0].numpy() + rng.normal(0, 1, n)).astype(np.float32))
        out.append(TrainingData(x, y, x[:0], y[:0], seed))
    return out


def train_seconds(settings, data: list[TrainingData], training: TrainingConfig) -> float:
    def build(n_features, generators, n_models):
        return settings.build_network(n_features, generators, n_models)

    t0 = time.perf_counter()
    train_stack(data, build, training, threads=1)
    return time.perf_counter() - t0


def darts_gflops(data: TrainingData, hidden: int, layers: int, epochs: int, flops_per_sample: float) -> str:
    try:
        from darts import TimeSeries
        from darts.models import BlockRNNModel
    except ImportError:
        return "not installed (pip install -e '.[bench]')"
    y = data.y_train.numpy().astype(np.float64)
    x = data.x_train[:, -1].numpy().astype(np.float64)
    target, covariates = TimeSeries.from_values(y), TimeSeries.from_values(x)
    quiet = {
        "accelerator": "cpu",
        "enable_progress_bar": False,
        "logger": False,
        "enable_model_summary": False,
    }
    model = BlockRNNModel(
        input_chunk_length=LOOKBACK,
        output_chunk_length=1,
        model="GRU",
        hidden_dim=hidden,
        n_rnn_layers=layers,
        dropout=0.0,
        batch_size=BATCH,
        n_epochs=epochs,
        random_state=0,
        pl_trainer_kwargs=quiet,
    )
    with torch_threads(1):
        t0 = time.perf_counter()
        model.fit(target, past_covariates=covariates, verbose=False)
        seconds = time.perf_counter() - t0
    n = len(y) - LOOKBACK
    return f"{flops_per_sample * n * epochs / seconds / 1e9:6.1f} GFLOP/s"


def hand_vs_autograd(hidden: int, length: int = LOOKBACK) -> tuple[float, float]:
    """(autograd time / hand time, max |gradient difference|) of one GRU layer's forward+backward."""
    gen = torch.Generator().manual_seed(0)
    gi = torch.randn(1, length, BATCH, 3 * hidden, generator=gen)
    w = (0.1 * torch.randn(1, hidden, 3 * hidden, generator=gen)).contiguous()
    b = 0.1 * torch.randn(1, 1, 3 * hidden, generator=gen)
    cell = CELLS["gru"]
    generic = type(cell).__mro__[1].sequence  # Cell.sequence: the autograd time loop

    def grads(seq) -> list[torch.Tensor]:
        leaves = [t.clone().requires_grad_(True) for t in (gi, w, b)]
        seq(*leaves).square().sum().backward()
        return [t.grad for t in leaves]

    def autograd(*a: torch.Tensor) -> torch.Tensor:
        return generic(cell, *a)

    with torch_threads(1):
        hand = best_of(lambda: grads(cell.sequence))
        auto = best_of(lambda: grads(autograd))
        pairs = zip(grads(cell.sequence), grads(autograd), strict=True)
        diff = max(float((p - q).abs().max() / q.abs().max()) for p, q in pairs)
    return auto / hand, diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=1024, help="training windows per model")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--stack", type=int, default=8, help="K for stacked against one at a time")
    args = parser.parse_args()
    epochs = args.epochs
    training = TrainingConfig(max_epochs=epochs, patience=epochs, batch_size=BATCH, lookback=LOOKBACK)
    one = problems(args.samples, 1)
    gru, lstm = RecurrentSettings(dropout=0.0), RecurrentSettings(cell="lstm", dropout=0.0)
    tf = TransformerSettings(dropout=0.0)
    h, layers = gru.hidden_size, gru.num_layers
    models = {
        f"GRU {layers}×{h}": (gru, recurrent_shapes(3, h, layers)),
        f"LSTM {layers}×{h}": (lstm, recurrent_shapes(4, h, layers)),
        f"Transformer d={tf.d_model} {tf.num_layers} layers": (tf, transformer_shapes(tf)),
    }
    print(f"torch {torch.__version__}, 1 thread, batch {BATCH}, lookback {LOOKBACK}, {FEATURES} features, "
          f"{args.samples} samples × {args.epochs} epochs")  # fmt: skip
    print(f"{'model':<28}{'MFLOP/sample':>13}{'roofline':>12}{'achieved':>12}{'fraction':>10}")
    gru_flops = 0.0
    for name, (settings, shapes) in models.items():
        flops, limit = roofline(shapes)
        seconds = train_seconds(settings, one, training)
        achieved = flops * args.samples * epochs / seconds / 1e9
        gru_flops = gru_flops or flops
        print(f"{name:<28}{flops / 1e6:>13.2f}{limit:>9.1f} GF{achieved:>9.1f} GF{achieved / limit:>9.0%}")
    darts = darts_gflops(one[0], h, layers, epochs, gru_flops)
    print(f"{'Darts BlockRNNModel GRU':<28}{'':>13}{'':>12}  {darts}")
    ratio, diff = hand_vs_autograd(gru.hidden_size)
    print(
        f"\nhand-written GRU backward: {ratio:.2f}× faster than autograd "
        f"(max relative |Δgrad| {diff:.1e}); kept if ≥ 1.30×"
    )
    stacked = problems(args.samples, args.stack)
    small = RecurrentSettings(hidden_size=32, num_layers=1, dropout=0.0)
    for label, settings in (("GRU 2×128", gru), ("GRU 1×32", small)):
        together = train_seconds(settings, stacked, training)
        alone = sum(train_seconds(settings, [d], training) for d in stacked)
        print(f"K = {args.stack} {label}: stacked {together:6.1f} s, one at a time {alone:6.1f} s, "
              f"ratio {alone / together:4.2f}×")  # fmt: skip
    if torch.cuda.is_available():
        print("CUDA is available: rerun the stacked comparison with device='cuda'.")
    else:
        print("No GPU here: the K = 20 stacked-on-GPU target (≥ 10×) is not measured on this machine.")
    assert math.isfinite(ratio)


if __name__ == "__main__":
    main()
