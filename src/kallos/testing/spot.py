"""A Binance spot trading venue in memory, served by :class:`kallos.testing.stub.MarketStub`.

Endpoints (Binance REST API v3, the shapes ccxt parses): ``GET /api/v3/exchangeInfo`` (symbols
with ``PRICE_FILTER``, ``LOT_SIZE``, ``MARKET_LOT_SIZE`` and ``NOTIONAL`` filters),
``GET /api/v3/ticker/24hr`` and ``/ticker/price``, and the signed ``GET /api/v3/account``,
``POST /api/v3/order`` (MARKET orders), ``GET /api/v3/order``, ``DELETE /api/v3/order``,
``GET /api/v3/openOrders`` and ``GET /api/v3/myTrades``.

Signed requests are checked as Binance does: the ``X-MBX-APIKEY`` header must carry the key
(else HTTP 401, code -2015), the ``signature`` must be the HMAC-SHA256 of the other parameters
(query string and body, in order) with the secret (else 400, -1022), and ``timestamp`` must be
within ``recvWindow`` (default 5000 ms) of the server clock (else 400, -1021).

Orders fill at once at the pair's price moved by ``slippage_bps`` against the trader, unless a
fault says otherwise; the commission (``fee_rate``) is taken from the asset received, as on
Binance without BNB discounts. Filters are enforced (-1013 ``Filter failure: LOT_SIZE`` /
``NOTIONAL``), balances too (-2010 insufficient balance), and a ``newClientOrderId`` already used by
an *open* order is refused (-2010 ``Duplicate order sent.``), Binance's rule.

Faults (``MarketStub.faults`` on the ``bn_order_new`` route): ``timeout_after_accept`` (the order is
placed and filled, the answer comes ``MarketStub.slow_s`` later: the client times out),
``partial`` (half the quantity fills and the order stays open, ``PARTIALLY_FILLED``),
``reject_min_notional`` (refused with ``Filter failure: NOTIONAL`` whatever the filters say),
``duplicate`` (the venue already holds this id: an earlier attempt whose answer was lost placed it,
half filled and resting, and this request is refused with ``Duplicate order sent.``) and the stub's
generic ``429`` (with ``Retry-After``) and ``500``.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SPOT_ROUTES", "SpotExchange", "SpotMarket", "SpotRefusal", "symbol_info"]

SPOT_ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/api/v3/ticker/24hr"): "bn_ticker",
    ("GET", "/api/v3/ticker/price"): "bn_ticker_price",
    ("GET", "/api/v3/account"): "bn_account",
    ("POST", "/api/v3/order"): "bn_order_new",
    ("GET", "/api/v3/order"): "bn_order_get",
    ("DELETE", "/api/v3/order"): "bn_order_cancel",
    ("GET", "/api/v3/openOrders"): "bn_open_orders",
    ("GET", "/api/v3/myTrades"): "bn_my_trades",
}
SIGNED = {"bn_account", "bn_order_new", "bn_order_get", "bn_order_cancel", "bn_open_orders", "bn_my_trades"}


class SpotRefusal(Exception):
    """An error answer: HTTP ``status`` with Binance's ``{"code", "msg"}`` body."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.body = status, {"code": code, "msg": msg}


@dataclass
class SpotMarket:
    """One pair's filters (Binance ``exchangeInfo``) and its current price."""

    base: str
    quote: str
    price: float
    step: float = 1e-5
    min_qty: float = 1e-5
    max_qty: float = 9e6
    min_notional: float = 5.0
    tick: float = 1e-4


def _fmt(x: float) -> str:
    return f"{x:.8f}"


def symbol_info(pair: str, base: str, quote: str, filters: list[dict[str, Any]]) -> dict[str, Any]:
    """One spot symbol of Binance's ``exchangeInfo`` (the fields ccxt reads)."""
    return {
        "symbol": pair,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
        "filters": filters,
    }


