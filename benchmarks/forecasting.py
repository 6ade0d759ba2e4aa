"""Recurrent forecaster speed: Kallos GRU vs Darts ``BlockRNNModel(model="GRU")``, batched vs one at a time.

Usage::

    python benchmarks/forecasting.py [--data-dir ../shared/data] [--hidden 128 --layers 2 --epochs 2]

(a) Training throughput (samples/second) of one Kallos GRU and one Darts BlockRNN GRU on the
    same real data: one coin's causal indicator features (``kallos.features``), the same
    ``lookback`` windows, the same standardisation (Kallos' training-only scaler) and the same
    scaled 7-day forward log-return labels, fed to Darts through a ``TorchTrainingDataset`` so
    both see identical samples (Darts additionally gets an all-zero past-target channel, which
    its API requires). Same hidden size, layers, batch size, epochs, Adam(lr), dropout 0, plain
    MSE (λ = 1). Both report the MSE on the same validation block (scaled units).
(b) Wall time of K models trained in one stack vs the same K models trained one at a time
    (:func:`kallos.forecast.batched.train_stack`, same epochs, no early stopping: same work).

Both parts run at two sizes — the given one (``--hidden``/``--layers``; ``--batched-hidden``
for (b)) and a small one (``--small-hidden``, 1 layer) — because the ratios depend on size:
small models are bound by per-op overhead (which stacking amortises), large ones by matmul
FLOPs (which no CPU implementation avoids).

Both libraries run with the same torch intra-op thread count (``--threads``, default 2).
Darts is a benchmark-only extra: ``pip install "u8darts[torch]==0.41.0"``.
Speed is measured here, never in tests.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from kallos.forecast.batched import train_stack
from kallos.forecast.recurrent import TrainingData

from kallos.config import RecurrentConfig, StudyConfig
from kallos.data import Store, build_panel, ingest_data_dir
from kallos.features import compute_indicators
from kallos.forecast import CoinHistory, ExpandingWalkForward, RecurrentForecaster


def _darts():
    try:
        from darts.models import BlockRNNModel
        from darts.utils.data.torch_datasets.training_dataset import TorchTrainingDataset
    except ImportError:
        sys.exit(
            'darts is not installed: pip install "u8darts[torch]==0.41.0" "torch==2.13.0" '
            "(the [bench] extra) to run this benchmark"
        )
    return BlockRNNModel, TorchTrainingDataset


def load_histories(data_dir: str, n_coins: int) -> tuple[list[CoinHistory], StudyConfig]:
    """The ``n_coins`` coins with the longest price history, as causal feature histories."""
    cfg = StudyConfig()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'k.db'}")
        ingest_data_dir(store, data_dir)
        panel = build_panel(store.read_market_data(), store.read_coins(), cfg.quality)
    counts = panel.close.notna().sum().sort_values(ascending=False, kind="stable")
    out = []
    for coin in counts.index[:n_coins]:
        bars = panel.bars(coin)
        out.append(
            CoinHistory(coin, panel.close[coin].loc[bars.index], compute_indicators(bars, coin_id=coin))
        )
    return out, cfg


def kallos_run(
    data: list[TrainingData], model: RecurrentForecaster, threads: int
) -> tuple[float, list[float]]:
    """Seconds to train ``data`` as one stack, and each model's final validation MSE."""
    t0 = time.perf_counter()
    trained = train_stack(data, model, threads)
    seconds = time.perf_counter() - t0
    net = model.new_net(data[0].x_train.shape[-1], n_models=len(data)).load_models([s for s, _ in trained])
    with torch.no_grad():
        mses = [
            float(
                (
                    (net(d.x_val[None], {k: v[i : i + 1] for k, v in net.params.items()})[0] - d.y_val) ** 2
                ).mean()
            )
            for i, d in enumerate(data)
        ]
    return seconds, mses


