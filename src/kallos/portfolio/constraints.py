"""The constraint set shared by every objective, each constraint written once as rows of a :class:`Problem`.

Every row is homogeneous in ``(x, s)``: ``x`` the (scaled) weights and ``s`` the scale (``s = 1``
for ordinary objectives, ``s = kappa`` for the homogenised ``max_sharpe``), so the same rows serve
both. Both back-ends (:mod:`kallos.portfolio.backends`) compile them:

* budget: ``sum x = s`` (fully invested), or ``sum x <= s`` with the rest in cash;
* bounds: ``lower s <= x <= upper s``, ``s >= 0``;
* turnover: ``-t <= x - s w_drift <= t``, ``sum t <= budget s`` (``t`` the absolute trades);
* cardinality (mixed-integer only): binaries ``z``, ``x <= upper z``, ``x >= floor z`` and
  ``sum z >= min_names`` (big-M ``K >= kappa*`` for the homogenised form:
  ``s <= K``, ``x <= max_weight K z``, ``x >= floor s - floor K (1 - z)``).

:func:`formulate` assembles a whole problem: these rows, then the objective's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kallos.exceptions import ConfigError, OptimizationError
from kallos.portfolio.problem import Problem, ProblemData

if TYPE_CHECKING:
    from kallos.portfolio.objectives.base import Objective

__all__ = [
    "PortfolioConstraints",
    "add_bounds",
    "add_budget",
    "add_cardinality",
    "add_turnover",
    "formulate",
]


@dataclass(frozen=True)
class PortfolioConstraints:
    """Constraint set shared by every objective.

    Attributes
    ----------
    max_weight : upper bound per asset (fraction of portfolio value).
    min_names : names that must be held, each at ``>= min_weight_held`` (true cardinality).
    min_weight_held : minimum weight of a held name; smaller weights are not allowed (0 or this).
    turnover_limit : ``sum |w - w_drift| <= turnover_limit`` (one-way traded fraction) against the
        drifted weights, when given; None = off.
    allow_cash : weights may sum below 1, the rest earning the risk-free rate.
    bounds : per-asset ``(lower, upper)`` overriding ``(0, max_weight)`` for the named assets.

    Raises
    ------
    ConfigError
        If the set is infeasible whatever the data (messages name the keys).
    """

    max_weight: float = 0.35
    min_names: int = 3
    min_weight_held: float = 1e-4
    turnover_limit: float | None = None
    allow_cash: bool = False
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.max_weight <= 1:
            raise ConfigError(f"portfolio.max_weight={self.max_weight} must be in (0, 1]")
        if self.min_names < 1:
            raise ConfigError(f"portfolio.min_names={self.min_names} must be >= 1")
        if not 0 <= self.min_weight_held <= self.max_weight:
            raise ConfigError(
                f"portfolio.min_weight_held={self.min_weight_held} "
                f"must be in [0, max_weight={self.max_weight}]"
            )
        if self.min_weight_held * self.min_names > 1 + 1e-12:
            raise ConfigError(
                f"portfolio.min_weight_held={self.min_weight_held} x min_names={self.min_names} > 1: "
                "the held names cannot fit in the portfolio"
            )
        if self.turnover_limit is not None and self.turnover_limit <= 0:
            raise ConfigError(f"portfolio.turnover_limit={self.turnover_limit} must be > 0 (or unset)")
        for name, (lo, hi) in self.bounds.items():
            if not 0 <= lo <= hi:
                raise ConfigError(f"portfolio bounds for {name!r}: need 0 <= lower <= upper, got {(lo, hi)}")

    @property
    def held_floor(self) -> float:
        """The minimum weight of a held name used in the mixed-integer problem (> 0)."""
        return max(self.min_weight_held, 1e-5)

    def bound_arrays(self, assets: pd.Index) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` per asset, shape (n,) each."""
        if not self.bounds:
            return np.zeros(len(assets)), np.full(len(assets), float(self.max_weight))
        lower = np.array([self.bounds.get(a, (0.0, self.max_weight))[0] for a in assets], dtype=float)
        upper = np.array([self.bounds.get(a, (0.0, self.max_weight))[1] for a in assets], dtype=float)
        return lower, np.minimum(upper, self.max_weight)


def add_budget(p: Problem, cash: bool) -> None:
    """``sum x = s``; with ``cash``, ``sum x <= s`` (the rest earns the risk-free rate)."""
    p.constrain("nonneg" if cash else "zero", {"x": -np.ones((1, p.n)), "s": np.ones(1)}, np.zeros(1))


def add_bounds(p: Problem) -> None:
    """``lower s <= x <= upper s`` and ``s >= 0``."""
    eye, zeros = np.eye(p.n), np.zeros(p.n)
    p.constrain("nonneg", {"x": eye, "s": -p.data.lower}, zeros)
    p.constrain("nonneg", {"x": -eye, "s": p.data.upper}, zeros)
    p.constrain("nonneg", {"s": np.ones(1)}, np.zeros(1))


def add_turnover(p: Problem) -> None:
    """``sum |x - s w_drift| <= budget s`` with the absolute trades ``t``: ``-t <= x - s w_drift <= t``."""
    n, eye, zeros = p.n, np.eye(p.n), np.zeros(p.n)
    w_drift = p.data.w_drift
    p.variable("trade", n)
    p.constrain("nonneg", {"x": -eye, "s": w_drift, "trade": eye}, zeros)  # t >= x - s w_drift
    p.constrain("nonneg", {"x": eye, "s": -w_drift, "trade": eye}, zeros)  # t >= s w_drift - x
    p.constrain("nonneg", {"s": np.array([p.data.budget]), "trade": -np.ones((1, n))}, np.zeros(1))


def add_cardinality(p: Problem, constraints: PortfolioConstraints) -> None:
    """Binaries ``z``: at least ``min_names`` names held, each at ``>= held_floor`` (module docstring).

    Raises
    ------
    OptimizationError
        For the homogenised form without ``p.data.big_m`` (a coding error, not a data error).
    """
    n, eye = p.n, np.eye(p.n)
    floor = constraints.held_floor
    p.variable("z", n, boolean=True)
    if p.homogeneous:
        big_m = p.data.big_m
        if big_m is None:
            raise OptimizationError("the homogenised cardinality problem needs a big-M")
        p.constrain("nonneg", {"s": -np.ones(1)}, np.array([big_m]))  # s <= K
        p.constrain("nonneg", {"x": -eye, "z": constraints.max_weight * big_m * eye}, np.zeros(n))
        # x >= floor s - floor K (1 - z)
        p.constrain(
            "nonneg",
            {"x": eye, "s": np.full(n, -floor), "z": -floor * big_m * eye},
            np.full(n, floor * big_m),
        )
    else:
        p.constrain("nonneg", {"x": -eye, "z": np.diag(p.data.upper)}, np.zeros(n))  # x <= upper z
        p.constrain("nonneg", {"x": eye, "z": -floor * eye}, np.zeros(n))  # x >= floor z
    p.constrain("nonneg", {"z": np.ones((1, n))}, np.array([-float(constraints.min_names)]))


def formulate(
    objective: Objective, data: ProblemData, constraints: PortfolioConstraints, mip: bool = False
) -> Problem:
    """The whole problem: ``s``, budget, bounds, turnover, cardinality (``mip``), then the objective."""
    p = Problem(data, homogeneous=objective.homogeneous, mip=mip)
    add_budget(p, cash=constraints.allow_cash and objective.cash_ok)
    add_bounds(p)
    if constraints.turnover_limit is not None:
        add_turnover(p)
    if mip:
        add_cardinality(p, constraints)
    objective.build(p)
    return p
