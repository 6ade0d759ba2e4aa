"""Check a study config's names against the stages' registries.

:class:`kallos.config.StudyConfig` validates everything it can alone (types, ranges, dates,
feasibility). Names that live in a stage's registry are checked here, after loading, so that
``kallos.config`` imports no stage (building a config loads neither torch nor cvxpy, and no
stage can import the config back in a circle):

* forecasters and their ``forecast.models.<name>`` settings, through their specs
  (:func:`kallos.forecast.registry.check_config`);
* ``portfolio.objectives`` and the objective in ``trading.strategy``
  (:data:`kallos.portfolio.optimizer.OBJECTIVES`);
* the rule names of ``trading.max_findings`` (:data:`kallos.data.check.CHECKS`);
* the parameter names of ``forecast.tuning.space`` (:func:`kallos.forecast.tuned.check_space`).
"""

from __future__ import annotations

from kallos.config import StudyConfig
from kallos.data.check import CHECKS
from kallos.exceptions import ConfigError
from kallos.forecast.registry import check_config as check_forecasters
from kallos.forecast.tuned import check_space
from kallos.portfolio.optimizer import OBJECTIVES

__all__ = ["validate_study"]

BENCHMARK_STRATEGIES = ("market_cap", "equal_weight")


def validate_study(config: StudyConfig) -> StudyConfig:
    """Return ``config`` unchanged once every registered name in it is known.

    Call it on every loaded config: ``validate_study(load_config(path, overrides))``.

    Raises
    ------
    ConfigError
        Naming the key and the known choices: an unknown forecaster or setting (see
        :func:`kallos.forecast.registry.check_config`), objective, ``trading.strategy`` or
        ``trading.max_findings`` rule, ``forecast.tuning.space`` parameter.
    """
    check_forecasters(config)
    check_space(config.forecast)
    objectives = sorted(OBJECTIVES)
    if unknown := [o for o in config.portfolio.objectives if o not in OBJECTIVES]:
        raise ConfigError(f"portfolio.objectives: unknown {unknown}; choose from {objectives}")
    strategy = config.trading.strategy
    name, _, objective = strategy.partition("/")
    if strategy not in BENCHMARK_STRATEGIES and (not name or objective not in OBJECTIVES):
        raise ConfigError(
            f"trading.strategy={strategy!r}: expected <forecaster>/<objective> "
            f"(objectives {objectives}), market_cap or equal_weight"
        )
    if unknown := [r for r in config.trading.max_findings if r not in CHECKS]:
        raise ConfigError(f"trading.max_findings: unknown rule(s) {unknown}; choose from {list(CHECKS)}")
    return config
