"""A forecaster plug-in's description: what the registry, the config, tuning and the report need.

A plug-in module defines a pydantic settings model (the table ``forecast.models.<name>``),
a builder and, for a tunable model, an Optuna search space, and exposes one or more
:class:`ForecasterSpec`. :mod:`kallos.forecast.registry` lists the specs, one line each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from kallos.config import ForecastConfig
from kallos.exceptions import ConfigError
from kallos.forecast.base import BaseForecaster

__all__ = ["ForecasterKind", "ForecasterSpec", "SearchSpace"]

ForecasterKind = Literal["learned", "baseline", "ensemble"]

#: ``trial -> settings`` overrides for ``forecast.models.<name>``: calls ``trial.suggest_*``
#: (an :class:`optuna.Trial`) and returns the sampled values by settings field name.
SearchSpace = Callable[[Any], dict[str, Any]]

#: ``(settings, forecast config, seed, device) -> unfitted forecaster``; an ensemble's builder
#: also takes ``make=(name, seed) -> forecaster`` to build its members through the registry.
Builder = Callable[..., BaseForecaster]


@dataclass(frozen=True)
class ForecasterSpec:
    """One registered forecaster.

    Attributes
    ----------
    name : registry name, used in ``forecast.forecasters`` and in variant keys (``gru/max_sharpe``).
    settings : pydantic model of ``forecast.models.<name>`` (strict: unknown keys are errors).
    build : ``(settings, forecast config, seed, device) -> forecaster``.
    kind : ``"learned"`` (trained model), ``"baseline"`` (simple estimate) or ``"ensemble"``
        (combines other registered forecasters' forecasts; its settings have ``members``).
    defaults : this spec's defaults for ``settings`` fields (``lstm`` is the recurrent
        settings with ``cell = "lstm"``); the user's table overrides them.
    search_space : Optuna space over ``settings`` fields (``None``: not tunable).
    label : display name in reports (``"GRU"``).
    colour : hex colour of the forecaster in every chart.
    description : one line for ``kallos`` help and the report.
    """

    name: str
    settings: type[BaseModel]
    build: Builder
    kind: ForecasterKind = "learned"
    defaults: Mapping[str, Any] = field(default_factory=dict)
    search_space: SearchSpace | None = None
    label: str = ""
    colour: str = "#7f7f7f"
    description: str = ""

    def resolve(
        self, raw: Mapping[str, Any] | None = None, overrides: Mapping[str, Any] | None = None
    ) -> BaseModel:
        """The validated settings: the spec's defaults, then ``raw`` (``forecast.models.<name>``),
        then ``overrides`` (e.g. a tuning trial's values).

        Raises
        ------
        ConfigError
            Naming every offending ``forecast.models.<name>.<key>``.
        """
        data = {**self.defaults, **(raw or {}), **(overrides or {})}
        try:
            return self.settings.model_validate(data)
        except ValidationError as err:
            lines = []
            for e in err.errors():
                key = ".".join(str(p) for p in e["loc"])
                msg = "unknown key (check the spelling)" if e["type"] == "extra_forbidden" else e["msg"]
                fields = ", ".join(sorted(self.settings.model_fields)) or "none"
                lines.append(f"  forecast.models.{self.name}.{key}: {msg} (settings: {fields})")
            raise ConfigError(
                f"invalid settings for forecaster {self.name!r}:\n" + "\n".join(lines)
            ) from None

    def make(
        self,
        config: ForecastConfig,
        seed: int = 0,
        device: str = "cpu",
        overrides: Mapping[str, Any] | None = None,
        make: Callable[[str, int], BaseForecaster] | None = None,
    ) -> BaseForecaster:
        """An unfitted forecaster with the settings of ``config.models[name]`` (then ``overrides``).

        ``make`` builds an ensemble's members (the registry passes its own ``make_forecaster``).
        """
        settings = self.resolve(config.settings_for(self.name), overrides)
        if self.kind == "ensemble":
            return self.build(settings, config, seed, device, make=make)
        return self.build(settings, config, seed, device)

    @property
    def display(self) -> dict[str, str]:
        """``name``, ``label``, ``colour`` and ``kind``, as the report reads them from ``results.json``."""
        return {"name": self.name, "label": self.label or self.name, "colour": self.colour, "kind": self.kind}
