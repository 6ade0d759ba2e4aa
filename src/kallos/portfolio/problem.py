"""One description of a portfolio problem, which both back-ends compile.

A :class:`Problem` is the conic program

    minimise    sum_k c_k ||M_k v_(b_k)||^2  +  sum_b q_b' v_b
    subject to  sum_b A_jb v_b + c_j  in  K_j        (j = 1, 2, ...)

over named blocks of variables ``v_b`` - the (scaled) weights ``"x"`` (n), the scale ``"s"`` (1),
and whatever an objective or constraint adds (``"trade"``, ``"z"`` binaries, CVaR's ``"alpha"``
and ``"tail"``) - with ``K_j`` the zero cone, the non-negative orthant or second-order cones.
Objectives (:mod:`kallos.portfolio.objectives`) and constraints
(:mod:`kallos.portfolio.constraints`, whose :func:`~kallos.portfolio.constraints.formulate`
assembles the whole problem) only add blocks, terms and rows through
:meth:`Problem.variable`, :meth:`~Problem.minimise`, :meth:`~Problem.constrain` and the risk
atoms :meth:`~Problem.add_risk` / :meth:`~Problem.cap_risk`; they never see a solver.
:mod:`kallos.portfolio.backends` compiles the same Problem to CLARABEL's standard form directly,
or to a cvxpy problem (CLARABEL; SCIP when there are binaries).

The risk ``x' cov x`` is the one atom whose form depends on the problem kind: continuous, it is
``||F x||^2`` (``F'F = cov``) in the objective and ``||F x|| <= sqrt(v) s`` as a cap. With
binaries it is written for the solver's linear outer approximation: ``u = F x`` and one 3-d cone
``u_j^2 <= r_j`` per row (Vielma, Dunning, Huchette & Lubin 2017, "Extended formulations in
mixed integer conic quadratic programming"), and - except for the big-M-homogenised form, where
it was measured slower - the perspective split ``cov = G'G + diag(d)`` (:func:`perspective_split`)
with ``d_i x_i^2 <= t_i z_i`` (Frangioni & Gentile 2006), so ``x' cov x = sum r + sum t`` at the
optimum and the relaxation is tighter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import sparse

from kallos.exceptions import OptimizationError

__all__ = [
    "Cone",
    "Matrix",
    "Problem",
    "ProblemData",
    "Rows",
    "Square",
    "perspective_split",
    "sqrt_factor",
]

Cone = Literal["zero", "nonneg", "soc"]
Matrix = np.ndarray | sparse.sparray | sparse.spmatrix


@dataclass(frozen=True)
class ProblemData:
    """The numbers of one solve.

    Attributes
    ----------
    excess : shape (n,), annualised expected excess returns ``mu - rf``.
    factor : shape (n, n), ``F`` with ``F'F = cov`` (annualised covariance of daily simple returns).
    lower, upper : shape (n,) each, weight bounds.
    w_drift : shape (n,), drifted current weights (turnover limit).
    budget : turnover budget left for these assets.
    scalar : the objective's parameter (δ, γ, a target, CVaR's β), as :meth:`Objective.parameter` gives it.
    scenarios : shape (T, n), daily simple returns (not percent), for scenario objectives; or None.
    big_m : the homogenised cardinality problem's bound on ``kappa``; None otherwise.
    """

    excess: np.ndarray
    factor: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    w_drift: np.ndarray
    budget: float
    scalar: float = 0.0
    scenarios: np.ndarray | None = None
    big_m: float | None = None

    @property
    def n(self) -> int:
        return len(self.excess)

    def probe(self) -> ProblemData:
        """Data of the same shapes, every datum that can be non-zero non-zero (ones; the parameter 0.5)."""
        ones = np.ones(self.n)
        scenarios = None if self.scenarios is None else np.ones(self.scenarios.shape)
        big_m = None if self.big_m is None else 1.0
        return ProblemData(ones, np.eye(self.n) + 1.0, ones, ones, ones, 1.0, 0.5, scenarios, big_m)


@dataclass(frozen=True)
class Square:
    """The objective term ``coef * ||matrix @ v_block||^2``."""

    coef: float
    block: str
    matrix: Matrix


@dataclass(frozen=True)
class Rows:
    """``sum_b terms[b] @ v_b + const`` in the cone (``soc``: consecutive cones of ``dim`` rows each).

    A term on a one-element block may be a vector of shape (k,) (its column).
    """

    cone: Cone
    terms: dict[str, Matrix]
    const: np.ndarray
    dim: int | None = None

    @property
    def size(self) -> int:
        return len(self.const)

    @property
    def cone_sizes(self) -> tuple[int, ...]:
        if self.cone != "soc":
            return (self.size,)
        dim = self.dim or self.size
        return (dim,) * (self.size // dim)


@dataclass
class Problem:
    """A problem under construction: blocks, objective terms and constraint rows (module docstring).

    Parameters
    ----------
    data : the numbers of this solve.
    homogeneous : the scale ``s`` is a variable (``kappa`` of ``max_sharpe``); otherwise ``s = 1``.
    mip : binaries will be added (cardinality); selects the risk atom's mixed-integer form.
    """

    data: ProblemData
    homogeneous: bool = False
    mip: bool = False
    blocks: dict[str, int] = field(default_factory=dict, init=False)
    boolean: set[str] = field(default_factory=set, init=False)
    squares: list[Square] = field(default_factory=list, init=False)
    linear: dict[str, np.ndarray] = field(default_factory=dict, init=False)
    rows: list[Rows] = field(default_factory=list, init=False)
    _risk_blocks: tuple[str, ...] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.variable("x", self.data.n)
        self.variable("s", 1)
        if not self.homogeneous:
            self.constrain("zero", {"s": -np.ones(1)}, np.ones(1))  # s = 1

    @property
    def n(self) -> int:
        return self.data.n

    # ------------------------------------------------------------------ building blocks

    def variable(self, name: str, size: int, boolean: bool = False) -> str:
        """Add the block ``name`` of ``size`` variables (binary when ``boolean``); returns ``name``."""
        if name in self.blocks:
            raise OptimizationError(f"problem block {name!r} defined twice")
        self.blocks[name] = int(size)
        if boolean:
            self.boolean.add(name)
        return name

    def minimise(self, block: str, coefs: np.ndarray) -> None:
        """Add ``coefs' v_block`` (shape (size,)) to the objective."""
        coefs = np.asarray(coefs, dtype=float)
        self.linear[block] = self.linear[block] + coefs if block in self.linear else coefs

    def minimise_squares(self, coef: float, block: str, matrix: Matrix) -> None:
        """Add ``coef * ||matrix @ v_block||^2`` (``coef >= 0``) to the objective."""
        self.squares.append(Square(float(coef), block, matrix))

    def constrain(
        self, cone: Cone, terms: dict[str, Matrix], const: np.ndarray, dim: int | None = None
    ) -> None:
        """Require ``sum_b terms[b] @ v_b + const`` in ``cone`` (see :class:`Rows`)."""
        unknown = set(terms) - set(self.blocks)
        if unknown:
            raise OptimizationError(f"constraint on undefined blocks {sorted(unknown)}")
        self.rows.append(Rows(cone, terms, np.asarray(const, dtype=float), dim))

    # ------------------------------------------------------------------ atoms

    def add_expected_excess(self, coef: float) -> None:
        """Maximise ``coef * (mu - rf)'x``."""
        self.minimise("x", -coef * self.data.excess)

    def add_l2(self, coef: float) -> None:
        """Add ``coef * ||x||^2`` (``coef >= 0``)."""
        self.minimise_squares(coef, "x", np.eye(self.n))

    def add_risk(self, coef: float) -> None:
        """Add ``coef * x' cov x`` (``coef >= 0``) in the problem kind's form (module docstring)."""
        if not self.mip:
            self.minimise_squares(coef, "x", self.data.factor)
            return
        for block in self._mip_risk():
            self.minimise(block, np.full(self.n, coef))

    def cap_risk(self, variance: float) -> None:
        """``x' cov x <= variance s^2``: ``||F x|| <= sqrt(variance) s`` (linear when mixed-integer)."""
        n = self.n
        if not self.mip:
            x_rows = np.vstack([np.zeros(n), self.data.factor])
            s_col = np.r_[np.sqrt(max(variance, 0.0)), np.zeros(n)]
            self.constrain("soc", {"x": x_rows, "s": s_col}, np.zeros(n + 1))
            return
        if self.homogeneous:  # pragma: no cover - no homogenised objective caps its risk
            raise OptimizationError("a risk cap in the homogenised mixed-integer form is not linear")
        terms = {block: -np.ones((1, n)) for block in self._mip_risk()}
        self.constrain("nonneg", terms, np.array([variance]))

    def _mip_risk(self) -> tuple[str, ...]:
        """The blocks whose sum is ``x' cov x`` in the mixed-integer form (built on first use)."""
        if self._risk_blocks is not None:
            return self._risk_blocks
        if "z" not in self.blocks:
            raise OptimizationError("the mixed-integer risk needs the cardinality binaries first")
        n, eye = self.n, np.eye(self.n)
        perspective = not self.homogeneous
        factor, sqrt_diag = perspective_split(self.data.factor) if perspective else (self.data.factor, None)
        self.variable("u", n)
        self.constrain("zero", {"u": eye, "x": -factor}, np.zeros(n))  # u = F x (or G x)
        self.variable("r", n)
        zero = np.zeros((n, n))
        self.constrain(
            "soc",
            {"r": _interleave(eye, zero, eye), "u": _interleave(zero, 2 * eye, zero)},
            np.tile([1.0, 0.0, -1.0], n),
            dim=3,
        )  # (r_j + 1, 2 u_j, r_j - 1): u_j^2 <= r_j
        blocks: tuple[str, ...] = ("r",)
        if perspective:
            self.variable("persp", n)
            self.constrain(
                "soc",
                {
                    "persp": _interleave(eye, zero, eye),
                    "z": _interleave(eye, zero, -eye),
                    "x": _interleave(zero, 2 * np.diag(sqrt_diag), zero),
                },
                np.zeros(3 * n),
                dim=3,
            )  # (t_i + z_i, 2 sqrt(d_i) x_i, t_i - z_i): d_i x_i^2 <= t_i z_i
            blocks = ("r", "persp")
        self._risk_blocks = blocks
        return blocks

    # ------------------------------------------------------------------ for the back-ends

    def offsets(self) -> dict[str, slice]:
        """Each block's slice of the stacked decision vector."""
        out, start = {}, 0
        for name, size in self.blocks.items():
            out[name] = slice(start, start + size)
            start += size
        return out

    def layout(self) -> tuple:
        """A hashable summary of the structure (blocks, terms, rows), independent of the numbers."""
        return (
            tuple(self.blocks.items()),
            tuple(sorted(self.boolean)),
            tuple(sq.block for sq in self.squares),
            tuple(self.linear),
            tuple((r.cone, r.cone_sizes, tuple(r.terms)) for r in self.rows),
        )


