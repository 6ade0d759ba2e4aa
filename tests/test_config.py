"""Study configuration: strict keys, feasibility checks, overrides and hashing."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from kallos.config import StudyConfig, apply_overrides, load_config
from kallos.exceptions import ConfigError
from kallos.forecast import make_forecaster
from kallos.pipeline.validate import validate_study


def test_defaults_are_the_documented_study():
    c = StudyConfig()
    assert (c.universe.top_n, c.universe.benchmark_max_weight) == (5, 0.35)
    assert (str(c.backtest.start), str(c.backtest.end), c.backtest.rebalance) == (
        "2022-01-01",
        "2024-12-31",
        "weekly",
    )
    assert (
        c.backtest.cost_bps == 10 and c.forecast.horizon == 7 and str(c.forecast.train_start) == "2018-06-01"
    )
    assert c.portfolio.objectives == ("max_sharpe", "max_quadratic_utility")
    t = c.forecast.training
    assert (t.lookback, t.direction_weight, c.forecast.refit, c.forecast.models) == (30, 2.0, False, {})
    gru = make_forecaster("gru", c.forecast).network  # network defaults live in the plug-in's settings
    assert (gru.num_layers, gru.hidden_size, gru.cell) == (2, 128, "gru") and gru.dropout > 0
    assert c.implied_min_names == 3 >= c.portfolio.min_names


def test_unknown_key_names_file_and_dotted_key(tmp_path):
    f = tmp_path / "study.toml"
    f.write_text("[portfolio]\nmax_weigth = 0.3\n")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert str(f) in str(err.value) and "portfolio.max_weigth: unknown key" in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"portfolio.max_weight": 0.15}, "max_weight=0.15 x universe.top_n=5 < 1"),
        ({"portfolio.min_names": 6}, "min_names=6 > universe.top_n=5"),
        ({"portfolio.objectives": ["max_sharp"]}, "unknown \\['max_sharp'\\]"),
        ({"forecast.forecasters": ["tranformer"]}, "forecast.forecasters: unknown"),
        ({"forecast.models.gru.hidden_sise": 8}, "forecast.models.gru.hidden_sise: unknown key"),
        ({"forecast.models.transformer.n_heads": 3}, "forecast.models.transformer"),
        ({"forecast.models.ensemble.members": ["gru", "zero"]}, "forecast.models.ensemble.members: 'zero'"),
        ({"backtest.end": "2021-01-01"}, "must be after backtest.start"),
        ({"trading.strategy": "gru/maximise"}, "trading.strategy='gru/maximise'"),
        ({"trading.max_findings": {"gaps": 1}}, "trading.max_findings: unknown rule"),
        ({"backtest.rebalance": "daily"}, "backtest.rebalance"),
        ({"backtest.cost_bps": -1}, "backtest.cost_bps"),
    ],
)
def test_invalid_values_are_rejected_with_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate_study(load_config(None, overrides))


def test_bad_toml_and_missing_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[universe\ntop_n = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(f)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "none.toml")


def test_overrides_and_hash():
    merged = apply_overrides({"universe": {"top_n": 3}}, {"universe.benchmark_max_weight": 0.5, "seed": 1})
    assert merged == {"universe": {"top_n": 3, "benchmark_max_weight": 0.5}, "seed": 1}
    a, b = load_config(None, {"seed": 1}), load_config(None, {"seed": 1})
    assert a.config_hash() == b.config_hash() != load_config(None, {"seed": 2}).config_hash()
    with pytest.raises(ConfigError, match="not a table"):
        apply_overrides({"seed": 1}, {"seed.x": 2})
    with pytest.raises(ValidationError):  # frozen
        a.seed = 3  # type: ignore[misc]


def test_cross_field_errors_read_as_one_sentence_naming_the_keys():
    """Issue 10.12: cross-field errors started with ``<root>: Value error,``."""
    for overrides, expected in (
        ({"portfolio.max_weight": 0.15}, "  portfolio.max_weight=0.15 x universe.top_n=5 < 1: no fully"),
        ({"portfolio.min_weight_held": 0.5}, "  portfolio.min_weight_held=0.5 > portfolio.max_weight=0.35"),
        ({"backtest.end": "2021-01-01"}, "  backtest.end (2021-01-01) must be after backtest.start"),
    ):
        with pytest.raises(ConfigError) as err:
            load_config(None, overrides)
        message = str(err.value)
        assert expected in message.splitlines()[1], message
        assert "<root>" not in message and "Value error" not in message


def test_override_below_a_value_is_not_a_table_even_when_unset():
    """Issue 10.12: ``--set backtest.cost_bps.x=1`` said "should be a valid number"."""
    with pytest.raises(ConfigError, match=r"backtest\.cost_bps is a value, not a table"):
        load_config(None, {"backtest.cost_bps.x": 1})
    with pytest.raises(ConfigError, match=r"forecast\.training\.lookback is a value, not a table"):
        load_config(None, {"forecast.training.lookback.y": 1})
    # Sections still take sub-keys, and unknown ones are reported as unknown keys.
    assert load_config(None, {"forecast.training.lookback": 16}).forecast.training.lookback == 16
    # forecast.models is a table of tables: a plug-in's settings are set the same way.
    c = load_config(None, {"forecast.models.gru.hidden_size": 16, "forecast.models.gru.num_layers": 1})
    assert c.forecast.models == {"gru": {"hidden_size": 16, "num_layers": 1}}
    assert make_forecaster("gru", c.forecast).network.hidden_size == 16
    with pytest.raises(ConfigError, match=r"backtest\.costs: unknown key"):
        load_config(None, {"backtest.costs.x": 1})


def test_study_file_that_is_not_utf8_is_a_config_error(tmp_path):
    """Issue 10.7: a Latin-1 study file raised a raw UnicodeDecodeError."""
    f = tmp_path / "study.toml"
    f.write_bytes("seed = 7\n# caf\xe9\n[universe]\ntop_n = 4\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"study\.toml, line 2: not UTF-8 text; save the file as UTF-8"):
        load_config(f)


def test_trading_section_is_validated_and_left_out_of_the_study_hash(tmp_path):
    f = tmp_path / "study.toml"
    f.write_text('[trading]\nstrategy = "historical_mean/max_sharpe"\nmax_turnover = 0.8\n')
    c = load_config(f)
    assert (c.trading.strategy, c.trading.max_turnover, c.trading.mode_account("paper")) == (
        "historical_mean/max_sharpe",
        0.8,
        "paper",
    )
    # Trading settings do not change what the study computes, so they do not name a study run.
    assert c.config_hash() == load_config(None).config_hash()
    assert c.config_hash() != load_config(None, {"backtest.rebalance_day": "SAT"}).config_hash()
    for overrides, message in (
        ({"trading.execute_time": "00:10"}, "must be later than trading.cycle_time=00:30"),
        ({"trading.cycle_time": "25:00"}, "trading.cycle_time"),
        ({"trading.account": "my account"}, "trading.account"),
        ({"trading.kill_swich": "x"}, "trading.kill_swich: unknown key"),
    ):
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
            load_config(None, overrides)


def test_the_original_preset_is_the_published_design():
    from kallos.config import PRESETS, preset_path
    from kallos.forecast import ExpandingWalkForward
    from kallos.pipeline.validate import validate_study

    assert PRESETS == ("original",)
    cfg = validate_study(load_config(preset_path("original")))
    assert cfg.preset == "original" and cfg.universe.top_n == 5 and cfg.universe.benchmark_max_weight == 0.35
    assert (cfg.backtest.start.isoformat(), cfg.backtest.end.isoformat()) == ("2023-01-01", "2024-12-31")
    assert cfg.backtest.cost_bps == 0 and cfg.backtest.compare_cost_bps == 10
    assert cfg.forecast.horizon == 30 and cfg.portfolio.cov_lookback == 252
    assert cfg.portfolio.objectives == ("max_return", "max_quadratic_utility")
    assert cfg.forecast.tuning.enabled and cfg.forecast.tuning.n_trials == 50
    # Rolling window: 364 days of training samples, then purge, 91 validation days, purge.
    fold = ExpandingWalkForward.from_config(cfg.forecast).fold(pd.Timestamp("2023-12-31"))
    assert (fold.train_end - fold.train_start).days + 1 == 364
    assert (fold.validation_end - fold.validation_start).days + 1 == 91
    assert (fold.cutoff - fold.train_start).days + 1 == 515


def test_compute_settings_do_not_change_the_config_hash():
    a = load_config(None, {"compute.scheduler": "none"})
    b = load_config(None, {"compute.scheduler": "tcp://10.0.0.1:8786", "compute.artifact_dir": "/mnt/m"})
    assert a.config_hash() == b.config_hash() == load_config().config_hash()
    with pytest.raises(ConfigError, match=r"compute\.scheduler"):
        load_config(None, {"compute.scheduler": "dask://x"})
