"""Seeded synthetic coin histories and tiny model settings shared by the forecast tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from kallos.config import RecurrentConfig
from kallos.features import forward_log_return
from kallos.forecast import CoinHistory, ExpandingWalkForward, Fold

HORIZON = 7
START = pd.Timestamp("2020-01-01")
CUTOFF = pd.Timestamp("2020-12-31")


def synthetic_history(n: int = 470, seed: int = 0, coin: str = "syn", noise: float = 0.005) -> CoinHistory:
    """A random-walk close with a learnable feature: a noisy copy of the 7-day forward log return.

    Columns: ``signal`` (future return + N(0, noise)), ``noise`` (N(0, 1)), ``level`` (N(5, 2)).
    The signal leaks the future on purpose: it makes the problem learnable, so a trained
    network must beat predicting zero by a wide margin.
    """
    rng = np.random.default_rng(seed)
    index = pd.date_range(START, periods=n, freq="D")
    close = pd.Series(100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n))), index=index, name=coin)
    label = forward_log_return(close, HORIZON).fillna(0.0).to_numpy()
    features = pd.DataFrame(
        {
            "signal": label + rng.normal(0.0, noise, n),
            "noise": rng.normal(0.0, 1.0, n),
            "level": rng.normal(5.0, 2.0, n),
        },
        index=index,
    )
    return CoinHistory(coin, close, features)


@pytest.fixture(scope="session")
def make_history() -> Callable[..., CoinHistory]:
    return synthetic_history


@pytest.fixture(scope="session")
def splitter() -> ExpandingWalkForward:
    return ExpandingWalkForward(START, horizon=HORIZON, validation_days=60)


@pytest.fixture(scope="session")
def fold(splitter) -> Fold:
    """Cutoff 2020-12-31: train 2020-01-01..2020-10-18, validation 2020-10-26..2020-12-24."""
    return splitter.fold(CUTOFF)


@pytest.fixture(scope="session")
def tiny_config() -> RecurrentConfig:
    return RecurrentConfig(
        hidden_size=8,
        num_layers=1,
        dropout=0.0,
        lookback=5,
        learning_rate=1e-2,
        batch_size=32,
        max_epochs=5,
        patience=5,
    )
