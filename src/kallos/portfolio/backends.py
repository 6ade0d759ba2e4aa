"""The two back-ends that compile a :class:`~kallos.portfolio.problem.Problem`: CLARABEL directly, and cvxpy.

* :class:`ClarabelProgram` (solver ``"CLARABEL(direct)"``, continuous problems): the Problem's
  blocks stacked into one vector ``z``, its terms and rows into Clarabel's standard form
  ``min 1/2 z'Pz + q'z`` s.t. ``Az + slack = b``, ``slack in K`` (Goulart & Chen (2024),
  "Clarabel: an interior-point solver for conic programs with quadratic objectives"):
  ``P = sum_k 2 c_k M_k'M_k``, ``A = -[rows]``, ``b = [constants]``, rows grouped zero, non-negative,
  second-order. The sparsity pattern is taken once per layout from the Problem built on data of
  ones (:meth:`ProblemData.probe`), and each solve hands the new non-zero values to a fresh
  ``DefaultSolver`` (presolve off). A default-size (n = 5) ``max_sharpe`` rebalance takes
  ~1.4 ms this way against ~21 ms through cvxpy and ~15 ms for a fresh PyPortfolioOpt problem,
  which is why this path exists (``benchmarks/portfolio.py`` (b)). A non-zero of a Problem
  outside the compiled pattern, or another layout, is reported as a failure (never dropped).

  A fresh solver, not ``DefaultSolver.update``: an updated solver keeps state from its earlier
  solves, so its weights depended on the rebalances before (by ~1e-11). A fresh one makes every
  solve a pure function of its inputs, which lets a trading cycle recompute one period's decision
  bit for bit as the backtest took it (:func:`kallos.pipeline.study.decide_period`).
* :func:`solve_cvxpy` (solver ``"CLARABEL"``, or ``"SCIP"`` for binaries): the same blocks as
  cvxpy Variables, ``c ||M v||^2`` as ``sum_squares``, rows as ``==``, ``>=`` and ``SOC``
  constraints; built afresh for each solve (it serves the mixed-integer problems, where SCIP's
  time dwarfs cvxpy's, and the hand-over when the direct path reports no optimum).
"""

from __future__ import annotations

import clarabel
import cvxpy as cp
import numpy as np
from cvxpy.reductions.solvers.conic_solvers.clarabel_conif import CLARABEL
from scipy import sparse

from kallos.portfolio.problem import Matrix, Problem

__all__ = ["DIRECT_SOLVER", "OK_STATUSES", "TOLERANCES", "ClarabelProgram", "Solution", "solve_cvxpy"]

DIRECT_SOLVER = "CLARABEL(direct)"
OK_STATUSES = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)

#: Tighter than Clarabel's defaults (1e-8): efficient_risk's optimum is flat along the risk cap, so
#: 1e-8 leaves weights ~3e-5 apart from PyPortfolioOpt's; 1e-10 costs about two iterations.
TOLERANCES = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10, "tol_ktratio": 1e-8}

Solution = tuple[dict[str, np.ndarray] | None, str]
"""``(value of each block, or None on failure; the cvxpy status name or a reason)``."""

_CONES = {"zero": clarabel.ZeroConeT, "nonneg": clarabel.NonnegativeConeT, "soc": clarabel.SecondOrderConeT}
_CONE_ORDER = ("zero", "nonneg", "soc")


class ClarabelProgram:
    """The standard-form pattern of one problem layout; :meth:`solve` fills it with a Problem's numbers.

    Parameters
    ----------
    probe : the Problem built on :meth:`ProblemData.probe` data: its non-zeros are the pattern.

    Raises
    ------
    ValueError
        If ``probe`` has binary blocks (CLARABEL solves continuous problems only).
    """

    def __init__(self, probe: Problem) -> None:
        if probe.boolean:
            raise ValueError(f"CLARABEL cannot solve the binary blocks {sorted(probe.boolean)}")
        self.layout = probe.layout()
        p, _, a, _, self.cones = _standard_form(probe)
        p_mask, a_mask = p != 0, a != 0
        self._p_pattern = sparse.csc_matrix(p_mask.astype(float))
        self._a_pattern = sparse.csc_matrix(a_mask.astype(float))
        self._p_index = np.flatnonzero(p_mask.ravel(order="F"))  # the order of a CSC matrix's data
        self._a_index = np.flatnonzero(a_mask.ravel(order="F"))

    def solve(self, problem: Problem) -> Solution:
        """Solve ``problem`` (of this layout) with a fresh CLARABEL solver; ``(None, reason)`` on failure."""
        if problem.layout() != self.layout:
            return None, "layout differs from the compiled pattern"
        p, q, a, b, _ = _standard_form(problem)
        p_data = p.ravel(order="F")[self._p_index]
        a_data = a.ravel(order="F")[self._a_index]
        if np.count_nonzero(p_data) != np.count_nonzero(p) or np.count_nonzero(a_data) != np.count_nonzero(a):
            return None, "a non-zero outside the compiled pattern"
        try:
            solution = self._new_solver(p_data, q, a_data, b).solve()
        except Exception as err:  # any solver failure hands over to the cvxpy path
            return None, f"solver error ({type(err).__name__}: {err})"[:200]
        status = CLARABEL.STATUS_MAP.get(str(solution.status), "solver_error")
        if status not in OK_STATUSES:
            return None, status
        z = np.asarray(solution.x, dtype=float)
        return {name: z[sl] for name, sl in problem.offsets().items()}, status

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


