"""Small frozen containers handed from one pipeline stage to the next, and shared constants.

Conventions used throughout Kallos
----------------------------------
* One row per coin per UTC day, stamped at that day's close (00:00 UTC of the next day).
  Dates are tz-naive ``datetime64`` values that *mean* UTC calendar days.
* A decision taken at the close of day ``t`` uses data up to and including ``t`` and
  earns returns from ``t + 1`` onward.
* Daily returns are simple returns unless a name says ``log``. Simple returns aggregate
  across assets; log returns aggregate across time.
* Annualisation uses :data:`PERIODS_PER_YEAR` = 365 because crypto trades every day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import pandas as pd

__all__ = [
    "PERIODS_PER_YEAR",
    "Attempt",
    "BacktestResult",
    "OptimizationResult",
    "Variant",
]

PERIODS_PER_YEAR: Final[int] = 365
"""Trading days per year for daily crypto data (markets never close)."""


@dataclass(frozen=True)
class Attempt:
    """One try of an optimiser's fallback chain: ``(objective, solver, status, reason)``."""

    objective: str
    solver: str
    status: str
    reason: str = ""

    def __str__(self) -> str:
        head = f"{self.objective} ({self.solver} {self.status})"
        return f"{head}: {self.reason}" if self.reason else head


@dataclass(frozen=True)
class OptimizationResult:
    """Weights chosen at one rebalance, with the record of how they were obtained.

    Attributes
    ----------
    weights : pd.Series
        Index ``coin_id``; long-only weights summing to 1 (or to less with
        ``portfolio.allow_cash``, the rest in cash).
    objective_requested : str
        The objective the strategy asked for (e.g. ``"max_sharpe"``).
    objective_used : str
        The objective that produced ``weights``; differs from ``objective_requested``
        when a fallback applied.
    fallback_chain : tuple of str
        One entry per failed attempt, ``"<objective> (<solver> <status>): <reason>"``; empty when
        the requested objective succeeded.
    solver : str
        The solver that produced ``weights`` (``"CLARABEL(direct)"``, ``"CLARABEL"``, ``"SCIP"``;
        ``"none"`` for equal weight; empty for rule-based weights such as the benchmarks).
    attempts : tuple of Attempt
        Every attempt in order, the failed ones and the one used (empty for rule-based weights).
    """

    weights: pd.Series
    objective_requested: str
    objective_used: str
    fallback_chain: tuple[str, ...] = ()
    solver: str = ""
    attempts: tuple[Attempt, ...] = field(default=(), repr=False)

    @property
    def used_fallback(self) -> bool:
        return bool(self.fallback_chain)

    def describe(self) -> str:
        """The chain as one line, e.g.

        ``max_sharpe (precheck infeasible): no portfolio ... → min_volatility (CLARABEL optimal)``.
        """
        return " → ".join(str(a) for a in self.attempts)


@dataclass(frozen=True)
class BacktestResult:
    """Daily outcome of holding a sequence of target weights.

    Attributes
    ----------
    returns_gross : pd.Series
        Daily simple portfolio returns before costs, indexed by date (day ``t+1`` earns
        on the weights decided at the close of ``t``).
    returns_net : pd.Series
        Daily simple returns after transaction costs.
    turnover : pd.Series
        One-way turnover traded at the close of each date, ``sum(|w_target - w_drifted|)``,
        as a fraction of portfolio value (0 on non-rebalance days). Indexed by the decision date.
    costs : pd.Series
        Cost charged at each decision date, as a fraction of portfolio value.
    holdings : pd.DataFrame
        Start-of-day weights (after drift) for every day of ``returns_gross``; columns ``coin_id``.
    missing_returns : int
        Held coin-days whose return was unknown and taken as 0.
    """

    returns_gross: pd.Series
    returns_net: pd.Series
    turnover: pd.Series
    costs: pd.Series
    holdings: pd.DataFrame = field(repr=False)
    missing_returns: int = 0


@dataclass(frozen=True, order=True)
class Variant:
    """One strategy of a study: a strategy (forecaster or benchmark) under an objective.

    ``key`` is the variant's name everywhere Kallos stores one (``"gru/max_sharpe"``; a benchmark,
    which has no objective, is just ``"market_cap"``).

    Attributes
    ----------
    strategy : forecaster name (``"gru"``, ``"zero"``, ...) or benchmark name (``"market_cap"``).
    objective : the portfolio objective (``"max_sharpe"``, ...); None for a benchmark.
    """

    strategy: str
    objective: str | None = None

    @property
    def key(self) -> str:
        """``"<strategy>/<objective>"``, or ``"<strategy>"`` for a benchmark."""
        return self.strategy if self.objective is None else f"{self.strategy}/{self.objective}"

    @property
    def is_benchmark(self) -> bool:
        """True for a benchmark (no objective, no forecast)."""
        return self.objective is None

    @classmethod
    def parse(cls, key: str | Variant) -> Variant:
        """The variant named by ``key`` (``"gru/max_sharpe"`` or ``"market_cap"``); a Variant passes through.

        Raises
        ------
        ValueError
            If ``key`` is empty or has an empty part (``"gru/"``, ``"/max_sharpe"``).
        """
        if isinstance(key, Variant):
            return key
        strategy, sep, objective = str(key).partition("/")
        if not strategy or (sep and not objective):
            raise ValueError(f"variant key {key!r}: expected '<strategy>/<objective>' or '<benchmark>'")
        return cls(strategy, objective or None)

    def __str__(self) -> str:
        return self.key
