"""The recurrent plug-in against PyTorch's layers, and the neural forecaster's contract (every
neural plug-in: GRU, LSTM, Transformer) and its loss."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kallos.config import ForecastConfig, TrainingConfig
from kallos.data.artifacts import load_model_state, save_model_state
from kallos.exceptions import InsufficientDataError
from kallos.features import compute_indicators, forward_log_return
from kallos.forecast import CoinHistory, ExpandingWalkForward, direction_aware_loss, make_forecaster
from kallos.forecast.models.recurrent import CELLS as CELL_REGISTRY
from kallos.forecast.models.recurrent import Cell, RecurrentNet
from kallos.forecast.training import masked_direction_aware_loss, rng_fork_args

DAY = pd.Timedelta(days=1)
CELLS = ["gru", "lstm", "transformer"]


# --------------------------------------------------------------------------- loss
def test_direction_aware_loss_known_values_and_gradient() -> None:
    pred = torch.tensor([1.0, -1.0], requires_grad=True)
    target = torch.tensor([2.0, 1.0])
    loss = direction_aware_loss(pred, target, 2.0)
    assert loss.item() == pytest.approx(4.5)  # mean(1 * 1², 2 * 2²)
    loss.backward()
    # d/dp mean(w (p - y)²) = 2 w (p - y) / n
    np.testing.assert_allclose(pred.grad.numpy(), [-1.0, -4.0])
    assert direction_aware_loss(torch.tensor([-1.0]), torch.tensor([1.0]), 3.0).item() == pytest.approx(12.0)


def test_direction_aware_loss_with_lambda_one_is_mse() -> None:
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.randn(50, generator=gen), torch.randn(50, generator=gen)
    mse = torch.nn.functional.mse_loss(pred, target)
    assert torch.allclose(direction_aware_loss(pred, target, 1.0), mse)
    assert direction_aware_loss(pred, target, 4.0) > mse
    agree = pred.abs() * target.sign()
    assert torch.allclose(
        direction_aware_loss(agree, target, 4.0), torch.nn.functional.mse_loss(agree, target)
    )


def test_direction_aware_loss_zero_counts_as_agreeing() -> None:
    zero_pred = direction_aware_loss(torch.tensor([0.0, 0.0]), torch.tensor([1.0, -2.0]), 10.0)
    assert zero_pred.item() == pytest.approx(2.5)  # mean(1, 4): weight 1 for both
    zero_target = direction_aware_loss(torch.tensor([3.0, -1.0]), torch.tensor([0.0, 0.0]), 10.0)
    assert zero_target.item() == pytest.approx(5.0)


@pytest.mark.parametrize("lam", [1.0, 2.0, 5.0])
def test_masked_training_loss_equals_the_documented_loss(lam) -> None:
    """Issue 10.17: the loss that trains the models is the documented direction-aware loss, per model
    over its unmasked rows (with sign disagreements, zeros and a padded tail)."""
    gen = torch.Generator().manual_seed(1)
    pred, target = torch.randn(3, 40, generator=gen), torch.randn(3, 40, generator=gen)
    pred[0, :5] = 0.0
    lengths = [40, 25, 7]
    mask = (torch.arange(40) < torch.tensor(lengths)[:, None]).to(torch.float32)
    got = masked_direction_aware_loss(pred, target, mask, lam)
    want = torch.stack([direction_aware_loss(pred[k, :n], target[k, :n], lam) for k, n in enumerate(lengths)])
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    assert torch.isnan(masked_direction_aware_loss(pred[:1], target[:1], torch.zeros(1, 40), lam)).all()


# --------------------------------------------------------------------------- hand-written GRU backward
def _gru_inputs(k: int = 2, length: int = 6, batch: int = 3, hidden: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    gi = torch.randn(k, length, batch, 3 * hidden, generator=gen, dtype=torch.float64)
    w_hh_t = torch.randn(k, hidden, 3 * hidden, generator=gen, dtype=torch.float64) * 0.5
    b_hh = torch.randn(k, 1, 3 * hidden, generator=gen, dtype=torch.float64)
    return [t.requires_grad_() for t in (gi, w_hh_t, b_hh)]


def test_gru_sequence_backward_passes_gradcheck() -> None:
    gru = CELL_REGISTRY["gru"]
    assert torch.autograd.gradcheck(gru.sequence, tuple(_gru_inputs()))


def test_gru_sequence_equals_the_autograd_cell_loop() -> None:
    """The fused sequence (hand-written BPTT) against the generic per-step autograd loop."""
    gru, inputs = CELL_REGISTRY["gru"], _gru_inputs(seed=3)
    fused, generic = gru.sequence(*inputs), Cell.sequence(gru, *inputs)
    torch.testing.assert_close(fused, generic, rtol=0, atol=1e-12)
    d_out = torch.randn(fused.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for a, b in zip(
        torch.autograd.grad(fused, inputs, d_out), torch.autograd.grad(generic, inputs, d_out), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    with torch.no_grad():  # inference runs the same arithmetic without saving gates: bit-identical
        assert torch.equal(gru.sequence(*inputs), fused.detach())


@pytest.mark.parametrize(("cell", "reference"), [("gru", torch.nn.GRU), ("lstm", torch.nn.LSTM)])
def test_network_matches_torch_recurrent_layers(cell, reference) -> None:
    """Outputs and weight gradients equal PyTorch's nn.GRU / nn.LSTM with the same weights."""
    torch.manual_seed(0)
    ref = reference(5, 6, num_layers=2, batch_first=True).double()
    net = RecurrentNet(5, 6, 2, 0.0, cell, n_models=1).double()
    with torch.no_grad():
        for layer in range(2):
            for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
                source = getattr(ref, f"{name.replace('w_', 'weight_').replace('b_', 'bias_')}_l{layer}")
                net.params[f"layer{layer}_{name}"].copy_(source[None])
        net.params["head_weight"].fill_(1.0)
        net.params["head_bias"].zero_()
    x = torch.randn(4, 7, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = ref(x)[0][:, -1].sum(-1)  # head = sum of the last hidden state
    got = net(x[None])[0]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    ref_grads = torch.autograd.grad(expected.square().sum(), [ref.weight_hh_l0, ref.weight_ih_l1])
    grads = torch.autograd.grad(got.square().sum(), [net.params["layer0_w_hh"], net.params["layer1_w_ih"]])
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a[0], b, rtol=0, atol=1e-10)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def history(make_history) -> CoinHistory:
    return make_history(n=470, seed=0, coin="syn")


