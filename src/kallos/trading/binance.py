"""Binance spot as a trading venue, through ccxt: the testnet (sandbox) or the live exchange.

``sandbox`` calls ``exchange.set_sandbox_mode(True)`` (Binance's spot testnet,
https://testnet.binance.vision); ``live`` is the exchange itself. Keys come from the environment
only (:data:`KEY_ENV`), live and testnet keys under different names so one can never be used for
the other. They live in the ccxt object; every message that could carry them is scrubbed, ccxt's
debug log of request headers is redacted, and the venue's ``repr`` hides them.

Orders are MARKET orders with ``newClientOrderId`` = Kallos' client order id. A request whose fate
is unknown (a timeout, a dropped connection, a 5xx, a 429) is never simply resent: the order is
first looked up by its client order id, and only an order the venue does not know is sent again.
``Duplicate order sent.`` (-2010: an open order has that id) means the venue has it: it is looked
up and returned. A refusal for good (filters, balance) comes back as a ``rejected`` order with
the venue's reason. Fills are read from ``myTrades`` (trade id, price, commission and its asset).

Tests point ccxt at :class:`kallos.testing.stub.MarketStub` by replacing ``exchange.urls["api"]``
entries (``public``, ``private``, ``v1``) after sandbox mode is set, so the sandbox path is the one
tested.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ccxt

from kallos.config import StudyConfig
from kallos.data.live.errors import TransientError
from kallos.data.live.policy import RetryPolicy, call_with_retries, parse_retry_after
from kallos.exceptions import KallosError
from kallos.trading.errors import TradingError, VenueError
from kallos.trading.sizing import MarketRules
from kallos.trading.venue import OrderRequest, PaperVenue, Venue, VenueFill, VenueOrder

__all__ = ["KEY_ENV", "MODES", "BinanceVenue", "credentials", "open_venue"]

MODES = ("paper", "sandbox", "live")

KEY_ENV: dict[str, tuple[str, str]] = {
    "sandbox": ("KALLOS_BINANCE_TESTNET_API_KEY", "KALLOS_BINANCE_TESTNET_API_SECRET"),
    "live": ("KALLOS_BINANCE_API_KEY", "KALLOS_BINANCE_API_SECRET"),
}
"""Environment variables holding the API key and secret, per mode."""

_STATUS = {
    "open": "open",
    "closed": "filled",
    "canceled": "canceled",
    "expired": "expired",
    "rejected": "rejected",
}


def credentials(mode: str, env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The (key, secret) of ``mode`` from the environment.

    Raises
    ------
    TradingError
        If either is missing (naming the variables, never their values).
    """
    env = os.environ if env is None else env
    key_var, secret_var = KEY_ENV[mode]
    key, secret = env.get(key_var, ""), env.get(secret_var, "")
    if not key or not secret:
        raise TradingError(f"{mode} trading needs API keys: set ${key_var} and ${secret_var}")
    return key, secret