def _interleave(first: np.ndarray, second: np.ndarray, third: np.ndarray) -> np.ndarray:
    """Rows ``(first_j, second_j, third_j)`` for j = 1..n: the rows of n 3-d cones, cone by cone."""
    out = np.empty((3 * first.shape[0], first.shape[1]))
    out[0::3], out[1::3], out[2::3] = first, second, third
    return out


def sqrt_factor(cov: np.ndarray) -> np.ndarray:
    """``F`` (n, n) with ``F'F = cov`` (n, n).

    The upper Cholesky factor when ``cov`` is positive definite (fast); otherwise (singular or
    slightly indefinite from rounding) from the eigen decomposition with negative eigenvalues
    clipped to 0.
    """
    sym = (cov + cov.T) / 2
    try:
        return np.linalg.cholesky(sym).T
    except np.linalg.LinAlgError:
        vals, vecs = np.linalg.eigh(sym)
        return np.sqrt(np.clip(vals, 0.0, None))[:, None] * vecs.T


def perspective_split(factor: np.ndarray, shrink: float = 0.999) -> tuple[np.ndarray, np.ndarray]:
    """Split ``cov = F'F`` (n, n) into ``G'G + diag(d)``, ``d >= 0``; returns ``(G (n, n), sqrt(d) (n,))``.

    ``d = shrink * lambda_min(C) * diag(cov)`` with ``C`` the correlation matrix, so
    ``cov - diag(d) = S^(1/2) (C - shrink lambda_min I) S^(1/2)`` stays positive semidefinite
    (``S = diag(cov)``). The diagonal part feeds the perspective cuts of the mixed-integer problem
    (Frangioni & Gentile 2006, "Perspective cuts for a class of convex 0-1 mixed integer programs";
    the scaled-eigenvalue choice of ``d`` is the cheap one of Günlük & Linderoth 2010, §4).
    """
    cov = factor.T @ factor
    var = np.clip(np.diag(cov), 0.0, None)
    scale = np.where(var > 0, np.sqrt(np.where(var > 0, var, 1.0)), 1.0)
    corr = cov / np.outer(scale, scale)
    lam = float(np.linalg.eigvalsh((corr + corr.T) / 2)[0])
    d = shrink * max(lam, 0.0) * var
    return sqrt_factor(cov - np.diag(d)), np.sqrt(d)