@pytest.fixture(scope="module", params=CELLS)
def fitted(request, history, fold, tiny_config):
    return tiny_config.model(request.param, seed=1).fit(history.upto(fold.cutoff), fold)


def _test_dates(fold) -> pd.DatetimeIndex:
    return pd.date_range(fold.test_start, fold.test_end, freq="D")


# --------------------------------------------------------------------------- contract
def test_output_shape_index_and_name(fitted, history, fold) -> None:
    dates = pd.DatetimeIndex(["2021-01-20", "2021-01-05", "2019-12-01", "2021-01-05"])
    pred = fitted.predict(history, dates)
    assert pred.index.equals(dates)
    assert pred.name == fitted.name
    assert np.isnan(pred.iloc[2])  # before the history starts
    assert np.isfinite(pred.iloc[[0, 1, 3]]).all() and pred.iloc[1] == pred.iloc[3]
    test = fitted.predict(history, _test_dates(fold))
    assert len(test) == (fold.test_end - fold.test_start).days + 1 and test.notna().all()
    assert fitted.predict(history, pd.DatetimeIndex([])).empty


def test_nan_where_lookback_window_incomplete(fitted, history, tiny_config) -> None:
    lookback = tiny_config.training.lookback
    index = history.features.index
    head = fitted.predict(history, index[: lookback + 3])
    assert head.isna().tolist() == [True] * (lookback - 1) + [False] * 4
    features = history.features.copy()
    k = 400
    features.iloc[k, 1] = np.nan
    holed = CoinHistory(history.coin_id, history.close, features)
    pred = fitted.predict(holed, index[k - 2 : k + lookback + 2])
    assert pred.isna().tolist() == [False] * 2 + [True] * lookback + [False] * 2


def test_fit_attributes(fitted, history, fold, tiny_config) -> None:
    info = fitted.training_
    assert fitted.feature_names_ == ["signal", "noise", "level"]
    assert fitted.cutoff_ == fold.cutoff
    # Training samples: train_start + lookback - 1 .. train_end; validation: the whole block.
    lookback = tiny_config.training.lookback
    assert info["n_train"] == (fold.train_end - fold.train_start).days + 1 - (lookback - 1)
    assert info["n_validation"] == 60
    assert 1 <= info["best_epoch"] <= info["epochs"] <= tiny_config.training.max_epochs
    assert info["best_validation_loss"] == min(info["validation_loss"])
    y = forward_log_return(history.close, 7).loc[fold.train_start + (lookback - 1) * DAY : fold.train_end]
    assert fitted.scaler_.target_scale == pytest.approx(float(np.sqrt(np.mean(y.to_numpy() ** 2))), rel=1e-12)


