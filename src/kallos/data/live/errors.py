"""Errors raised by the live market-data clients (all :class:`kallos.exceptions.KallosError`)."""

from __future__ import annotations

from kallos.exceptions import KallosError

__all__ = ["DemoPlanLimitError", "LiveSourceError", "TransientError"]


class LiveSourceError(KallosError):
    """A live provider refused a request or kept failing; the message names the source, coin and range.

    Messages never contain an API key.
    """


class DemoPlanLimitError(LiveSourceError):
    """CoinGecko's Demo (or keyless) plan serves only the last 365 days of history."""


class TransientError(LiveSourceError):
    """A failure worth retrying: HTTP 429 or 5xx, a timeout, a dropped connection, a malformed body.

    Attributes
    ----------
    retry_after : seconds the server asked the client to wait (``Retry-After``), if it said.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