def darts_run(d: TrainingData, cfg: RecurrentConfig, epochs: int) -> tuple[float, float]:
    """Seconds to train a Darts BlockRNN GRU on exactly ``d``'s windows, and its validation MSE."""
    block_rnn, base = _darts()

    class Windows(base):
        def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
            super().__init__()
            self.x, self.y = x.numpy(), y.numpy()
            self.zero = np.zeros((x.shape[1], 1), dtype=np.float32)

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, i: int):
            return self.zero, self.x[i], None, None, None, None, self.y[i : i + 1, None]

    model = block_rnn(
        input_chunk_length=cfg.lookback,
        output_chunk_length=1,
        model="GRU",
        hidden_dim=cfg.hidden_size,
        n_rnn_layers=cfg.num_layers,
        hidden_fc_sizes=[],
        dropout=0.0,
        batch_size=cfg.batch_size,
        n_epochs=epochs,
        optimizer_kwargs={"lr": cfg.learning_rate},
        random_state=0,
        pl_trainer_kwargs={
            "accelerator": "cpu",
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "logger": False,
            "enable_checkpointing": False,
        },
    )
    train, val = Windows(d.x_train, d.y_train), Windows(d.x_val, d.y_val)
    t0 = time.perf_counter()
    model.fit_from_dataset(train, val, dataloader_kwargs={"num_workers": 0})
    seconds = time.perf_counter() - t0
    module = model.model.eval()
    with torch.no_grad():
        zero = torch.zeros((len(d.x_val), d.x_val.shape[1], 1))
        pred = module._produce_train_output((zero, d.x_val, None, None, None)).reshape(-1)
    return seconds, float(((pred - d.y_val) ** 2).mean())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=os.environ.get("KALLOS_DATA_DIR", "../shared/data"))
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--lookback", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--models", type=int, default=20, help="K for part (b)")
    parser.add_argument(
        "--batched-hidden", type=int, default=32, help="hidden size for (b) at --layers layers"
    )
    parser.add_argument(
        "--small-hidden", type=int, default=32, help="hidden size of the small 1-layer size in (a) and (b)"
    )
    parser.add_argument("--cutoff", default="2023-12-31")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    _darts()  # fail fast with a clear message
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    histories, study = load_histories(args.data_dir, args.models)
    fold = ExpandingWalkForward(study.forecast.train_start, study.forecast.horizon, 91).fold(
        pd.Timestamp(args.cutoff)
    )
    cfg = RecurrentConfig(
        hidden_size=args.hidden,
        num_layers=args.layers,
        dropout=0.0,
        lookback=args.lookback,
        direction_weight=1.0,
        batch_size=args.batch_size,
        max_epochs=args.epochs,
        patience=args.epochs + 1,
    )

    def prepared(c: RecurrentConfig) -> tuple[RecurrentForecaster, list[TrainingData]]:
        models = [
            RecurrentForecaster(c, cell="gru", horizon=study.forecast.horizon, seed=i)
            for i in range(len(histories))
        ]
        return models[0], [
            m.prepare(h.upto(fold.cutoff), fold) for m, h in zip(models, histories, strict=True)
        ]

    _, data = prepared(cfg)
    # train_stack defaults to one thread (machine-independent results); here both libraries
    # get --threads, so the comparison is like for like.
    torch.set_num_threads(args.threads)
    d0 = data[0]
    n_feat = d0.x_train.shape[-1]
    print(
        f"data: {histories[0].coin_id}, fold cutoff {fold.cutoff.date()}, {len(d0.x_train)} training windows "
        f"x {cfg.lookback} days x {n_feat} features, {len(d0.x_val)} validation windows"
    )
    print(
        f"model: GRU hidden {cfg.hidden_size}, layers {cfg.num_layers}, batch {cfg.batch_size}, "
        f"epochs {args.epochs}, Adam lr {cfg.learning_rate}, dropout 0, MSE; "
        f"torch threads {args.threads} for both"
    )

    sizes = [(cfg.hidden_size, cfg.num_layers), (args.small_hidden, 1)]
    for hidden, layers in sizes:
        cfg_a = cfg.model_copy(update={"hidden_size": hidden, "num_layers": layers})
        template_a = RecurrentForecaster(cfg_a, cell="gru", horizon=study.forecast.horizon, seed=0)
        print(f"\n(a) one model, GRU hidden {hidden}, layers {layers}: training throughput, validation MSE")
        k_sec, (k_mse,) = kallos_run([d0], template_a, args.threads)
        d_sec, d_mse = darts_run(d0, cfg_a, args.epochs)
        work = len(d0.x_train) * args.epochs
        print(f"{'':24s}{'seconds':>10s}{'samples/s':>12s}{'val MSE':>10s}")
        print(f"{'kallos GRU':24s}{k_sec:10.2f}{work / k_sec:12.0f}{k_mse:10.4f}")
        print(f"{'darts BlockRNN GRU':24s}{d_sec:10.2f}{work / d_sec:12.0f}{d_mse:10.4f}")
        print(
            f"throughput ratio kallos/darts: {d_sec / k_sec:.2f}x (target >= 3x); "
            f"val MSE kallos {'<=' if k_mse <= d_mse else '>'} darts"
        )

    for hidden, layers in [(args.batched_hidden or cfg.hidden_size, cfg.num_layers), (args.small_hidden, 1)]:
        cfg_b = cfg.model_copy(update={"hidden_size": hidden, "num_layers": layers})
        template_b, data_b = prepared(cfg_b)
        print(
            f"\n(b) K = {len(data_b)} models (one per coin, same fold), GRU hidden {hidden}, "
            f"layers {layers}: one stack vs one at a time (both {args.threads} thread(s))"
        )
        stack_sec, _ = kallos_run(data_b, template_b, args.threads)
        t0 = time.perf_counter()
        for d in data_b:
            train_stack([d], template_b, args.threads)
        loop_sec = time.perf_counter() - t0
        samples = sum(len(d.x_train) for d in data_b) * args.epochs
        print(f"{'':24s}{'seconds':>10s}{'samples/s':>12s}")
        print(f"{'one at a time':24s}{loop_sec:10.2f}{samples / loop_sec:12.0f}")
        print(f"{'one stack (batched)':24s}{stack_sec:10.2f}{samples / stack_sec:12.0f}")
        print(f"speed-up: {loop_sec / stack_sec:.2f}x (target >= 10x)")


if __name__ == "__main__":
    main()
