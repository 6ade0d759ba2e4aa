"""Adding a forecaster is one file plus one registry line: shown with a model defined here.

``LastDayLinear`` is a plug-in written in this file only: a stacked network (a linear map of the
last day's features), its pydantic settings, a search space and a spec. Registered, it is
trained by the model-agnostic trainer, tuned for two Optuna trials, run through a short study
on the real data and reported (``results.json`` and the HTML report), with no other file edited.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from pydantic import Field

from kallos.config import ForecastConfig, load_config
from kallos.data import build_panel
from kallos.forecast import ForecasterSpec, NetworkSettings, make_forecaster, register, unregister
from kallos.forecast.neural import neural_builder
from kallos.forecast.training import ParamInit, StackedModule, uniform_init
from kallos.forecast.tuning import TrainingSpace, tune
from kallos.pipeline.results import report_frames
from kallos.pipeline.study import run_study
from kallos.report.html import render_report

NAME, LABEL, COLOUR = "last_day_linear", "last-day linear", "#0b7a75"


class LastDayNet(StackedModule):
    """K linear models of the last day's features: ``(K, B, L, F) -> (K, B)``."""

    def __init__(
        self,
        n_features: int,
        scale: float,
        generators: Sequence[torch.Generator] = (),
        n_models: int | None = None,
    ) -> None:
        init = uniform_init(scale / math.sqrt(n_features))
        super().__init__(
            [ParamInit("weight", (n_features,), init), ParamInit("bias", (), init)], generators, n_models
        )

    def forward(self, x: torch.Tensor, params: dict[str, torch.Tensor] | None = None, generators: Any = None):
        p = dict(self.params) if params is None else params
        return (x[:, :, -1] * p["weight"].unsqueeze(1)).sum(-1) + p["bias"].unsqueeze(1)


class LastDaySettings(NetworkSettings):
    scale: float = Field(1.0, gt=0, description="initial weight width")

    def build_network(self, n_features: int, generators: Sequence[torch.Generator] = (), n_models: int = 1):
        return LastDayNet(n_features, self.scale, generators, None if generators else n_models)


def last_day_space(trial: optuna.Trial) -> dict[str, float]:
    return {"scale": trial.suggest_float("scale", 0.1, 2.0, log=True)}


SPEC = ForecasterSpec(
    NAME, LastDaySettings, neural_builder(NAME), search_space=last_day_space, label=LABEL, colour=COLOUR
)


@pytest.fixture(scope="module")
def plugin() -> Iterator[ForecasterSpec]:
    register(SPEC)  # the "one registry line"
    try:
        yield SPEC
    finally:
        unregister(NAME)


def small(cfg: ForecastConfig) -> ForecastConfig:
    training = cfg.training.model_copy(update={"lookback": 5, "max_epochs": 4, "patience": 4})
    return cfg.model_copy(
        update={"training": training, "horizon": 7, "validation_days": 60, "min_train_samples": 30}
    )


def test_trained_by_the_generic_trainer_and_reproducible(plugin, make_history, fold) -> None:
    cfg = small(ForecastConfig(models={NAME: {"scale": 0.5}}))
    history = make_history()
    model = make_forecaster(NAME, cfg, seed=3)
    assert model.network == LastDaySettings(scale=0.5)
    dates = history.features.index[-20:]
    known = history.upto(fold.cutoff)
    first = model.fit(known, fold).predict(history, dates)
    again = make_forecaster(NAME, cfg, seed=3).fit(known, fold).predict(history, dates)
    assert np.isfinite(first).all() and first.std() > 0
    pd.testing.assert_series_equal(first, again, check_exact=True)  # bit-identical under a seed


def test_tuned_for_two_trials_over_its_own_space(plugin, make_history, fold) -> None:
    cfg = small(ForecastConfig())
    result = tune(
        make_history().upto(fold.cutoff),
        fold,
        cfg,
        optuna.storages.InMemoryStorage(),
        model=NAME,
        n_trials=2,
        space=TrainingSpace(lookback=(5, 8), batch_size=(32, 64)),
    )
    assert result.n_trials == 2 and sum(result.states.values()) == 2
    assert "scale" in result.pareto.columns and result.pareto["scale"].between(0.1, 2.0).all()


def test_run_and_reported(plugin, real_market, results_document) -> None:
    market, coins = real_market
    cfg = load_config(
        None,
        {
            "n_jobs": 1,
            "universe.top_n": 3,
            "backtest.start": "2023-04-01",
            "backtest.end": "2023-04-30",
            "forecast.forecasters": [NAME, "zero"],
            "forecast.training": {"lookback": 5, "max_epochs": 2},
            "portfolio.objectives": ["max_sharpe"],
        },
    )
    result = run_study(build_panel(market, coins, cfg.quality), cfg)
    doc = results_document(result)
    assert doc["forecasts"]["forecasters"][0] == {
        "name": NAME,
        "label": LABEL,
        "colour": COLOUR,
        "kind": "learned",
    }
    assert f"{NAME}/max_sharpe" in doc["strategies"]
    assert doc["primary"]["declared"]["learned"] == [NAME]
    html = render_report(doc, report_frames(result))
    assert LABEL in html  # the headline names it by its label
    assert COLOUR in html.lower()  # and the charts draw it in its colour
