"""CoinGecko live client: daily price, market cap and volume from ``/coins/{id}/market_chart/range``.

Plans and keys
--------------
``COINGECKO_PRO_API_KEY`` (header ``x-cg-pro-api-key``, https://pro-api.coingecko.com/api/v3) is used
when set, else ``COINGECKO_DEMO_API_KEY`` (header ``x-cg-demo-api-key``,
https://api.coingecko.com/api/v3), else the keyless public API. The Demo and keyless plans serve only
the last 365 days; CoinGecko answers older ranges with HTTP 401 / error_code 10012, which becomes
:class:`DemoPlanLimitError`. The key lives only in the HTTP client's headers: it never enters a
message, a log line or a ``repr``.

Granularity (CoinGecko docs, "Coin Historical Chart Data within Time Range by ID"): without an
``interval`` a range of 2-90 days is hourly and one above 90 days is daily (00:00 UTC). We send
``interval=daily`` and ask for windows of ``window_days`` (default 365, > 90 so the automatic
granularity is daily too); should hourly points come back anyway, the point nearest 00:00 of each
day is kept.

Date convention (same as :mod:`kallos.data.sources.coingecko`): a point stamped on calendar day D
(00:00 UTC) is the close of UTC day D-1 and is stored with ``date = D - 1``. ``market_cap`` and
``volume`` of 0 are stored as unknown (NULL), as in the CSV importer.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
import numpy as np
import pandas as pd

from kallos.data.live.errors import DemoPlanLimitError, LiveSourceError, TransientError
from kallos.data.live.policy import RateLimiter, RetryPolicy, call_with_retries, parse_retry_after
from kallos.data.sources.base import MARKET_COLUMNS

__all__ = [
    "COINGECKO_IDS",
    "PLANS",
    "CoinGeckoClient",
    "CoinGeckoPlan",
    "market_chart_to_frame",
    "request_windows",
]

log = logging.getLogger(__name__)

DEMO_LIMIT_MESSAGE = (
    "CoinGecko Demo plan serves only the last 365 days; set COINGECKO_PRO_API_KEY or ingest from CSV "
    "(kallos ingest --source csv)"
)
DEMO_LIMIT_ERROR_CODE = 10012
PUBLISH_DELAY_MIN = 40  # the last completed UTC day is served from about 00:35 UTC


@dataclass(frozen=True)
class CoinGeckoPlan:
    """One CoinGecko access plan: where its key comes from, which header carries it, its base URL."""

    name: str
    key_env: str | None
    header: str | None
    base_url: str


PLANS: dict[str, CoinGeckoPlan] = {
    "pro": CoinGeckoPlan(
        "pro", "COINGECKO_PRO_API_KEY", "x-cg-pro-api-key", "https://pro-api.coingecko.com/api/v3"
    ),
    "demo": CoinGeckoPlan(
        "demo", "COINGECKO_DEMO_API_KEY", "x-cg-demo-api-key", "https://api.coingecko.com/api/v3"
    ),
    "public": CoinGeckoPlan("public", None, None, "https://api.coingecko.com/api/v3"),
}

# Kallos coin id -> CoinGecko API id (the coins of the shared CoinGecko top-50 dataset).
COINGECKO_IDS: dict[str, str] = {
    "aave": "aave", "ada": "cardano", "aster": "aster-2", "avax": "avalanche-2", "bch": "bitcoin-cash",
    "bgb": "bitget-token", "bnb": "binancecoin", "btc": "bitcoin", "buidl":
    "blackrock-usd-institutional-digital-liquidity-fund", "cc": "canton-network", "cro": "crypto-com-chain",
    "dai": "dai", "doge": "dogecoin", "dot": "polkadot", "eth": "ethereum", "figr_heloc": "figure-heloc",
    "hbar": "hedera-hashgraph", "hype": "hyperliquid", "leo": "leo-token", "link": "chainlink",
    "ltc": "litecoin", "m": "memecore", "mnt": "mantle", "okb": "okb", "paxg": "pax-gold", "pepe": "pepe",
    "pi": "pi-network", "pyusd": "paypal-usd", "rain": "rain", "shib": "shiba-inu", "sol": "solana",
    "sui": "sui", "tao": "bittensor", "ton": "the-open-network", "trx": "tron", "uni": "uniswap",
    "usd1": "usd1-wlfi", "usdc": "usd-coin", "usde": "ethena-usde", "usdg": "global-dollar", "usds": "usds",
    "usdt": "tether", "wbt": "whitebit", "wlfi": "world-liberty-financial", "xaut": "tether-gold",
    "xlm": "stellar", "xmr": "monero", "xrp": "ripple", "zec": "zcash",
}  # fmt: skip

_DAY = pd.Timedelta(days=1)


def _utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def market_chart_to_frame(
    payload: Mapping[str, Any], coin_id: str, start: dt.date, end: dt.date, source: str = "coingecko"
) -> pd.DataFrame:
    """Turn a ``market_chart`` payload into :data:`MARKET_COLUMNS` rows for close dates in [start, end].

    A point stamped on day D describes the close of D-1. Several points on one day (hourly data)
    collapse to the earliest, i.e. the one nearest 00:00 UTC. Zero market cap / volume -> NULL.

    Raises
    ------
    TransientError
        If the payload lacks ``prices`` or a point is not ``[ms, value]`` (a malformed page).
    LiveSourceError
        If a price is missing or not positive (names the coin and date).
    """
    series = {}
    for key, name in (("prices", "close"), ("market_caps", "market_cap"), ("total_volumes", "volume")):
        points = payload.get(key, [] if key != "prices" else None)
        if not isinstance(points, list) or any(
            not isinstance(p, list | tuple) or len(p) != 2 for p in points
        ):
            raise TransientError(f"coingecko {coin_id}: malformed market_chart payload (field {key!r})")
        arr = np.asarray(points, dtype=float).reshape(-1, 2)
        series[name] = pd.Series(arr[:, 1], index=arr[:, 0].astype("int64"), dtype=float)
    frame = pd.DataFrame(series["close"].rename("close"))
    frame = frame[~frame.index.duplicated(keep="last")]
    for name in ("market_cap", "volume"):
        s = series[name]
        frame[name] = s[~s.index.duplicated(keep="last")].reindex(frame.index)
    stamp = pd.to_datetime(frame.index, unit="ms", utc=True).tz_localize(None)
    frame["date"] = stamp.normalize() - _DAY
    frame["stamp"] = stamp
    frame = frame.sort_values("stamp").drop_duplicates("date", keep="first")
    frame = frame[(frame["date"] >= pd.Timestamp(start)) & (frame["date"] <= pd.Timestamp(end))]
    bad = frame["close"].isna() | (frame["close"] <= 0)
    if bad.any():
        day = frame.loc[bad, "date"].iloc[0].date()
        raise LiveSourceError(f"coingecko {coin_id} {day}: price missing or not positive")
    out = pd.DataFrame(
        {
            "coin_id": coin_id,
            "date": frame["date"].to_numpy(),
            "source": source,
            "open": np.nan,
            "high": np.nan,
            "low": np.nan,
            "close": frame["close"].to_numpy(),
            "volume": frame["volume"].where(frame["volume"] > 0).to_numpy(),
            "market_cap": frame["market_cap"].where(frame["market_cap"] > 0).to_numpy(),
        },
        columns=MARKET_COLUMNS,
    )
    return out.sort_values("date", ignore_index=True)


def request_windows(start: dt.date, end: dt.date, window_days: int) -> list[tuple[dt.date, dt.date]]:
    """Consecutive, non-overlapping close-date windows of at most ``window_days`` covering [start, end]."""
    out, lo = [], start
    while lo <= end:
        hi = min(end, lo + dt.timedelta(days=window_days - 1))
        out.append((lo, hi))
        lo = hi + dt.timedelta(days=1)
    return out


class CoinGeckoClient:
    """Fetch daily CoinGecko market data over HTTP (httpx + tenacity).

    Parameters
    ----------
    api_key : the plan's key (None for the keyless public API).
    plan : ``pro``, ``demo`` or ``public`` (see :data:`PLANS`).
    base_url : override the plan's base URL (tests point it at a local stub).
    policy : rate limit, timeouts and retries.
    window_days : close dates per request (> 90 keeps automatic granularity daily).
    coin_ids : Kallos coin id -> CoinGecko API id (default :data:`COINGECKO_IDS`).
    sleep : injectable for tests.

    Use :meth:`from_env` to pick the plan from the environment.
    """

    source: ClassVar[str] = "coingecko"

    def __init__(
        self,
        api_key: str | None = None,
        plan: str = "public",
        *,
        base_url: str | None = None,
        policy: RetryPolicy | None = None,
        window_days: int = 365,
        coin_ids: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if plan not in PLANS:
            raise LiveSourceError(f"unknown CoinGecko plan {plan!r}; choose from {sorted(PLANS)}")
        self.plan = PLANS[plan]
        if self.plan.header and not api_key:
            raise LiveSourceError(f"CoinGecko {plan} plan needs an API key (${self.plan.key_env})")
        self.base_url = (base_url or self.plan.base_url).rstrip("/")
        self.policy = policy or RetryPolicy()
        if window_days < 1:
            raise LiveSourceError(f"coingecko: window_days must be >= 1, got {window_days}")
        self.window_days = int(window_days)
        self.coin_ids = dict(COINGECKO_IDS if coin_ids is None else coin_ids)
        self._sleep = sleep
        self._limiter = RateLimiter(self.policy.calls_per_minute, sleep=sleep)
        self._secret = api_key or ""
        headers = {"accept": "application/json"}
        if self.plan.header and api_key:
            headers[self.plan.header] = api_key
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(self.policy.timeout_s)
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> CoinGeckoClient:
        """Pro key if ``COINGECKO_PRO_API_KEY`` is set, else Demo, else the keyless public API."""
        env = os.environ if env is None else env
        for name in ("pro", "demo"):
            key = env.get(PLANS[name].key_env or "")
            if key:
                return cls(key, name, **kwargs)
        return cls(None, "public", **kwargs)

    def __repr__(self) -> str:
        key = "'***'" if self._secret else "None"
        return f"CoinGeckoClient(plan={self.plan.name!r}, base_url={self.base_url!r}, api_key={key})"

    def close(self) -> None:
        self._http.close()

    def default_start(self, end: dt.date) -> dt.date:
        """First close date fetched for a coin the store lacks: 364 days back (inside the Demo limit)."""
        return end - dt.timedelta(days=364)

    def latest_close(self, now: dt.datetime) -> dt.date:
        """Last close date CoinGecko has published at ``now``: yesterday once its 00:00 UTC snapshot is
        out (CoinGecko docs: 35 minutes after midnight; we wait until 00:40), else the day before."""
        now = now.astimezone(dt.UTC)
        ready = now - dt.timedelta(minutes=PUBLISH_DELAY_MIN)
        return ready.date() - dt.timedelta(days=1)

    def api_id(self, coin_id: str) -> str:
        try:
            return self.coin_ids[coin_id]
        except KeyError:
            raise LiveSourceError(
                f"coingecko: no CoinGecko API id known for coin {coin_id!r}; pass it as {coin_id}=<api-id>"
            ) from None

    # ------------------------------------------------------------------ HTTP
    def _clean(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _get_once(self, path: str, params: dict[str, Any], what: str) -> Any:
        self._limiter.acquire()
        log.debug("GET %s %s", path, params)
        try:
            resp = self._http.get(path, params=params)
        except httpx.TimeoutException:
            raise TransientError(f"{what}: timed out after {self.policy.timeout_s:g} s") from None
        except httpx.TransportError as err:
            raise TransientError(f"{what}: connection failed ({type(err).__name__})") from None
        if resp.status_code == 429:
            after = parse_retry_after(resp.headers.get("Retry-After"))
            raise TransientError(f"{what}: HTTP 429 rate limited", retry_after=after)
        if resp.status_code >= 500 or resp.status_code == 408:
            raise TransientError(f"{what}: HTTP {resp.status_code}")
        if resp.status_code >= 400:
            self._raise_refusal(resp, what)
        try:
            return resp.json()
        except ValueError:
            raise TransientError(f"{what}: malformed JSON in the response") from None

    def _raise_refusal(self, resp: httpx.Response, what: str) -> None:
        try:
            body = resp.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        err = body.get("error")
        status = err.get("status") if isinstance(err, dict) else body.get("status")
        status = status if isinstance(status, dict) else {}
        code = status.get("error_code")
        message = str(status.get("error_message") or (err if isinstance(err, str) else ""))
        if code == DEMO_LIMIT_ERROR_CODE or "time range" in message.lower():
            raise DemoPlanLimitError(f"{what}: {DEMO_LIMIT_MESSAGE}")
        detail = f" (error_code {code})" if code is not None else ""
        raise LiveSourceError(self._clean(f"{what}: HTTP {resp.status_code}{detail}: {message[:200]}"))

    # ------------------------------------------------------------------ data
    def windows(self, start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
        """Consecutive close-date windows of at most ``window_days`` covering [start, end]."""
        return request_windows(start, end, self.window_days)

    def fetch_daily(self, coin_id: str, start: dt.date, end: dt.date) -> Iterator[pd.DataFrame]:
        """Yield one frame of :data:`MARKET_COLUMNS` rows per window, oldest first.

        Close date D is read from the point stamped D+1 00:00 UTC, so the request spans
        [(start+1) 00:00, (end+1) 01:00) in UNIX seconds.

        Raises
        ------
        DemoPlanLimitError
            If the plan does not serve the range.
        LiveSourceError
            If the provider keeps failing past the retry policy, or refuses the request.
        """
        api_id = self.api_id(coin_id)
        for lo, hi in self.windows(start, end):
            t0 = _utc_midnight(lo + dt.timedelta(days=1))
            t1 = _utc_midnight(hi + dt.timedelta(days=1)) + dt.timedelta(hours=1) - dt.timedelta(seconds=1)
            params = {
                "vs_currency": "usd",
                "from": int(t0.timestamp()),
                "to": int(t1.timestamp()),
                "interval": "daily",
            }
            what = f"coingecko {coin_id} ({api_id}) {lo}..{hi}"

            def once(
                params: dict[str, Any] = params, what: str = what, lo: dt.date = lo, hi: dt.date = hi
            ) -> pd.DataFrame:
                payload = self._get_once(f"/coins/{api_id}/market_chart/range", params, what)
                if not isinstance(payload, dict):
                    raise TransientError(f"{what}: malformed market_chart payload")
                return market_chart_to_frame(payload, coin_id, lo, hi, self.source)

            yield call_with_retries(once, self.policy, what=what, sleep=self._sleep, is_empty=_empty)


def _empty(frame: pd.DataFrame) -> bool:
    return frame.empty
