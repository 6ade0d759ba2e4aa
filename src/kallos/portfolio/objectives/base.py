"""What an objective is: a name, a few flags, and :meth:`Objective.build`, its one definition."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from kallos.exceptions import ConfigError

if TYPE_CHECKING:
    from kallos.portfolio.problem import Problem

__all__ = ["Objective"]


class Objective(ABC):
    """One portfolio objective, written once as terms and rows of a :class:`~.problem.Problem`.

    :meth:`build` adds the objective's terms (and any rows of its own) to a problem that already
    holds the shared constraint set (:mod:`kallos.portfolio.constraints`); both back-ends
    (:mod:`kallos.portfolio.backends`) compile the result. Adding an objective is one module
    with a subclass, one line in :data:`kallos.portfolio.objectives.OBJECTIVES` and its tests.

    Class attributes
    ----------------
    name : the registry key and config name (``portfolio.objectives``).
    homogeneous : the decision is ``x = kappa w`` with scale ``s = kappa`` (``max_sharpe``).
    cash_ok : with ``portfolio.allow_cash`` the weights may sum below 1.
    needs_scenarios : :meth:`MeanVariance.fit` must be given scenario returns.
    setting : the :class:`~kallos.portfolio.optimizer.MeanVariance` attribute (and
        ``portfolio.<setting>`` key) holding the objective's parameter; None = none.
    """

    name: ClassVar[str]
    homogeneous: ClassVar[bool] = False
    cash_ok: ClassVar[bool] = True
    needs_scenarios: ClassVar[bool] = False
    setting: ClassVar[str | None] = None

    @abstractmethod
    def build(self, p: Problem) -> None:
        """Add the objective to ``p``; its parameter is ``p.data.scalar`` (see :meth:`parameter`)."""

    def parameter(self, value: float, risk_free_rate: float) -> float:
        """The number :meth:`build` sees as ``p.data.scalar``, from the setting's value."""
        return value

    def check(self, value: float | None) -> None:
        """Raise ConfigError unless the setting's value is usable (default: ``> 0``)."""
        if value is None or not value > 0:
            raise ConfigError(f"portfolio.{self.setting}={value} must be > 0")

    def infeasible_reason(self, constraints: str, value: float | None) -> str:
        """Why an infeasible status came back; ``constraints`` describes the set, ``value`` the setting."""
        return f"no portfolio satisfies {constraints}"
