"""Live market-data sources (CoinGecko over httpx, Binance over ccxt) and incremental ingestion.

:data:`LIVE_SOURCES` maps a source name to a factory ``(base_url, policy) -> client``; every client
follows :class:`~kallos.data.live.incremental.LiveSource`.
"""

from __future__ import annotations

from collections.abc import Callable

from kallos.data.live.binance import BinanceClient
from kallos.data.live.coingecko import COINGECKO_IDS, CoinGeckoClient
from kallos.data.live.errors import DemoPlanLimitError, LiveSourceError, TransientError
from kallos.data.live.incremental import (
    LiveIngestReport,
    LiveSource,
    ingest_live,
    last_dates,
    stored_coins,
)
from kallos.data.live.policy import RateLimiter, RetryPolicy

__all__ = [
    "COINGECKO_IDS",
    "DEFAULT_COINS",
    "LIVE_SOURCES",
    "BinanceClient",
    "CoinGeckoClient",
    "DemoPlanLimitError",
    "LiveIngestReport",
    "LiveSource",
    "LiveSourceError",
    "RateLimiter",
    "RetryPolicy",
    "TransientError",
    "ingest_live",
    "last_dates",
    "make_client",
    "stored_coins",
]

LIVE_SOURCES: dict[str, Callable[..., LiveSource]] = {
    "coingecko": CoinGeckoClient.from_env,
    "binance": BinanceClient,
}

# Coins fetched when neither --coins nor stored rows say which.
DEFAULT_COINS: dict[str, tuple[str, ...]] = {
    "coingecko": ("btc", "eth"),
    "binance": ("btc", "eth"),
}


def make_client(
    source: str, base_url: str | None = None, policy: RetryPolicy | None = None, **kwargs: object
) -> LiveSource:
    """A live client for ``source`` (a key of :data:`LIVE_SOURCES`); ``kwargs`` go to its factory.

    Raises
    ------
    LiveSourceError
        For an unknown source.
    """
    if source not in LIVE_SOURCES:
        raise LiveSourceError(f"unknown live source {source!r}; choose from {sorted(LIVE_SOURCES)}")
    return LIVE_SOURCES[source](base_url=base_url, policy=policy, **kwargs)