def _filters(m: SpotMarket) -> list[dict[str, Any]]:
    lot = {"minQty": _fmt(m.min_qty), "maxQty": _fmt(m.max_qty), "stepSize": _fmt(m.step)}
    return [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": _fmt(m.tick),
            "maxPrice": "1000000",
            "tickSize": _fmt(m.tick),
        },
        {"filterType": "LOT_SIZE", **lot},
        {"filterType": "MARKET_LOT_SIZE", **lot},
        {
            "filterType": "NOTIONAL",
            "minNotional": _fmt(m.min_notional),
            "applyMinToMarket": True,
            "maxNotional": "9000000",
            "applyMaxToMarket": False,
            "avgPriceMins": 5,
        },
    ]


def _on_step(qty: float, step: float) -> bool:
    lots = qty / step
    return abs(lots - round(lots)) < 1e-6


@dataclass
class SpotExchange:
    """State of the simulated venue (see the module docstring).

    Attributes
    ----------
    api_key, secret : the credentials signed requests must use.
    markets : pair id (``BTCUSDT``) -> :class:`SpotMarket`.
    balances : asset -> free amount.
    fee_rate : commission per fill (0.001 = 10 bps).
    slippage_bps : fill price = price × (1 ± this) against the trader.
    """

    api_key: str
    secret: str
    markets: dict[str, SpotMarket] = field(default_factory=dict)
    balances: dict[str, float] = field(default_factory=dict)
    fee_rate: float = 0.001
    slippage_bps: float = 0.0
    recv_window_ms: int = 5000
    orders: list[dict[str, Any]] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ helpers for tests
    def orders_with(self, client_order_id: str) -> list[dict[str, Any]]:
        """Every order the venue accepted with this client order id (a duplicate shows as two)."""
        with self._lock:
            return [o for o in self.orders if o["clientOrderId"] == client_order_id]

    def add_order(
        self, symbol: str, side: str, quantity: float, client_order_id: str, filled_fraction: float = 0.0
    ) -> dict[str, Any]:
        """Place an order directly (as another process would have), filling ``filled_fraction`` of it."""
        with self._lock:
            return self._place(symbol, side, quantity, client_order_id, filled_fraction)

    # ------------------------------------------------------------------ auth
    def check_signature(self, headers: dict[str, str], query: str, body: str) -> None:
        """Binance's signed-endpoint checks (see the module docstring).

        Raises
        ------
        SpotRefusal
            For a missing or wrong key, a bad signature or a stale timestamp.
        """
        if headers.get("x-mbx-apikey") != self.api_key:
            raise SpotRefusal(401, -2015, "Invalid API-key, IP, or permissions for action.")
        total = "&".join(p for p in (query, body) if p)
        payload, sep, signature = total.rpartition("&signature=")
        if not sep:
            raise SpotRefusal(
                400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."
            )
        expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise SpotRefusal(400, -1022, "Signature for this request is not valid.")
        params = dict(p.split("=", 1) for p in payload.split("&") if "=" in p)
        window = int(params.get("recvWindow", self.recv_window_ms))
        if abs(int(params.get("timestamp", 0)) - time.time() * 1000) > window:
            raise SpotRefusal(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    # ------------------------------------------------------------------ endpoints
    def symbols(self) -> list[dict[str, Any]]:
        """``exchangeInfo`` entries of the traded pairs, with their filters."""
        return [symbol_info(pair, m.base, m.quote, _filters(m)) for pair, m in self.markets.items()]

    def handle(self, route: str, params: dict[str, str], fault: str | None) -> Any:
        """Answer one request of ``route`` (a value of :data:`SPOT_ROUTES`).

        Raises
        ------
        SpotRefusal
            For Binance's error answers.
        """
        with self._lock:
            return getattr(self, f"_{route}")(params, fault)

    def _market(self, params: dict[str, str]) -> tuple[str, SpotMarket]:
        pair = params.get("symbol", "")
        if pair not in self.markets:
            raise SpotRefusal(400, -1121, "Invalid symbol.")
        return pair, self.markets[pair]

    def _ticker(self, pair: str, m: SpotMarket) -> dict[str, Any]:
        now = int(time.time() * 1000)
        p = _fmt(m.price)
        return {
            "symbol": pair, "priceChange": "0", "priceChangePercent": "0", "weightedAvgPrice": p,
            "prevClosePrice": p, "lastPrice": p, "lastQty": "1", "bidPrice": p, "bidQty": "1", "askPrice": p,
            "askQty": "1", "openPrice": p, "highPrice": p, "lowPrice": p, "volume": "0", "quoteVolume": "0",
            "openTime": now - 86_400_000, "closeTime": now, "firstId": 1, "lastId": 1, "count": 1,
        }  # fmt: skip

    def _bn_ticker(self, params: dict[str, str], fault: str | None) -> Any:
        return self._ticker(*self._market(params))

    def _bn_ticker_price(self, params: dict[str, str], fault: str | None) -> Any:
        pair, m = self._market(params)
        return {"symbol": pair, "price": _fmt(m.price)}

    def _bn_account(self, params: dict[str, str], fault: str | None) -> Any:
        balances = [
            {"asset": a, "free": _fmt(v), "locked": "0.00000000"} for a, v in sorted(self.balances.items())
        ]
        return {
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
            "canTrade": True, "canWithdraw": False, "canDeposit": False, "accountType": "SPOT",
            "updateTime": int(time.time() * 1000), "balances": balances, "permissions": ["SPOT"],
        }  # fmt: skip

    def _order_view(self, o: dict[str, Any]) -> dict[str, Any]:
        keys = ("symbol", "orderId", "orderListId", "clientOrderId", "price", "origQty", "executedQty",
                "cummulativeQuoteQty", "status", "timeInForce", "type", "side", "time", "updateTime",
                "isWorking", "workingTime", "origQuoteOrderQty", "selfTradePreventionMode")  # fmt: skip
        view = {k: o[k] for k in keys}
        for k in ("origQty", "executedQty", "cummulativeQuoteQty"):
            view[k] = _fmt(o[k])
        return view

    def _find(self, params: dict[str, str]) -> dict[str, Any]:
        pair, _ = self._market(params)
        cid, oid = params.get("origClientOrderId"), params.get("orderId")
        for o in reversed(self.orders):
            if o["symbol"] == pair and (o["clientOrderId"] == cid or str(o["orderId"]) == oid):
                return o
        raise SpotRefusal(400, -2013, "Order does not exist.")

    def _place(self, pair: str, side: str, qty: float, cid: str, fraction: float = 1.0) -> dict[str, Any]:
        m = self.markets[pair]
        now = int(time.time() * 1000)
        order = {
            "symbol": pair, "orderId": len(self.orders) + 1, "orderListId": -1, "clientOrderId": cid,
            "price": "0.00000000", "origQty": qty, "executedQty": 0.0, "cummulativeQuoteQty": 0.0,
            "status": "NEW", "timeInForce": "GTC", "type": "MARKET", "side": side, "time": now,
            "updateTime": now, "isWorking": True, "workingTime": now, "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "NONE", "fills": [],
        }  # fmt: skip
        self.orders.append(order)
        filled = math.floor(qty * fraction / m.step + 1e-9) * m.step if fraction < 1 else qty
        if filled > 0:
            self._fill(order, m, filled, now)
        order["status"] = "FILLED" if filled >= qty else ("PARTIALLY_FILLED" if filled > 0 else "NEW")
        return order

    def _fill(self, order: dict[str, Any], m: SpotMarket, qty: float, now: int) -> None:
        buy = order["side"] == "BUY"
        # On the price tick and in 8 decimals, as Binance reports them; balances move by those numbers.
        price = round(
            round(m.price * (1 + (1 if buy else -1) * self.slippage_bps / 1e4) / m.tick) * m.tick, 8
        )
        quote_qty = qty * price
        if buy:
            commission, asset = round(qty * self.fee_rate, 8), m.base
            self.balances[m.quote] = self.balances.get(m.quote, 0.0) - quote_qty
            self.balances[m.base] = self.balances.get(m.base, 0.0) + qty - commission
        else:
            commission, asset = round(quote_qty * self.fee_rate, 8), m.quote
            self.balances[m.base] = self.balances.get(m.base, 0.0) - qty
            self.balances[m.quote] = self.balances.get(m.quote, 0.0) + quote_qty - commission
        trade = {
            "symbol": order["symbol"], "id": len(self.trades) + 1, "orderId": order["orderId"],
            "orderListId": -1, "price": _fmt(price), "qty": _fmt(qty), "quoteQty": _fmt(quote_qty),
            "commission": _fmt(commission), "commissionAsset": asset, "time": now, "isBuyer": buy,
            "isMaker": False, "isBestMatch": True,
        }  # fmt: skip
        self.trades.append(trade)
        order["executedQty"] += qty
        order["cummulativeQuoteQty"] += quote_qty
        order["fills"].append(
            {"price": trade["price"], "qty": trade["qty"], "commission": trade["commission"],
             "commissionAsset": asset, "tradeId": trade["id"]}
        )  # fmt: skip

    def _bn_order_new(self, params: dict[str, str], fault: str | None) -> Any:
        pair, m = self._market(params)
        side = params.get("side", "").upper()
        if params.get("type") != "MARKET" or side not in ("BUY", "SELL"):
            raise SpotRefusal(400, -1116, "Invalid orderType.")
        cid = params.get("newClientOrderId") or f"stub-{len(self.orders) + 1}"
        if fault == "duplicate":
            self._place(pair, side, float(params.get("quantity", "0")), cid, 0.5)
        if any(o["clientOrderId"] == cid and o["status"] in ("NEW", "PARTIALLY_FILLED") for o in self.orders):
            raise SpotRefusal(400, -2010, "Duplicate order sent.")
        qty = float(params.get("quantity", "0"))
        if fault == "reject_min_notional" or qty * m.price < m.min_notional:
            raise SpotRefusal(400, -1013, "Filter failure: NOTIONAL")
        if not (m.min_qty <= qty <= m.max_qty) or not _on_step(qty, m.step):
            raise SpotRefusal(400, -1013, "Filter failure: LOT_SIZE")
        need = (qty * m.price * (1 + self.slippage_bps / 1e4), m.quote) if side == "BUY" else (qty, m.base)
        if self.balances.get(need[1], 0.0) < need[0] - 1e-12:
            raise SpotRefusal(400, -2010, "Account has insufficient balance for requested action.")
        order = self._place(pair, side, qty, cid, 0.5 if fault == "partial" else 1.0)
        view = self._order_view(order)
        view["transactTime"] = order["time"]
        view["fills"] = list(order["fills"])
        return view

    def _bn_order_get(self, params: dict[str, str], fault: str | None) -> Any:
        return self._order_view(self._find(params))

    def _bn_order_cancel(self, params: dict[str, str], fault: str | None) -> Any:
        o = self._find(params)
        if o["status"] not in ("NEW", "PARTIALLY_FILLED"):
            raise SpotRefusal(400, -2011, "Unknown order sent.")
        o["status"] = "CANCELED"
        o["updateTime"] = int(time.time() * 1000)
        return self._order_view(o)

    def _bn_open_orders(self, params: dict[str, str], fault: str | None) -> Any:
        pair = params.get("symbol")
        return [
            self._order_view(o)
            for o in self.orders
            if o["status"] in ("NEW", "PARTIALLY_FILLED") and (pair is None or o["symbol"] == pair)
        ]

    def _bn_my_trades(self, params: dict[str, str], fault: str | None) -> Any:
        pair, _ = self._market(params)
        oid = params.get("orderId")
        return [t for t in self.trades if t["symbol"] == pair and (oid is None or str(t["orderId"]) == oid)]
