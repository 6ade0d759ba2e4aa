"""Binance spot daily klines through ccxt (public endpoints, no key).

``ccxt.binance().fetch_ohlcv(symbol, "1d", since, limit)`` is paginated over the requested range;
each page becomes one chunk. A 1d kline opened at 00:00 UTC of day D closes at the end of D and is
stored with ``date = D`` (as in :mod:`kallos.data.sources.binance`). Bars after ``end`` (never later
than yesterday, so the still-open current day is always dropped) are discarded.

``volume`` is stored in quote currency (USDT ~ USD) as ``base volume x close``: ccxt's unified
OHLCV carries base volume only. This is the same estimate the CSV importer uses for the shared
Binance export, so live and CSV rows agree.

Tests point ccxt at a local stub by replacing ``exchange.urls["api"]["public"]`` (the spot REST
root, ``<base>/api/v3``); only spot markets are loaded (``options["fetchMarkets"]["types"]``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import ccxt
import numpy as np
import pandas as pd

from kallos.data.live.errors import LiveSourceError, TransientError
from kallos.data.live.policy import RateLimiter, RetryPolicy, call_with_retries, parse_retry_after
from kallos.data.sources.base import MARKET_COLUMNS

__all__ = ["BinanceClient", "ohlcv_to_frame"]

_DAY_MS = 86_400_000
_MALFORMED = (TypeError, ValueError, KeyError, IndexError, AttributeError)


def _ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


def ohlcv_to_frame(rows: list[list[Any]], coin_id: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    """ccxt OHLCV rows ``[ms, open, high, low, close, base_volume]`` -> :data:`MARKET_COLUMNS`.

    Keeps close dates in [start, end]; a date seen twice keeps its last row.

    Raises
    ------
    TransientError
        If a row is not six numbers or its timestamp is not 00:00 UTC (a malformed page).
    """
    try:
        arr = np.asarray(rows, dtype=float).reshape(-1, 6)
    except _MALFORMED:
        raise TransientError(f"binance {coin_id}: malformed klines page") from None
    if np.isnan(arr[:, :5]).any() or (arr[:, 0] % _DAY_MS != 0).any():
        raise TransientError(f"binance {coin_id}: malformed klines page (missing value or not a 1d bar)")
    date = pd.to_datetime(arr[:, 0].astype("int64"), unit="ms")
    frame = pd.DataFrame(
        {
            "coin_id": coin_id,
            "date": date,
            "source": BinanceClient.source,
            "open": arr[:, 1],
            "high": arr[:, 2],
            "low": arr[:, 3],
            "close": arr[:, 4],
            "volume": arr[:, 5] * arr[:, 4],
            "market_cap": np.nan,
        },
        columns=MARKET_COLUMNS,
    )
    frame = frame.drop_duplicates("date", keep="last")
    keep = (frame["date"] >= pd.Timestamp(start)) & (frame["date"] <= pd.Timestamp(end))
    return frame[keep].sort_values("date", ignore_index=True)


class BinanceClient:
    """Fetch Binance spot daily klines with ccxt, paginated, rate limited and retried.

    Parameters
    ----------
    base_url : replace the spot REST root (``https://api.binance.com``); tests use a local stub.
    policy : rate limit, timeouts and retries.
    page_limit : klines per request (Binance allows up to 1000).
    quote : quote asset of the pairs (``BTC/USDT`` for coin ``btc``).
    sleep : injectable for tests.
    """

    source: ClassVar[str] = "binance"

    def __init__(
        self,
        base_url: str | None = None,
        *,
        policy: RetryPolicy | None = None,
        page_limit: int = 1000,
        quote: str = "USDT",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.policy = policy or RetryPolicy(calls_per_minute=600.0)
        if not 1 <= page_limit <= 1000:
            raise LiveSourceError(f"binance: page_limit must be in 1..1000, got {page_limit}")
        self.page_limit = int(page_limit)
        self.quote = quote.upper()
        self._sleep = sleep
        self._limiter = RateLimiter(self.policy.calls_per_minute, sleep=sleep)
        self.exchange = ccxt.binance(
            {
                "enableRateLimit": False,  # our RateLimiter spaces the calls
                "timeout": int(self.policy.timeout_s * 1000),
                "options": {"fetchMarkets": {"types": ["spot"]}},
            }
        )
        self.base_url = base_url.rstrip("/") if base_url else None
        if self.base_url:
            self.exchange.urls["api"] = {**self.exchange.urls["api"], "public": f"{self.base_url}/api/v3"}

    def __repr__(self) -> str:
        return f"BinanceClient(base_url={self.base_url!r}, page_limit={self.page_limit})"

    def close(self) -> None:
        session = getattr(self.exchange, "session", None)
        if session is not None:
            session.close()

    def default_start(self, end: dt.date) -> dt.date:
        """First close date fetched for a coin the store lacks: Binance spot opened 2017-07-14."""
        return dt.date(2017, 7, 1)

    def latest_close(self, now: dt.datetime) -> dt.date:
        """Last closed daily kline at ``now``: yesterday (UTC); today's bar is still open."""
        return now.astimezone(dt.UTC).date() - dt.timedelta(days=1)

    def symbol(self, coin_id: str) -> str:
        return f"{coin_id.upper()}/{self.quote}"

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        self._limiter.acquire()
        try:
            return fn()
        except (ccxt.RateLimitExceeded, ccxt.DDoSProtection):
            headers = self.exchange.last_response_headers or {}
            after = parse_retry_after(headers.get("Retry-After"))
            raise TransientError(f"{what}: HTTP 429 rate limited", retry_after=after) from None
        except ccxt.RequestTimeout:
            raise TransientError(f"{what}: timed out after {self.policy.timeout_s:g} s") from None
        except (ccxt.NetworkError, ccxt.BadResponse, ccxt.NullResponse) as err:
            raise TransientError(f"{what}: {type(err).__name__}") from None
        except ccxt.BadSymbol:
            raise LiveSourceError(f"{what}: Binance has no market {what.split()[1]}") from None
        except ccxt.BaseError as err:
            raise LiveSourceError(f"{what}: {type(err).__name__}: {str(err)[:200]}") from None
        except _MALFORMED:
            raise TransientError(f"{what}: malformed response") from None

    def _load_markets(self) -> None:
        if not self.exchange.markets:
            call_with_retries(
                lambda: self._call("binance markets", self.exchange.load_markets),
                self.policy,
                what="binance markets",
                sleep=self._sleep,
            )

    def fetch_daily(self, coin_id: str, start: dt.date, end: dt.date) -> Iterator[pd.DataFrame]:
        """Yield one frame of :data:`MARKET_COLUMNS` rows per kline page, oldest first.

        Stops at ``end`` or at the first empty page (asked again ``policy.empty_retries`` times
        first). Overlapping pages are harmless: rows are deduplicated by date and the next page
        starts after the latest date seen.

        Raises
        ------
        LiveSourceError
            If the pair is unknown or Binance keeps failing past the retry policy.
        """
        self._load_markets()
        symbol = self.symbol(coin_id)
        if symbol not in self.exchange.markets:
            raise LiveSourceError(f"binance {coin_id}: Binance has no spot market {symbol}")
        since, stop = _ms(start), _ms(end)
        while since <= stop:
            what = f"binance {symbol} from {pd.Timestamp(since, unit='ms').date()}"

            def once(since: int = since, what: str = what) -> list[list[Any]]:
                rows = self._call(
                    what, lambda: self.exchange.fetch_ohlcv(symbol, "1d", since, self.page_limit)
                )
                if not isinstance(rows, list):
                    raise TransientError(f"{what}: malformed response")
                return rows

            rows = call_with_retries(once, self.policy, what=what, sleep=self._sleep, is_empty=_empty)
            if not rows:
                return
            frame = ohlcv_to_frame(rows, coin_id, start, end)
            if len(frame):
                yield frame
            latest = int(max(r[0] for r in rows))
            if latest < since:  # a page wholly before the cursor: no progress, stop rather than loop
                raise LiveSourceError(f"{what}: page ends before its start; Binance answered out of order")
            since = latest + _DAY_MS


def _empty(rows: list[list[Any]]) -> bool:
    return len(rows) == 0
