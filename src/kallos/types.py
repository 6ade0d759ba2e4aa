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
    "BacktestResult",
    "OptimizationResult",
]

PERIODS_PER_YEAR: Final[int] = 365
"""Trading days per year for daily crypto data (markets never close)."""


@dataclass(frozen=True)
class OptimizationResult:
    """Weights chosen at one rebalance, with the record of how they were obtained.

    Attributes
    ----------
    weights : pd.Series
        Index ``coin_id``; long-only weights summing to 1 (fully invested, no cash).
    objective_requested : str
        The objective the strategy asked for (e.g. ``"max_sharpe"``).
    objective_used : str
        The objective that produced ``weights``; differs from ``objective_requested``
        when a fallback applied.
    fallback_chain : tuple of str
        One entry per failed attempt, ``"<objective>: <reason>"``; empty when the
        requested objective succeeded.
    """

    weights: pd.Series
    objective_requested: str
    objective_used: str
    fallback_chain: tuple[str, ...] = ()

    @property
    def used_fallback(self) -> bool:
        return bool(self.fallback_chain)


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