def open_venue(
    mode: str,
    config: StudyConfig,
    *,
    base_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Venue:
    """The venue of ``mode``: the paper broker (the backtest's costs) or Binance spot (testnet or live).

    Raises
    ------
    TradingError
        For an unknown mode, missing keys, or ``base_url`` with live (live trades on Binance itself).
    """
    if mode not in MODES:
        raise TradingError(f"--mode {mode!r}: use paper, sandbox or live")
    if mode == "paper":
        bt = config.backtest
        return PaperVenue(bt.cost_bps, bt.slippage_bps, config.trading.quote)
    if mode == "live" and base_url:
        raise TradingError(
            "--base-url is for the sandbox (a stub or a testnet mirror); live trades on Binance"
        )
    key, secret = credentials(mode, env)
    return BinanceVenue(mode, key, secret, base_url=base_url, quote=config.trading.quote)


def _venue_message(text: str) -> str:
    """The venue's answer in words: ``binance {"code": -1013, "msg": "Filter failure: NOTIONAL"}`` ->
    ``Filter failure: NOTIONAL (-1013)``."""
    try:
        body = json.loads(text[text.index("{") :])
        return f"{body['msg']} ({body['code']})"
    except (ValueError, KeyError, TypeError):
        return text


class _Redact(logging.Filter):
    """Replaces the keys in ccxt's debug records (it logs request headers, the API key among them)."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, ()
        return True


_CCXT_LOGGER = "ccxt.base.exchange"


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BinanceVenue:
    """Binance spot through ccxt (see the module docstring).

    Parameters
    ----------
    mode : ``sandbox`` (spot testnet) or ``live``.
    api_key, secret : credentials (:func:`credentials` reads them from the environment).
    base_url : replace the REST root (tests: the local stub), after sandbox mode is set.
    quote : quote asset of the pairs.
    policy : timeouts and retries of every request.
    sleep : injectable for tests.
    """

    name = "binance"
    has_balances = True

    def __init__(
        self,
        mode: str,
        api_key: str,
        secret: str,
        *,
        base_url: str | None = None,
        quote: str = "USDT",
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if mode not in KEY_ENV:
            raise TradingError(f"venue mode {mode!r}: use sandbox or live")
        self.mode, self.quote = mode, quote
        self.policy = policy or RetryPolicy(
            calls_per_minute=0, timeout_s=10.0, max_attempts=5, max_total_s=120.0
        )
        self._sleep = sleep
        self._secrets = [s for s in (api_key, secret) if s]
        self._redact = _Redact(self._secrets)
        logging.getLogger(_CCXT_LOGGER).addFilter(self._redact)
        self.exchange = ccxt.binance(
            {
                "apiKey": api_key,
                "secret": secret,
                "enableRateLimit": False,
                "timeout": int(self.policy.timeout_s * 1000),
                "options": {
                    "defaultType": "spot",
                    "fetchMarkets": {"types": ["spot"]},
                    "fetchCurrencies": False,
                },
            }
        )
        if mode == "sandbox":
            self.exchange.set_sandbox_mode(True)
        self.base_url = base_url.rstrip("/") if base_url else None
        if self.base_url:
            api = dict(self.exchange.urls["api"])
            api.update(
                public=f"{self.base_url}/api/v3",
                private=f"{self.base_url}/api/v3",
                v1=f"{self.base_url}/api/v1",
            )
            self.exchange.urls["api"] = api

    def __repr__(self) -> str:
        return f"BinanceVenue(mode={self.mode!r}, base_url={self.base_url!r}, api_key='***')"

    def close(self) -> None:
        """Close the HTTP session and stop redacting this venue's keys from ccxt's log."""
        session = getattr(self.exchange, "session", None)
        if session is not None:
            session.close()
        logging.getLogger(_CCXT_LOGGER).removeFilter(self._redact)

    # ------------------------------------------------------------------ plumbing
    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:300]

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """One request; ccxt errors become Kallos errors (messages scrubbed of the keys)."""
        try:
            return fn()
        except (ccxt.RateLimitExceeded, ccxt.DDoSProtection):
            after = parse_retry_after((self.exchange.last_response_headers or {}).get("Retry-After"))
            raise TransientError(f"{what}: rate limited (HTTP 429)", retry_after=after) from None
        except ccxt.OrderNotFound:
            raise
        except (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended) as err:
            key_var, secret_var = KEY_ENV[self.mode]
            raise VenueError(
                f"{what}: the venue refused the keys ({type(err).__name__}: {self._clean(str(err))}); "
                f"check ${key_var} and ${secret_var}"
            ) from None
        except (ccxt.InvalidOrder, ccxt.InsufficientFunds, ccxt.BadRequest) as err:
            raise _Rejected(_venue_message(self._clean(str(err)))) from None
        except (ccxt.NetworkError, ccxt.ExchangeError) as err:  # timeouts, 5xx, unknown answers
            raise TransientError(f"{what}: {type(err).__name__}: {self._clean(str(err))}") from None

    def _retrying(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return call_with_retries(lambda: self._call(what, fn), self.policy, what=what, sleep=self._sleep)
        except KallosError as err:
            if isinstance(err, TradingError):
                raise
            raise VenueError(self._clean(str(err))) from None

    # ------------------------------------------------------------------ reads
    def rules(self, symbols: Iterable[str]) -> dict[str, MarketRules]:
        """Lot step, minimum quantity and notional of each symbol the venue lists (others left out)."""
        if not self.exchange.markets:
            self._retrying("binance markets", self.exchange.load_markets)
        markets = self.exchange.markets
        return {s: MarketRules.from_ccxt(markets[s]) for s in symbols if s in markets}

    def prices(self, symbols: Iterable[str]) -> dict[str, float]:
        """Last traded price per symbol (``fetch_ticker``)."""
        out = {}
        for s in symbols:
            ticker = self._retrying(f"binance ticker {s}", lambda s=s: self.exchange.fetch_ticker(s))
            if ticker.get("last"):
                out[s] = float(ticker["last"])
        return out

    def balances(self) -> dict[str, float]:
        """Total (free + locked) per asset (``fetch_balance``)."""
        balance = self._retrying("binance balances", self.exchange.fetch_balance)
        return {asset: float(v or 0.0) for asset, v in (balance.get("total") or {}).items()}

    def _fills(self, symbol: str, raw: Mapping[str, Any]) -> tuple[VenueFill, ...]:
        if not float(raw.get("filled") or 0):
            return ()
        trades = self._retrying(
            f"binance trades {symbol}",
            lambda: self.exchange.fetch_my_trades(symbol, params={"orderId": raw["id"]}),
        )
        out = []
        for t in trades:
            fee = t.get("fee") or {}
            stamp = dt.datetime.fromtimestamp((t.get("timestamp") or 0) / 1000, dt.UTC)
            out.append(
                VenueFill(
                    str(t["id"]),
                    float(t["amount"]),
                    float(t["price"]),
                    float(fee.get("cost") or 0.0),
                    str(fee.get("currency") or self.quote),
                    stamp,
                )
            )
        return tuple(out)

    def _order(self, symbol: str, raw: Mapping[str, Any], reason: str | None = None) -> VenueOrder:
        status = _STATUS.get(str(raw.get("status")), "open")
        return VenueOrder(
            str(raw.get("clientOrderId")),
            str(raw.get("id")),
            status,
            float(raw.get("filled") or 0.0),
            self._fills(symbol, raw),
            reason,
        )

    def query(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """The order with this client order id, or None if the venue never received it."""

        def once() -> Any:
            try:
                return self._call(
                    f"binance order {client_order_id}",
                    lambda: self.exchange.fetch_order(
                        None, symbol, params={"origClientOrderId": client_order_id}
                    ),
                )
            except ccxt.OrderNotFound:
                return None

        try:
            raw = call_with_retries(
                once, self.policy, what=f"binance order {client_order_id}", sleep=self._sleep
            )
        except _Rejected as r:
            raise VenueError(f"binance order {client_order_id}: {r.reason}") from None
        except KallosError as err:
            if isinstance(err, TradingError):
                raise
            raise VenueError(self._clean(str(err))) from None
        return None if raw is None else self._order(symbol, raw)

    # ------------------------------------------------------------------ writes
    def place(self, request: OrderRequest) -> VenueOrder:
        """Send a market order; never twice (see the module docstring).

        Raises
        ------
        VenueError
            When the keys are refused, or neither sending nor looking the order up succeeds within
            the retry policy: the order stays ``sent`` and the next start reconciles it.
        """
        what = f"binance {request.side} {request.symbol} [{request.client_order_id}]"
        deadline = time.monotonic() + self.policy.max_total_s
        attempt = 0
        while True:
            attempt += 1
            try:
                raw = self._call(
                    what,
                    lambda: self.exchange.create_order(
                        request.symbol,
                        "market",
                        request.side,
                        request.quantity,
                        None,
                        {"newClientOrderId": request.client_order_id, "newOrderRespType": "FULL"},
                    ),
                )
                return self._order(request.symbol, raw)
            except _Rejected as r:
                if "Duplicate order" in r.reason:  # the venue has it already: what became of it?
                    found = self.query(request.client_order_id, request.symbol)
                    if found is not None:
                        return found
                return VenueOrder(request.client_order_id, None, "rejected", reason=r.reason)
            except TransientError as err:
                self._sleep(min(err.retry_after or self.policy.backoff_initial_s * 2**attempt, 60.0))
                found = self.query(request.client_order_id, request.symbol)
                if found is not None:
                    return found
                if attempt >= self.policy.max_attempts or time.monotonic() > deadline:
                    raise VenueError(
                        f"{what}: gave up after {attempt} attempt(s): {err}; the order is not at the venue"
                    ) from None

    def cancel(self, order: VenueOrder, symbol: str) -> VenueOrder:
        """Cancel what is left of an open order and return its final state."""
        try:
            self._call(
                f"binance cancel {order.client_order_id}",
                lambda: self.exchange.cancel_order(order.venue_order_id, symbol),
            )
        except (_Rejected, ccxt.OrderNotFound):
            pass  # already done: the query below says how
        found = self.query(order.client_order_id, symbol)
        return found if found is not None else order
