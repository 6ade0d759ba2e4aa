"""Exceptions raised on bad input. Every message names the file, row, coin, date or key at fault."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataValidationError",
    "ImportFormatError",
    "InsufficientDataError",
    "KallosError",
    "OptimizationError",
    "OutputError",
    "StoreError",
]


class KallosError(Exception):
    """Base class for every error Kallos raises on purpose."""


class ConfigError(KallosError):
    """A study configuration has an unknown key or an invalid value."""


class DataValidationError(KallosError):
    """Market data violates the panel contract (names the coin and date)."""


class ImportFormatError(DataValidationError):
    """A source file is malformed: missing column, bad value, duplicated date (names file and row)."""


class StoreError(KallosError):
    """The database is unreachable, empty when it must not be, or in an unexpected state."""


class InsufficientDataError(KallosError):
    """Too little history to fit an estimator (names the coin and the window)."""


class OptimizationError(KallosError):
    """A portfolio problem is infeasible or the solver failed."""


class OutputError(KallosError):
    """An output location (``--out``, ``--json``) cannot be created or written (names the path)."""
