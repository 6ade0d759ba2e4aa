"""The contract every registered forecaster keeps, on a tiny slice of real data (BTC, one fold).

Output shape and name, bit-identical refits under a seed, and — for trained models — a
trained network whose loss on its own training data beats the same network untrained.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kallos.config import ForecastConfig, TrainingConfig
from kallos.features import compute_indicators
from kallos.forecast import (
    FORECASTERS,
    CoinHistory,
    ExpandingWalkForward,
    direction_aware_loss,
    make_forecaster,
)

RECURRENT = {"hidden_size": 8, "num_layers": 2, "dropout": 0.1}
CFG = ForecastConfig(
    min_train_samples=60,
    training=TrainingConfig(lookback=10, learning_rate=5e-3, max_epochs=3, patience=3),
    models={
        "historical_mean": {"window": 60},
        "gru": RECURRENT,
        "lstm": RECURRENT,
        "gru_attention": RECURRENT,
        "transformer": {"d_model": 8, "n_heads": 2, "num_layers": 2, "dim_feedforward": 16, "dropout": 0.1},
    },
)
TRAINED = [name for name in sorted(FORECASTERS) if hasattr(make_forecaster(name, CFG), "prepare")]


@pytest.fixture(scope="module")
def btc(real_panel) -> CoinHistory:
    bars = real_panel.bars("btc").loc["2019-06-01":"2021-06-30"]
    return CoinHistory(
        "btc", real_panel.close["btc"].loc[bars.index], compute_indicators(bars, coin_id="btc")
    )


@pytest.fixture(scope="module")
def fold():
    splitter = ExpandingWalkForward(pd.Timestamp("2020-06-01"), horizon=CFG.horizon, validation_days=60)
    return splitter.fold(pd.Timestamp("2021-03-31"))


def _fit(name: str, btc: CoinHistory, fold, seed: int = 3):
    return make_forecaster(name, CFG, seed=seed).fit(btc.upto(fold.cutoff), fold)


@pytest.fixture(scope="module")
def fitted(btc, fold) -> dict:
    return {name: _fit(name, btc, fold) for name in sorted(FORECASTERS)}


@pytest.mark.parametrize("name", sorted(FORECASTERS))
def test_output_shape_and_name(name, fitted, btc, fold) -> None:
    dates = pd.date_range(fold.test_start, fold.test_end, freq="D")
    pred = fitted[name].predict(btc, dates)
    assert fitted[name].name == name
    assert pred.name == name and pred.index.equals(dates) and pred.dtype == float
    assert np.isfinite(pred).all() and (pred.abs() < 1.0).all()  # a 7-day log return
    assert fitted[name].predict(btc, pd.DatetimeIndex([])).empty


@pytest.mark.parametrize("name", sorted(FORECASTERS))
def test_refit_with_the_same_seed_is_bit_identical(name, fitted, btc, fold) -> None:
    dates = pd.date_range(fold.test_start, fold.test_end, freq="D")
    again = _fit(name, btc, fold)
    np.testing.assert_array_equal(again.predict(btc, dates), fitted[name].predict(btc, dates))
    if hasattr(again, "to_state"):
        for key, value in again.to_state()[0].items():
            np.testing.assert_array_equal(value, fitted[name].to_state()[0][key], err_msg=key)
        other = _fit(name, btc, fold, seed=4)
        assert not np.array_equal(other.predict(btc, dates), again.predict(btc, dates))


@pytest.mark.parametrize("name", TRAINED)
def test_training_beats_the_untrained_network_on_its_training_data(name, fitted, btc, fold) -> None:
    model = fitted[name]
    data = make_forecaster(name, CFG, seed=3).prepare(btc.upto(fold.cutoff), fold)
    untrained = model.new_net(data.x_train.shape[-1], [torch.Generator().manual_seed(3)])
    lam = CFG.training.direction_weight
    with torch.no_grad():
        before = direction_aware_loss(untrained(data.x_train[None])[0], data.y_train, lam).item()
        after = direction_aware_loss(model.net_(data.x_train[None])[0], data.y_train, lam).item()
    assert after < before
    assert model.training_["train_loss"][-1] < model.training_["train_loss"][0]
