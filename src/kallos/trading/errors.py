"""Errors of the trading stage (all :class:`kallos.exceptions.KallosError`)."""

from __future__ import annotations

from kallos.exceptions import KallosError

__all__ = ["GuardError", "TradingError", "VenueError"]


class TradingError(KallosError):
    """A trading cycle cannot run: the account, its config or the venue is not in a usable state.

    Messages never contain an API key or secret.
    """


class GuardError(TradingError):
    """A risk guard refused the cycle.

    Attributes
    ----------
    guard : the guard's name (``kill_switch``, ``stale_data``, ``data_check``, ``price_band``,
        ``max_order_notional``, ``max_turnover``, ``balance``, ``lock``).
    """

    def __init__(self, guard: str, message: str) -> None:
        super().__init__(f"{guard}: {message}")
        self.guard = guard
        self.detail = message


class VenueError(TradingError):
    """The venue refused a request for good (bad keys, permissions) or kept failing past the retries."""