def _standard_form(problem: Problem) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list]:
    """Dense ``P`` (nz, nz), ``q`` (nz,), ``A`` (m, nz), ``b`` (m,) and the cones as ``(kind, size)``."""
    offsets = problem.offsets()
    nz = sum(problem.blocks.values())
    p = np.zeros((nz, nz), order="F")  # column-major: the order of a CSC matrix's data
    for sq in problem.squares:
        m = _dense(sq.matrix)
        sl = offsets[sq.block]
        p[sl, sl] += 2.0 * sq.coef * (m.T @ m)
    p = np.triu(p)
    q = np.zeros(nz)
    for block, coefs in problem.linear.items():
        q[offsets[block]] += coefs
    ordered = [r for kind in _CONE_ORDER for r in problem.rows if r.cone == kind]
    a = np.zeros((sum(r.size for r in ordered), nz), order="F")
    rhs, cones, start = [], [], 0
    for r in ordered:
        rows = slice(start, start + r.size)
        for name, m in r.terms.items():
            a[rows, offsets[name]] = -_dense(m).reshape(r.size, -1)
        rhs.append(r.const)
        start += r.size
        if r.cone == "soc":
            cones += [("soc", size) for size in r.cone_sizes]
        elif cones and cones[-1][0] == r.cone:
            cones[-1] = (r.cone, cones[-1][1] + r.size)
        else:
            cones.append((r.cone, r.size))
    return p, q, a, np.concatenate(rhs), cones


def _dense(m: Matrix) -> np.ndarray:
    return m.toarray() if sparse.issparse(m) else np.asarray(m, dtype=float)


def solve_cvxpy(problem: Problem, solver: str, time_limit: float | None = None) -> Solution:
    """Build ``problem`` in cvxpy and solve it with ``solver`` (``"CLARABEL"`` or ``"SCIP"``).

    ``time_limit`` (seconds) is passed to SCIP; CLARABEL runs at :data:`TOLERANCES`.
    """
    v = {
        name: cp.Variable(size, name=name, boolean=name in problem.boolean)
        for name, size in problem.blocks.items()
    }
    parts = [sq.coef * cp.sum_squares(sq.matrix @ v[sq.block]) for sq in problem.squares if sq.coef != 0]
    parts += [coefs @ v[block] for block, coefs in problem.linear.items()]
    constraints = []
    for r in problem.rows:
        expr = r.const + sum(_as_2d(m, r.size) @ v[name] for name, m in r.terms.items())
        if r.cone == "zero":
            constraints.append(expr == 0)
        elif r.cone == "nonneg":
            constraints.append(expr >= 0)
        else:
            dim = r.dim or r.size
            tails = cp.vstack([expr[i::dim] for i in range(1, dim)])
            constraints.append(cp.SOC(expr[0::dim], tails, axis=0))
    objective = cp.Minimize(_sum(parts))
    cvx = cp.Problem(objective, constraints)
    if solver == "SCIP":
        options = {"scip_params": {"limits/time": time_limit}} if time_limit is not None else {}
    else:
        options = dict(TOLERANCES)
    try:
        cvx.solve(solver=solver, **options)
    except cp.error.SolverError as err:
        return None, f"solver error ({_short(err)})"
    if cvx.status not in OK_STATUSES or v["x"].value is None:
        return None, cvx.status
    return {name: np.atleast_1d(np.asarray(var.value, dtype=float)) for name, var in v.items()}, cvx.status


def _sum(parts: list) -> cp.Expression:
    """The sum of the objective's terms (0 when there are none)."""
    total = cp.Constant(0.0)
    for part in parts:
        total = total + part
    return total


def _as_2d(m: Matrix, rows: int) -> Matrix:
    if sparse.issparse(m):
        return m
    m = np.asarray(m, dtype=float)
    return m.reshape(rows, -1) if m.ndim == 1 else m


def _short(err: Exception) -> str:
    parts = [str(a).strip() for a in err.args if str(a).strip()] or [type(err).__name__]
    return "; ".join(parts)[:200]
