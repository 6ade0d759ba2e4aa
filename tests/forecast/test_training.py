"""The model-agnostic trainer: for every registered network a stack of K models equals K separate
fits; refitting; the stacked optimiser equals torch's Adam."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kallos.forecast import CoinHistory
from kallos.forecast.models.recurrent import RecurrentSettings
from kallos.forecast.training import StackedAdam, train_stack

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


def _models(cfg, name="gru", seeds=(11, 12, 13), refit=False):
    return [cfg.model(name, seed=s, refit=refit) for s in seeds]


def _train(data, model, **kw):
    return train_stack(data, model.new_net, model.training_config, model.device, **kw)


@pytest.mark.parametrize(
    ("name", "dropout"),
    [("gru", 0.0), ("lstm", 0.0), ("gru_attention", 0.3), ("transformer", 0.0), ("transformer", 0.2)],
)
def test_stack_equals_separate_fits(histories, fold, tiny_config, name, dropout) -> None:
    cfg = tiny_config.model_copy(update={"dropout": dropout, "num_layers": 2, "max_epochs": 6, "patience": 2})
    alone = [m.fit(h.upto(fold.cutoff), fold) for m, h in zip(_models(cfg, name), histories, strict=True)]
    stacked = _models(cfg, name)
    data = [m.prepare(h.upto(fold.cutoff), fold) for m, h in zip(stacked, histories, strict=True)]
    assert len({len(d.x_train) for d in data}) == 3  # masking of unequal sample counts is exercised
    trained = _train(data, stacked[0])
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
    epochs = [info["epochs"] for _, info in _train(data, models[0])]
    alone = [_train([d], models[0])[0][1]["epochs"] for d in data]
    assert epochs == alone
    assert min(epochs) < cfg.training.max_epochs  # at least one model stopped early


def test_model_result_does_not_depend_on_its_stack_neighbours(histories, fold, tiny_config) -> None:
    models = _models(tiny_config)
    data = [m.prepare(h.upto(fold.cutoff), fold) for m, h in zip(models, histories, strict=True)]
    full = _train(data, models[0])
    pair = _train([data[2], data[0]], models[0])
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


def test_train_stack_rejects_empty_input_and_wrong_budgets(tiny_config, histories, fold) -> None:
    model = tiny_config.model()
    with pytest.raises(ValueError, match="at least one model"):
        _train([], model)
    data = model.prepare(histories[0].upto(fold.cutoff), fold)
    with pytest.raises(ValueError, match="2 epoch budgets for 1 models"):
        _train([data], model, epochs=[1, 2])


def test_settings_pick_the_cell_and_pooling() -> None:
    settings = RecurrentSettings(cell="lstm", attention=True)
    net = settings.build_network(4, [torch.Generator().manual_seed(0)])
    assert net.params["layer0_w_ih"].shape == (1, 4 * settings.hidden_size, 4)
    assert net.params["attention"].shape == (1, settings.hidden_size)
    assert RecurrentSettings().build_network(4, n_models=3).params["layer0_w_ih"].shape == (3, 3 * 128, 4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_stack_on_cuda_matches_cpu(histories, fold, tiny_config) -> None:
    cpu, gpu = _models(tiny_config), [m.clone(device="cuda") for m in _models(tiny_config)]
    on_cpu = _train(
        [m.prepare(h.upto(fold.cutoff), fold) for m, h in zip(cpu, histories, strict=True)], cpu[0]
    )
    data = [m.prepare(h.upto(fold.cutoff), fold) for m, h in zip(gpu, histories, strict=True)]
    assert data[0].x_train.device.type == "cuda"
    on_gpu = _train(data, gpu[0])
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


@pytest.mark.parametrize("name", ["gru", "transformer"])
def test_refit_trains_the_whole_window_for_the_early_stopped_epochs(
    histories, fold, tiny_config, name
) -> None:
    """Refit: the early-stopped epoch count, then every labelled sample up to the cutoff (purged),
    stacked equal to alone, and a different model from the one early stopping kept."""
    cfg = tiny_config.model_copy(update={"max_epochs": 6, "patience": 2})
    plain = [m.fit(h.upto(fold.cutoff), fold) for m, h in zip(_models(cfg, name), histories, strict=True)]
    alone = [
        m.fit(h.upto(fold.cutoff), fold)
        for m, h in zip(_models(cfg, name, refit=True), histories, strict=True)
    ]
    stacked = _models(cfg, name, refit=True)
    errors = stacked[0].fit_stack(stacked, [h.upto(fold.cutoff) for h in histories], [fold] * 3)
    assert errors == [None] * 3
    data = stacked[0].prepare(histories[0].upto(fold.cutoff), fold, refit=True)
    horizon = pd.Timedelta(days=fold.horizon)
    assert data.train_dates.max() + horizon == fold.cutoff  # the last label ends at the cutoff
    assert len(data.x_val) == 0
    for p, a, s in zip(plain, alone, stacked, strict=True):
        early = a.training_["early_stopping"]
        assert early["best_epoch"] == p.training_["best_epoch"]  # the epoch count comes from early stopping
        assert a.training_["epochs"] == early["best_epoch"]  # ...and the refit trains exactly that many
        assert a.training_["n_train"] > p.training_["n_train"]  # on the validation block and purge gap too
        for key, value in a.net_.model_state(0).items():
            np.testing.assert_allclose(s.net_.model_state(0)[key].numpy(), value.numpy(), atol=TOL, rtol=0)
        assert not torch.equal(a.net_.model_state(0)["head_bias"], p.net_.model_state(0)["head_bias"])