def test_same_seed_bit_identical_other_seed_differs(fitted, history, fold) -> None:
    dates = _test_dates(fold)
    reference = fitted.predict(history, dates).to_numpy()
    torch.manual_seed(12345)  # the global RNG must not matter
    again = fitted.clone().fit(history.upto(fold.cutoff), fold)
    np.testing.assert_array_equal(again.predict(history, dates).to_numpy(), reference)
    for (k, a), (_, b) in zip(fitted.to_state()[0].items(), again.to_state()[0].items(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=k)
    other = fitted.clone(seed=2).fit(history.upto(fold.cutoff), fold)
    assert not np.array_equal(other.predict(history, dates).to_numpy(), reference)


def test_fit_leaves_global_torch_state_alone(fitted, history, fold) -> None:
    torch.manual_seed(7)
    state = torch.random.get_rng_state()
    threads = torch.get_num_threads()
    fitted.clone(seed=3).fit(history.upto(fold.cutoff), fold)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.get_num_threads() == threads


def test_rng_fork_covers_the_generators_manual_seed_touches() -> None:
    assert rng_fork_args("cpu") == {"devices": []}
    cuda = rng_fork_args("cuda")
    assert cuda["device_type"] == "cuda"
    assert list(cuda["devices"]) == list(range(torch.cuda.device_count()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_on_cuda_leaves_global_cuda_rng_alone(history, fold, tiny_config) -> None:
    state = torch.cuda.get_rng_state_all()
    model = tiny_config.model("gru", seed=1, device="cuda")
    model.fit(history.upto(fold.cutoff), fold)
    assert all(torch.equal(a, b) for a, b in zip(torch.cuda.get_rng_state_all(), state, strict=True))
    assert np.isfinite(model.predict(history, _test_dates(fold))).all()


def test_scaler_uses_training_rows_only(fitted, history, fold, tiny_config) -> None:
    # Training windows read rows train_start .. train_end (every row has finite features).
    train_rows = history.features.loc[fold.train_start : fold.train_end]
    np.testing.assert_allclose(fitted.scaler_.mean, train_rows.mean().to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(fitted.scaler_.scale, train_rows.std(ddof=0).to_numpy(), rtol=1e-12)
    # Blow up everything after train_end (purge gap and validation block): the scaler must not move.
    features = history.features.copy()
    features.loc[features.index > fold.train_end] = features.loc[features.index > fold.train_end] * 1e3 + 50
    poisoned = CoinHistory(history.coin_id, history.close, features).upto(fold.cutoff)
    refit = fitted.clone().fit(poisoned, fold)
    np.testing.assert_array_equal(refit.scaler_.mean, fitted.scaler_.mean)
    np.testing.assert_array_equal(refit.scaler_.scale, fitted.scaler_.scale)
    assert refit.scaler_.target_scale == fitted.scaler_.target_scale
    # ... although the validation block did change what early stopping saw.
    assert refit.training_["validation_loss"] != fitted.training_["validation_loss"]


def test_trained_model_beats_predicting_zero(fitted, history, fold, tiny_config) -> None:
    label = forward_log_return(history.close, 7)
    val_dates = pd.date_range(fold.validation_start, fold.validation_end, freq="D")
    y_val = torch.tensor(label.loc[val_dates].to_numpy())
    pred_val = torch.tensor(fitted.predict(history.upto(fold.cutoff), val_dates).to_numpy())
    lam = tiny_config.training.direction_weight
    trained = direction_aware_loss(pred_val, y_val, lam).item()
    zero = direction_aware_loss(torch.zeros_like(y_val), y_val, lam).item()
    assert trained < 0.25 * zero
    # Out of sample (test block, labels known from the full history) the signal is still used.
    test_dates = _test_dates(fold)
    y_test = label.loc[test_dates].to_numpy()
    pred_test = fitted.predict(history, test_dates).to_numpy()
    ok = np.isfinite(y_test)
    assert np.corrcoef(pred_test[ok], y_test[ok])[0, 1] > 0.8
    assert np.mean(np.sign(pred_test[ok]) == np.sign(y_test[ok])) > 0.75


def test_forecast_at_t_ignores_rows_after_t(fitted, history) -> None:
    t = pd.Timestamp("2021-02-10")
    dates = pd.date_range("2021-01-01", t, freq="D")
    reference = fitted.predict(history, dates)
    rng = np.random.default_rng(0)
    later = history.features.index > t
    features, close = history.features.copy(), history.close.copy()
    features.loc[later] = rng.normal(0.0, 100.0, (later.sum(), features.shape[1]))
    close.loc[later] = rng.lognormal(5.0, 2.0, later.sum())
    noisy = CoinHistory(history.coin_id, close, features)
    np.testing.assert_array_equal(fitted.predict(noisy, dates).to_numpy(), reference.to_numpy())
    np.testing.assert_array_equal(fitted.predict(history.upto(t), dates).to_numpy(), reference.to_numpy())


def test_state_round_trip_without_pickle(fitted, history, fold, tmp_path) -> None:
    tensors, meta = fitted.to_state()
    weights, info = save_model_state(tmp_path / "model", tensors, meta)
    assert (weights.suffix, info.suffix) == (".safetensors", ".json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]
    loaded = fitted.clone().load_state(*load_model_state(tmp_path / "model"))
    assert loaded.get_params() == fitted.get_params()
    assert loaded.feature_names_ == fitted.feature_names_
    assert loaded.cutoff_ == fitted.cutoff_
    np.testing.assert_array_equal(loaded.scaler_.mean, fitted.scaler_.mean)
    np.testing.assert_array_equal(loaded.scaler_.scale, fitted.scaler_.scale)
    assert loaded.scaler_.target_scale == fitted.scaler_.target_scale
    assert loaded.training_ == fitted.training_
    dates = _test_dates(fold)
    np.testing.assert_array_equal(loaded.predict(history, dates).to_numpy(), fitted.predict(history, dates))
    with pytest.raises(ValueError, match="format"):
        fitted.load_state(tensors, {**meta, "format": "something/else"})
    with pytest.raises(ValueError, match=r"differs from this forecaster in \['seed'\]"):
        fitted.clone(seed=99).load_state(tensors, meta)


@pytest.mark.parametrize("cell", CELLS)
def test_insufficient_training_samples(cell, history, fold, tiny_config) -> None:
    model = tiny_config.model(cell, min_train_samples=10_000)
    with pytest.raises(InsufficientDataError, match=r"syn: \d+ training samples in 2020-01-01\.\.2020-10-18"):
        model.fit(history.upto(fold.cutoff), fold)
    assert not hasattr(model, "net_")
    late = ExpandingWalkForward(pd.Timestamp("2020-10-01"), horizon=7, validation_days=60).fold(fold.cutoff)
    with pytest.raises(
        InsufficientDataError, match=r"syn: 18 training samples in 2020-10-01\.\.2020-10-18 \(need 30\)"
    ):
        tiny_config.model(cell).fit(history.upto(fold.cutoff), late)


# --------------------------------------------------------------------------- real data
def test_tiny_gru_on_real_btc(real_panel) -> None:
    bars = real_panel.bars("btc")
    features = compute_indicators(bars, coin_id="btc")
    history = CoinHistory("btc", real_panel.close["btc"].loc[bars.index], features)
    fold = ExpandingWalkForward(pd.Timestamp("2020-01-01"), horizon=7, validation_days=91).fold(
        pd.Timestamp("2021-03-31")
    )
    cfg = ForecastConfig(
        training=TrainingConfig(lookback=10, batch_size=64, max_epochs=3),
        models={"gru": {"hidden_size": 8, "num_layers": 1, "dropout": 0.0}},
    )
    model = make_forecaster("gru", cfg, seed=0).fit(history.upto(fold.cutoff), fold)
    assert model.training_["n_train"] >= 250 and model.training_["n_validation"] == 91
    assert model.feature_names_ == list(features.columns)

    dates = pd.date_range("2021-03-31", "2021-04-10", freq="D")
    batched = model.predict(history, dates)
    assert batched.index.equals(dates)
    assert np.isfinite(batched).all()
    assert (batched.abs() < 1.0).all()  # a 7-day log return
    assert batched.std() > 0  # not a constant
    for t in dates:
        alone = model.predict(history.upto(t), pd.DatetimeIndex([t])).iloc[0]
        # Truncating the history at t changes nothing: bit-identical for the same batch shape ...
        assert alone == model.predict(history, pd.DatetimeIndex([t])).iloc[0]
        # ... and equal to the batched forecast up to float32 batch-shape rounding.
        assert alone == pytest.approx(batched[t], rel=1e-5, abs=1e-8)
