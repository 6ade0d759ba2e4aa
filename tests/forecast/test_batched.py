"""Batched training: a stack of K models equals K separate fits; the stacked optimiser equals torch's Adam."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kallos.config import RecurrentConfig
from kallos.forecast import CoinHistory, RecurrentForecaster
from kallos.forecast.batched import StackedAdam, train_stack

TOL = 1e-5


@pytest.fixture(scope="module")
def histories(make_history):
    """Three coins listed on different days (features NaN before), so different training-sample counts."""
    out = []
    for late, seed, coin in [(0, 1, "aaa"), (70, 2, "bbb"), (150, 3, "ccc")]:
        h = make_history(n=470, seed=seed, coin=coin)
        features = h.features.copy()
        features.iloc[:late] = np.nan
        out.append(CoinHistory(coin, h.close, features))
    return out


def _models(cfg, cell="gru", attention=False, seeds=(11, 12, 13)):
    return [
        RecurrentForecaster(cfg, cell=cell, horizon=7, seed=s, min_train_samples=30, attention=attention)
        for s in seeds
    ]


@pytest.mark.parametrize(
    ("cell", "attention", "dropout"),
    [("gru", False, 0.0), ("lstm", False, 0.0), ("gru", True, 0.3)],
)
def test_stack_equals_separate_fits(histories, fold, tiny_config, cell, attention, dropout) -> None:
    cfg = tiny_config.model_copy(update={"dropout": dropout, "num_layers": 2, "max_epochs": 6, "patience": 2})
    alone = [
        m.fit(h.upto(fold.cutoff), fold)
        for m, h in zip(_models(cfg, cell, attention), histories, strict=True)
    ]
    stacked = _models(cfg, cell, attention)
    data = [m.prepare(h.upto(fold.cutoff), fold) for m, h in zip(stacked, histories, strict=True)]
    assert len({len(d.x_train) for d in data}) == 3  # masking of unequal sample counts is exercised
    trained = train_stack(data, stacked[0])
    dates = pd.date_range(fold.test_start, fold.test_end, freq="D")
    for m, d, (state, info), ref, h in zip(stacked, data, trained, alone, histories, strict=True):
        m.install(state, info, d)
        m.cutoff_ = fold.cutoff
        ref_state = ref.net_.model_state(0)
        for key, value in state.items():
            np.testing.assert_allclose(value.numpy(), ref_state[key].numpy(), atol=TOL, rtol=0, err_msg=key)
        assert (m.training_["epochs"], m.training_["best_epoch"]) == (
            ref.training_["epochs"],
            ref.training_["best_epoch"],
        )
        np.testing.assert_allclose(
            m.training_["validation_loss"], ref.training_["validation_loss"], rtol=1e-4
        )
        np.testing.assert_allclose(m.predict(h, dates), ref.predict(h, dates), atol=TOL, rtol=0)
    # Early stopping is per model: with patience 2 over 6 epochs the stack need not stop together,
    # and each model's log covers only its own epochs.
    assert all(len(info["train_loss"]) == info["epochs"] for _, info in trained)


def test_stopped_model_leaves_the_stack_and_others_continue(histories, fold, tiny_config) -> None:
    cfg = tiny_config.model_copy(update={"max_epochs": 8, "patience": 1, "learning_rate": 0.05})
    models = _models(cfg, seeds=(1, 2, 3))
    data = [m.prepare(h.upto(fold.cutoff), fold) for m, h in zip(models, histories, strict=True)]
    epochs = [info["epochs"] for _, info in train_stack(data, models[0])]
    alone = [train_stack([d], models[0])[0][1]["epochs"] for d in data]
    assert epochs == alone
    assert min(epochs) < cfg.max_epochs  # at least one model stopped early


def test_model_result_does_not_depend_on_its_stack_neighbours(histories, fold, tiny_config) -> None:
    models = _models(tiny_config)
    data = [m.prepare(h.upto(fold.cutoff), fold) for m, h in zip(models, histories, strict=True)]
    full = train_stack(data, models[0])
    pair = train_stack([data[2], data[0]], models[0])
    for key, value in full[0][0].items():
        np.testing.assert_allclose(value.numpy(), pair[1][0][key].numpy(), atol=TOL, rtol=0, err_msg=key)
    assert full[0][1]["epochs"] == pair[1][1]["epochs"]


def test_stacked_adam_matches_torch_adam_and_skips_inactive_models() -> None:
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(2, 5, generator=gen)
    start = torch.randn(2, 5, generator=gen)
    params = {"w": start.clone()}
    opt = StackedAdam(params, lr=0.1, weight_decay=0.01)
    refs = [torch.nn.Parameter(start[k].clone()) for k in range(2)]
    torch_opts = [torch.optim.Adam([p], lr=0.1, weight_decay=0.01) for p in refs]
    for step in range(25):
        active = torch.tensor([True, step % 3 != 0])  # model 1 sits out every third step
        grads = {"w": 2 * (params["w"] - target)}
        frozen = params["w"][1].clone()
        opt.step(grads, active)
        if not active[1]:
            assert torch.equal(params["w"][1], frozen)
        for k, (p, o) in enumerate(zip(refs, torch_opts, strict=True)):
            if active[k]:
                o.zero_grad()
                ((p - target[k]) ** 2).sum().backward()
                o.step()
    for k in range(2):
        torch.testing.assert_close(params["w"][k], refs[k].detach(), rtol=1e-6, atol=1e-6)
    assert opt.steps.tolist() == [25, 16]


def test_train_stack_rejects_empty_input(tiny_config) -> None:
    with pytest.raises(ValueError, match="at least one model"):
        train_stack([], RecurrentForecaster(tiny_config))


def test_config_picks_the_cell_and_pooling() -> None:
    cfg = RecurrentConfig(cell="lstm", attention=True)
    model = RecurrentForecaster(cfg)
    assert model.name == "lstm_attention"
    assert RecurrentForecaster(cfg, cell="gru", attention=False).name == "gru"
    net = model.new_net(4, [torch.Generator().manual_seed(0)])
    assert net.params["layer0_w_ih"].shape == (1, 4 * cfg.hidden_size, 4)
    assert net.params["attention"].shape == (1, cfg.hidden_size)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_stack_on_cuda_matches_cpu(histories, fold, tiny_config) -> None:
    cpu, gpu = _models(tiny_config), [m.clone(device="cuda") for m in _models(tiny_config)]
    on_cpu = train_stack(
        [m.prepare(h.upto(fold.cutoff), fold) for m, h in zip(cpu, histories, strict=True)], cpu[0]
    )
    data = [m.prepare(h.upto(fold.cutoff), fold) for m, h in zip(gpu, histories, strict=True)]
    assert data[0].x_train.device.type == "cuda"
    on_gpu = train_stack(data, gpu[0])
    for (a, _), (b, _) in zip(on_cpu, on_gpu, strict=True):
        for key, value in a.items():
            assert b[key].device.type == "cuda"
            np.testing.assert_allclose(b[key].cpu().numpy(), value.numpy(), atol=1e-4, rtol=0, err_msg=key)


def test_prepare_refuses_history_past_the_cutoff_and_purges_labels(histories, fold, tiny_config) -> None:
    """Issue 10.14: the stacked path's `prepare()` accepted history past the fold cutoff (only the
    driver's `upto()` protected it). It now refuses it as `fit()` does, and the samples it builds
    have labels that end by the cutoff (the purge)."""
    from kallos.exceptions import DataValidationError

    model = _models(tiny_config)[0]
    with pytest.raises(DataValidationError, match=r"aaa: training history ends .* after the fold cutoff"):
        model.prepare(histories[0], fold)  # the full history runs past fold.cutoff
    data = model.prepare(histories[0].upto(fold.cutoff), fold)
    horizon = pd.Timedelta(days=fold.horizon)
    assert data.validation_dates.max() + horizon == fold.cutoff  # the last label ends at the cutoff
    assert data.train_dates.max() + horizon < data.validation_dates.min()  # no overlap with validation
    assert (len(data.train_dates), len(data.validation_dates)) == (len(data.x_train), len(data.x_val))
