"""Circular block bootstrap resample indices, drawn once and shared by every pair of strategies.

Resampling *indices* (not data) lets one draw serve every pair: a pair's bootstrap sample is
``data[indices]``, so all pairs see the same blocks of days and the cross-strategy dependence
is preserved. Indices come from :class:`arch.bootstrap.CircularBlockBootstrap`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from arch.bootstrap import CircularBlockBootstrap, optimal_block_length

from kallos.exceptions import ConfigError

__all__ = ["Draws", "Resampler", "politis_white_block_length"]


def politis_white_block_length(
    returns: pd.DataFrame, max_fraction: float = 0.25, kind: str = "circular"
) -> int:
    """Block length for the circular block (or stationary) bootstrap by the Politis-White rule.

    Parameters
    ----------
    returns : pd.DataFrame of shape (n_days, n_strategies)
        Daily simple returns; rows with a NaN are dropped.
    max_fraction : float, default 0.25
        Upper cap as a fraction of ``n_days``.
    kind : {"circular", "stationary"}, default "circular"
        Which bootstrap the length is for (the stationary one's is its expected block length).

    Returns
    -------
    int
        ``ceil`` of the median over columns of the circular-bootstrap optimal block length of
        the returns *and* of the squared returns (the Sharpe ratio depends on both moments),
        clipped to ``[1, max(1, floor(max_fraction * n_days))]``; 1 for fewer than 10 rows.

    References
    ----------
    .. [1] Politis, D. N. and White, H. (2004). "Automatic Block-Length Selection for the
       Dependent Bootstrap". Econometric Reviews, 23(1), 53-70; Patton, A., Politis, D. N. and
       White, H. (2009), correction, 28(4), 372-375.
    .. [2] arch ``arch.bootstrap.optimal_block_length``.
    """
    data = returns.dropna().to_numpy(dtype=float)
    n = data.shape[0]
    if n < 10:
        return 1
    data = data[:, np.ptp(data, axis=0) > 0]
    if data.shape[1] == 0:
        return 1
    lengths = optimal_block_length(np.hstack([data, data**2]))[kind].to_numpy()
    lengths = lengths[np.isfinite(lengths)]
    value = math.ceil(float(np.median(lengths))) if lengths.size else 1
    return int(min(max(value, 1), max(1, int(max_fraction * n))))


@dataclass(frozen=True)
class Draws:
    """Circular block bootstrap draws for a sample of ``n`` days.

    Attributes
    ----------
    indices : ndarray of int, shape (reps, n)
        Resample ``m`` is ``data[indices[m]]``: consecutive blocks of ``block_length`` days
        (wrapping around the end), the last block truncated to fit ``n``.
    block_length : int
        Block length ``l`` (``<= n``).
    """

    indices: np.ndarray
    block_length: int

    @property
    def reps(self) -> int:
        return int(self.indices.shape[0])

    @property
    def n(self) -> int:
        return int(self.indices.shape[1])

    @property
    def block_sizes(self) -> np.ndarray:
        """Length of each block of a resample, shape (n_blocks,): ``l`` except a shorter last one."""
        n_blocks = -(-self.n // self.block_length)
        return np.minimum(self.block_length, self.n - np.arange(n_blocks) * self.block_length)

    def block_sums(self, data: np.ndarray) -> np.ndarray:
        """Sum of each column of ``data`` (shape (n, k)) over each block of each resample.

        Returns shape (k, reps, n_blocks) (column-major, so one column's sums are contiguous).
        Uses prefix sums of the circularly extended data: O(k x reps x n_blocks), not
        O(k x reps x n). Blocks are ``ceil(n / l)``; the last one may be shorter.
        """
        length = self.block_length
        extended = np.concatenate([data, data[:length]], axis=0)
        prefix = np.concatenate([np.zeros((1, data.shape[1])), np.cumsum(extended, axis=0)], axis=0).T
        starts = self.indices[:, ::length]  # (reps, n_blocks)
        ends = starts + self.block_sizes
        return np.stack([col[ends] - col[starts] for col in prefix])


@dataclass
class Resampler:
    """Cache of circular block bootstrap draws, one per sample length.

    Attributes
    ----------
    block_length : int
        Block length ``l`` (days).
    reps : int
        Number of bootstrap resamples ``M``.
    seed : int
        Seed; a sample length ``n`` always gets the same indices for the same seed.
    """

    block_length: int
    reps: int
    seed: int
    _cache: dict[int, Draws] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.block_length < 1:
            raise ConfigError(f"bootstrap block length must be >= 1, got {self.block_length}")
        if self.reps < 1:
            raise ConfigError(f"bootstrap reps must be >= 1, got {self.reps}")

    def draws(self, n: int) -> Draws:
        """Draws for a sample of ``n`` days (from ``arch.bootstrap.CircularBlockBootstrap``)."""
        if n < 2:  # nothing to resample; callers treat such samples as degenerate
            return Draws(np.zeros((self.reps, max(n, 0)), dtype=np.intp), 1)
        if n not in self._cache:
            length = min(self.block_length, n)
            bs = CircularBlockBootstrap(length, np.arange(n), seed=np.random.default_rng([self.seed, n]))
            indices = np.stack([pos[0] for pos, _ in bs.bootstrap(self.reps)]).astype(np.intp)
            self._cache[n] = Draws(indices.reshape(self.reps, n), length)
        return self._cache[n]
