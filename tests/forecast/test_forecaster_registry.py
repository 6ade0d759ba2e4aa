"""Tests for kallos.forecast.registry: names, factories and process-stable seeds."""

from __future__ import annotations

import pytest

from kallos.config import ForecastConfig, StudyConfig, TrainingConfig
from kallos.exceptions import ConfigError
from kallos.forecast import (
    FORECASTERS,
    BaseForecaster,
    EnsembleForecaster,
    HistoricalMean,
    NaivePersistence,
    NeuralForecaster,
    check_config,
    make_forecaster,
    stable_seed,
)
from kallos.forecast.models.recurrent import RecurrentSettings
from kallos.forecast.registry import baselines

CFG = ForecastConfig(
    horizon=5,
    min_train_samples=42,
    training=TrainingConfig(lookback=5),
    models={"historical_mean": {"window": 90}, "gru": {"hidden_size": 8, "num_layers": 1}},
)


def test_registry_lists_the_forecasters() -> None:
    assert sorted(FORECASTERS) == [
        "ensemble",
        "gru",
        "gru_attention",
        "historical_mean",
        "lstm",
        "naive_persistence",
        "transformer",
        "zero",
    ]
    assert baselines() == ("zero", "historical_mean", "naive_persistence")


@pytest.mark.parametrize("name", sorted(FORECASTERS))
def test_make_forecaster_name_and_settings(name: str) -> None:
    model = make_forecaster(name, CFG, seed=11, device="cpu")
    assert isinstance(model, BaseForecaster)
    assert model.name == name
    assert model.horizon == CFG.horizon
    assert not hasattr(model, "cutoff_")  # unfitted
    twin = model.clone()
    assert twin is not model and repr(twin) == repr(model)
    # sklearn's clone copies nested estimators (an ensemble's members) instead of sharing them
    for ours, theirs in zip(twin.get_params().values(), model.get_params().values(), strict=True):
        if isinstance(ours, tuple) and ours and isinstance(ours[0], BaseForecaster):
            assert all(
                a is not b and a.get_params() == b.get_params() for a, b in zip(ours, theirs, strict=True)
            )
        else:
            assert ours == theirs


def test_factories_pass_the_config_through() -> None:
    gru = make_forecaster("gru", CFG, seed=11, device="cpu")
    assert isinstance(gru, NeuralForecaster) and gru.parallel
    assert gru.get_params() == {
        "name": "gru",
        "network": RecurrentSettings(cell="gru", hidden_size=8, num_layers=1),
        "training": CFG.training,
        "horizon": 5,
        "seed": 11,
        "device": "cpu",
        "min_train_samples": 42,
        "refit": False,
    }
    assert make_forecaster("lstm", CFG).network.cell == "lstm"
    assert make_forecaster("lstm", CFG).network.hidden_size == 128  # models.gru does not leak into lstm
    attn = make_forecaster("gru_attention", CFG)
    assert attn.network.cell == "gru" and attn.network.attention and attn.name == "gru_attention"
    hm = make_forecaster("historical_mean", CFG)
    assert isinstance(hm, HistoricalMean) and hm.window == 90 and not hm.parallel
    naive = make_forecaster("naive_persistence", CFG)
    assert isinstance(naive, NaivePersistence) and naive.get_params() == {"horizon": 5}
    ens = make_forecaster("ensemble", CFG, seed=3)
    assert isinstance(ens, EnsembleForecaster)
    assert [m.name for m in ens.members] == ["gru", "lstm", "transformer"]
    assert [m.seed for m in ens.members] == [3, 4, 5]
    assert make_forecaster("gru", CFG.model_copy(update={"refit": True})).refit


def test_unknown_name_lists_choices() -> None:
    with pytest.raises(KeyError) as info:
        make_forecaster("prophet", CFG)
    message = str(info.value)
    assert "prophet" in message
    for name in FORECASTERS:
        assert repr(name) in message


@pytest.mark.parametrize(
    ("forecast", "message"),
    [
        ({"forecasters": ("gru", "prophet")}, r"forecast.forecasters: unknown \['prophet'\]"),
        ({"models": {"prophet": {}}}, r"forecast.models: unknown forecaster\(s\) \['prophet'\]"),
        ({"models": {"gru": {"hiden_size": 8}}}, r"forecast.models.gru.hiden_size: unknown key"),
        (
            {"models": {"gru": {"hidden_size": 0}}},
            r"forecast.models.gru.hidden_size: Input should be greater",
        ),
        ({"models": {"transformer": {"d_model": 10, "n_heads": 4}}}, r"must be a multiple of n_heads"),
        (
            {"models": {"ensemble": {"members": ["gru", "zero"]}}},
            r"members: 'zero' is not a learned forecaster",
        ),
        ({"models": {"ensemble": {"members": ["gru"]}}}, r"at least two distinct members"),
    ],
)
def test_check_config_validates_names_and_settings_through_the_specs(forecast, message) -> None:
    """Unknown names and bad settings are a ConfigError naming the dotted key; building the config
    itself loads no forecaster code."""
    config = StudyConfig(forecast=ForecastConfig(**forecast))
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_check_config_accepts_the_documented_alternatives() -> None:
    config = StudyConfig(
        forecast=ForecastConfig(
            forecasters=("gru", "transformer", "ensemble", "zero"), models={"transformer": {"d_model": 32}}
        )
    )
    assert check_config(config) is config
    with pytest.raises(ConfigError, match=r"trading\.strategy='tft/max_sharpe': unknown forecaster"):
        check_config(StudyConfig(trading={"strategy": "tft/max_sharpe"}))


def test_stable_seed_golden_and_distinct() -> None:
    # Golden values (crc32, not hash(): the same in every process and under any PYTHONHASHSEED).
    # A change here silently changes every trained network of a study.
    assert stable_seed("gru", "btc", "2021-12-31") == 1750074028
    assert stable_seed("a", "b") == 375541387
    assert stable_seed("gru", "btc", "2021-12-31") == stable_seed("gru", "btc", "2021-12-31")
    seeds = {
        stable_seed("gru", coin, cutoff)
        for coin in ("btc", "eth", "sol")
        for cutoff in ("2021-12-31", "2022-03-31")
    }
    assert len(seeds) == 6
    assert stable_seed("a", "b") != stable_seed("b", "a")
    assert all(0 <= s < 2**31 for s in seeds)
