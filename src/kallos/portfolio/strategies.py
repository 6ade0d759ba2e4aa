"""Strategies: how target weights are chosen at a rebalance.

* :class:`ForecastStrategy` - a forecaster's expected returns through the shared
  mean-variance optimiser (``gru``, ``historical_mean``, ``naive_persistence``);
* :class:`MarketCapStrategy` - the capped market-cap benchmark, rebalanced monthly at the
  universe selection and drifting in between;
* :class:`EqualWeightStrategy` - 1/N of the universe at every rebalance.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal

import pandas as pd

from kallos.data.universe import capped_weights
from kallos.portfolio.optimizer import MeanVariance
from kallos.types import OptimizationResult

__all__ = [
    "BENCHMARKS",
    "EqualWeightStrategy",
    "ForecastStrategy",
    "MarketCapStrategy",
    "RebalanceContext",
    "Strategy",
]


@dataclass(frozen=True)
class RebalanceContext:
    """What is known at the close of ``date`` for choosing weights.

    Attributes
    ----------
    date : the decision date; trades go into ``date + 1``.
    universe : investable coins for ``date + 1``'s month.
    cov_matrix : annualised covariance of trailing daily simple returns (universe × universe).
    market_caps : USD market caps at the universe selection date.
    expected_returns : per forecaster, annualised simple expected returns over the universe
        (NaN where a forecast is missing).
    is_reconstitution : True at month ends, when the universe is re-selected.
    returns : shape (lookback days, universe), the trailing daily simple returns the covariance
        was estimated from (ending at ``date``): the scenarios of a scenario objective
        (``min_cvar``); None when not supplied.
    """

    date: pd.Timestamp
    universe: list[str]
    cov_matrix: pd.DataFrame
    market_caps: pd.Series
    expected_returns: Mapping[str, pd.Series] = field(default_factory=dict)
    is_reconstitution: bool = False
    returns: pd.DataFrame | None = field(default=None, repr=False)


class Strategy(ABC):
    """Chooses target weights at a rebalance."""

    name: str
    objective: str | None = None
    #: "every": trades at every rebalance date; "reconstitution": only when the universe is re-selected.
    rebalance_on: ClassVar[Literal["every", "reconstitution"]] = "every"

    @property
    def key(self) -> str:
        """Variant key, e.g. ``gru/max_sharpe`` or ``market_cap``."""
        return f"{self.name}/{self.objective}" if self.objective else self.name

    def trades_on(self, ctx: RebalanceContext) -> bool:
        return self.rebalance_on == "every" or ctx.is_reconstitution

    @abstractmethod
    def target(self, ctx: RebalanceContext, current_weights: pd.Series | None = None) -> OptimizationResult:
        """Target weights at ``ctx.date``; ``current_weights``: drifted holdings (None at the start)."""


class ForecastStrategy(Strategy):
    """Mean-variance weights from one forecaster's expected returns.

    Coins without a forecast are left out of the optimisation (recorded in the fallback
    chain); if too few remain for the weight cap, the universe is held equally weighted.
    """

    def __init__(self, forecaster: str, optimizer: MeanVariance) -> None:
        self.name = forecaster
        self.optimizer = optimizer
        self.objective = optimizer.objective

    def target(self, ctx: RebalanceContext, current_weights: pd.Series | None = None) -> OptimizationResult:
        mu = ctx.expected_returns.get(self.name, pd.Series(dtype=float)).reindex(ctx.universe)
        missing = list(mu.index[mu.isna()])
        chain = [f"no forecast for {missing}: left out"] if missing else []
        mu = mu.dropna()
        if len(mu) == 0 or self.optimizer.max_weight * len(mu) < 1 - 1e-12:
            weights = pd.Series(1.0 / len(ctx.universe), index=ctx.universe)
            chain.append("too few forecasts for the weight cap: equal weight")
            return OptimizationResult(weights, self.objective, "equal_weight", tuple(chain))
        cov = ctx.cov_matrix.loc[mu.index, mu.index]
        res = self.optimizer.fit(mu, cov, current_weights, returns=ctx.returns).result_
        weights = res.weights.reindex(ctx.universe, fill_value=0.0)
        return replace(res, weights=weights, fallback_chain=tuple(chain) + res.fallback_chain)


class MarketCapStrategy(Strategy):
    """Market-cap weights capped at ``max_weight``; rebalanced when the universe is re-selected."""

    name = "market_cap"
    rebalance_on = "reconstitution"

    def __init__(self, max_weight: float = 0.35) -> None:
        self.max_weight = max_weight

    def target(self, ctx: RebalanceContext, current_weights: pd.Series | None = None) -> OptimizationResult:
        weights = capped_weights(ctx.market_caps.reindex(ctx.universe), self.max_weight)
        return OptimizationResult(weights, "market_cap", "market_cap")


class EqualWeightStrategy(Strategy):
    """1/N of the universe at every rebalance."""

    name = "equal_weight"

    def target(self, ctx: RebalanceContext, current_weights: pd.Series | None = None) -> OptimizationResult:
        weights = pd.Series(1.0 / len(ctx.universe), index=ctx.universe)
        return OptimizationResult(weights, "equal_weight", "equal_weight")


BENCHMARKS: dict[str, type[Strategy]] = {
    "market_cap": MarketCapStrategy,
    "equal_weight": EqualWeightStrategy,
}
