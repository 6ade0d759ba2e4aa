"""Direct CLARABEL path for the continuous (non-integer) mean-variance problems.

cvxpy spends ~1.5 ms of Python per re-solve (parameter mapping, reductions, a fresh solver)
on problems Clarabel itself solves in ~0.3 ms. Here the same problem is assembled straight in
Clarabel's standard form ``min 1/2 z'Pz + q'z`` s.t. ``Az + slack = b``, ``slack ∈ K``
(Goulart & Chen (2024), "Clarabel: an interior-point solver for conic programs with quadratic
objectives"); its sparsity pattern and index maps are built once per (objective, n, constraint
set), and each solve hands the new non-zero values to a fresh ``DefaultSolver`` (presolve off).

A fresh solver, not ``DefaultSolver.update``: an updated solver keeps state from its earlier
solves, so its weights depended on the rebalances before (by ~1e-11). A fresh one makes every
solve a pure function of its inputs, which lets a trading cycle recompute one period's decision
bit for bit as the backtest took it (:func:`kallos.pipeline.study.decide_period`); it costs no
measurable time at these sizes.

Decision vector ``z = (x, s, t)``: ``x`` (n) the (scaled) weights, ``s`` the homogenising scale
(``s = 1`` for ordinary objectives, ``s = kappa`` for ``max_sharpe``) and ``t`` (n, only with a
turnover limit) the absolute trades. Every objective is the same data: the weights
``(risk, l2, ret)`` of ``risk x'cov x + l2 ||x||^2 - ret (mu - rf)'x`` and at most one extra
constraint from :data:`EXTRA_CONSTRAINTS`. The constraints are those of the cvxpy problem in
:mod:`kallos.portfolio.optimizer`, written homogeneously in ``(x, s)``:

* zero cone: ``s = 1`` (not homogeneous), ``sum x = s`` (fully invested);
* non-negative cone: ``lower s <= x <= upper s``, ``s >= 0``, ``sum x <= s`` (cash),
  ``-t <= x - s w_drift <= t``, ``sum t <= budget s`` (turnover);
* plus the objective's extra row(s).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import clarabel
import numpy as np
from cvxpy.reductions.solvers.conic_solvers.clarabel_conif import CLARABEL
from scipy import sparse

__all__ = ["DIRECT_SOLVER", "EXTRA_CONSTRAINTS", "DirectProblem"]

DIRECT_SOLVER = "CLARABEL(direct)"

# An extra constraint: (excess (n,), factor (n, n), scalar) -> (cone, x block (k, n), s column (k,), b (k,)).
ExtraRows = Callable[[np.ndarray, np.ndarray, float], tuple[str, np.ndarray, np.ndarray, np.ndarray]]

EXTRA_CONSTRAINTS: dict[str, ExtraRows] = {
    # (mu - rf)'y = 1: the homogenised max_sharpe normalisation.
    "excess_eq_one": lambda e, f, v: ("zero", e[None, :], np.zeros(1), np.ones(1)),
    # (mu - rf)'x >= v s: efficient_return's target (v already net of rf).
    "excess_floor": lambda e, f, v: ("nonneg", -e[None, :], np.array([v]), np.zeros(1)),
    # ||F x|| <= sqrt(v) s: efficient_risk's cap on the annual variance v.
    "risk_cap": lambda e, f, v: (
        "soc",
        np.vstack([np.zeros(len(e)), -f]),
        np.r_[-np.sqrt(max(v, 0.0)), np.zeros(len(e))],
        np.zeros(len(e) + 1),
    ),
}
"""Extra constraints by name, each a function returning its rows in ``Az + slack = b`` form."""

#: Tighter than Clarabel's defaults (1e-8): efficient_risk's optimum is flat along the risk cap, so
#: 1e-8 leaves weights ~3e-5 apart from PyPortfolioOpt's; 1e-10 costs about two iterations.
TOLERANCES = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10, "tol_ktratio": 1e-8}

_CONES = {"zero": clarabel.ZeroConeT, "nonneg": clarabel.NonnegativeConeT, "soc": clarabel.SecondOrderConeT}


class ConicObjective(Protocol):
    """What the direct path needs of an objective (see ``optimizer.Objective``)."""

    name: str
    homogeneous: bool
    extra: str | None

    def terms(self, scalar: float) -> tuple[float, float, float]: ...


class DirectProblem:
    """One continuous problem in Clarabel's standard form, re-solved from its new data each time.

    Parameters
    ----------
    objective : the objective's data (``terms``, ``extra``, ``homogeneous``).
    n : number of assets.
    cash : weights may sum below 1 (``sum x <= s``) instead of exactly 1.
    turnover : add the turnover variables and rows.
    """

    def __init__(self, objective: ConicObjective, n: int, cash: bool, turnover: bool) -> None:
        self.objective, self.n, self.cash, self.turnover = objective, n, cash, turnover
        self.nz = 2 * n + 1 if turnover else n + 1
        ones = np.ones(n)
        # Structural pattern: every datum that can be non-zero set to one.
        probe = (ones, np.eye(n) + 1.0, (ones, ones), 1.0, (ones, 1.0))
        p_probe, _, a_probe, _, self.cones = self._assemble(*probe)  # cones: [(kind, size)]
        self._p_pattern = sparse.csc_matrix(np.triu(p_probe != 0).astype(float))
        self._a_pattern = sparse.csc_matrix((a_probe != 0).astype(float))
        self._p_index = _column_major_index(np.triu(p_probe != 0))
        self._a_index = _column_major_index(a_probe != 0)

    def solve(
        self,
        excess: np.ndarray,
        factor: np.ndarray,
        bounds: tuple[np.ndarray, np.ndarray],
        scalar: float,
        turnover: tuple[np.ndarray, float],
    ) -> tuple[np.ndarray | None, str]:
        """Weights ``x / s`` (shape (n,)) and the cvxpy status name; ``(None, status)`` on failure.

        Arguments as ``optimizer._Problem.solve``: annual excess returns, ``F`` with
        ``F'F = cov``, ``(lower, upper)``, the objective's scalar, ``(w_drift, budget)``.
        """
        p_dense, q, a_dense, b, _ = self._assemble(excess, factor, bounds, scalar, turnover)
        p_data = p_dense.ravel(order="F")[self._p_index]
        a_data = a_dense.ravel(order="F")[self._a_index]
        try:
            solution = self._new_solver(p_data, q, a_data, b).solve()
        except Exception as err:  # any solver failure hands over to the cvxpy path
            return None, f"solver error ({type(err).__name__}: {err})"[:200]
        status = CLARABEL.STATUS_MAP.get(str(solution.status), "solver_error")
        if status not in ("optimal", "optimal_inaccurate"):
            return None, status
        z = np.asarray(solution.x, dtype=float)
        scale = z[self.n]
        if not scale > 0:
            return None, "degenerate scale"
        return z[: self.n] / scale, status

    def _new_solver(self, p_data, q, a_data, b) -> clarabel.DefaultSolver:
        settings = clarabel.DefaultSettings()
        settings.verbose = False
        settings.presolve_enable = False  # the fixed sparsity pattern (and the study's numbers) rely on it
        settings.input_sparse_dropzeros = False
        for name, value in TOLERANCES.items():
            setattr(settings, name, value)
        p, a = self._p_pattern.copy(), self._a_pattern.copy()
        p.data, a.data = p_data, a_data
        cones = [_CONES[kind](size) for kind, size in self.cones]
        return clarabel.DefaultSolver(p, q, a, b, cones, settings)

    def _assemble(
        self,
        excess: np.ndarray,
        factor: np.ndarray,
        bounds: tuple[np.ndarray, np.ndarray],
        scalar: float,
        turnover: tuple[np.ndarray, float],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[tuple[str, int]]]:
        """Dense ``P`` (nz, nz), ``q``, ``A`` (m, nz), ``b`` and the cones as ``(kind, size)``."""
        n, nz = self.n, self.nz
        risk, l2, ret = self.objective.terms(scalar)
        p = np.zeros((nz, nz))
        p[:n, :n] = 2.0 * risk * (factor.T @ factor) + 2.0 * l2 * np.eye(n)
        q = np.zeros(nz)
        q[:n] = -ret * excess
        eye, zeros = np.eye(n), np.zeros(n)
        lower, upper = bounds
        rows: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]]] = {
            "zero": [],
            "nonneg": [],
            "soc": [],
        }
        if not self.objective.homogeneous:
            rows["zero"].append((zeros[None, :], np.ones(1), None, np.ones(1)))  # s = 1
        budget_row = "nonneg" if self.cash else "zero"
        rows[budget_row].append((np.ones((1, n)), -np.ones(1), None, np.zeros(1)))  # sum x (<=|=) s
        rows["nonneg"] += [
            (-eye, lower, None, zeros),  # lower s <= x
            (eye, -upper, None, zeros),  # x <= upper s
            (zeros[None, :], -np.ones(1), None, np.zeros(1)),  # s >= 0
        ]
        if self.turnover:
            w_drift, budget = turnover
            rows["nonneg"] += [
                (eye, -w_drift, -eye, zeros),  # x - s w_drift <= t
                (-eye, w_drift, -eye, zeros),  # s w_drift - x <= t
                (zeros[None, :], -np.array([budget]), np.ones((1, n)), np.zeros(1)),  # sum t <= budget s
            ]
        if self.objective.extra is not None:
            cone, x_block, s_col, b_extra = EXTRA_CONSTRAINTS[self.objective.extra](excess, factor, scalar)
            rows[cone].append((x_block, s_col, None, b_extra))
        blocks, rhs, cones = [], [], []
        for cone, parts in rows.items():
            size = sum(len(b_part) for *_, b_part in parts)
            if size:
                cones.append((cone, size))
            for x_block, s_col, t_block, b_part in parts:
                block = np.zeros((len(b_part), nz))
                block[:, :n] = x_block
                block[:, n] = s_col
                if t_block is not None:
                    block[:, n + 1 :] = t_block
                blocks.append(block)
                rhs.append(b_part)
        return p, q, np.vstack(blocks), np.concatenate(rhs), cones


def _column_major_index(mask: np.ndarray) -> np.ndarray:
    """Flat column-major positions of ``mask``'s true entries: the order of a CSC matrix's data."""
    return np.flatnonzero(mask.ravel(order="F"))
