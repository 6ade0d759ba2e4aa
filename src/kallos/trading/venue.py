"""What a trading cycle needs of a venue, and the paper venue that fills as the backtest assumes.

A :class:`Venue` places market orders identified by a client order id, answers queries by that id
(the reconciliation at start-up), cancels, and reports its rules, prices and balances. The cycle
never asks anything else, so paper, sandbox and live run the same code
(:mod:`kallos.trading.cycle`); only the venue object differs.

:class:`PaperVenue` is a simulated broker with the backtest's fill model: an order fills in full
at the reference price (the decision close, as :mod:`kallos.backtest` assumes) moved by
``slippage_bps`` against the trader, and pays ``cost_bps`` of its notional at the reference
price. Both together cost ``(cost_bps + slippage_bps) / 1e4`` of the notional at the reference
price, the backtest's charge, so a paper account's value equals the backtest's. It keeps no state
(a query finds nothing): an order recorded as sent but never recorded as filled (a killed
process) is simply sent again, and fills again identically.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from kallos.trading.sizing import UNCONSTRAINED, MarketRules

__all__ = ["TERMINAL", "OrderRequest", "PaperVenue", "Venue", "VenueFill", "VenueOrder"]

#: Order states after which nothing more can fill.
TERMINAL = frozenset({"filled", "canceled", "expired", "rejected"})


@dataclass(frozen=True)
class OrderRequest:
    """A market order to send: ``quantity`` base units of ``symbol``, tagged ``client_order_id``."""

    client_order_id: str
    coin_id: str
    symbol: str
    side: str
    quantity: float
    reference_price: float
    period: pd.Timestamp


@dataclass(frozen=True)
class VenueFill:
    """One execution: ``quantity`` base units at ``price``; ``fee`` in ``fee_asset``."""

    fill_id: str
    quantity: float
    price: float
    fee: float
    fee_asset: str
    traded_at: dt.datetime


@dataclass(frozen=True)
class VenueOrder:
    """An order as the venue knows it: state (``open`` or one of :data:`TERMINAL`) and its fills."""

    client_order_id: str
    venue_order_id: str | None
    status: str
    filled_quantity: float = 0.0
    fills: tuple[VenueFill, ...] = field(default_factory=tuple)
    reason: str | None = None

    @property
    def terminal(self) -> bool:
        """Nothing more can fill."""
        return self.status in TERMINAL


class Venue(Protocol):
    """The venue interface of a trading cycle (see the module docstring)."""

    name: str
    #: whether the venue's balances can be compared with the ledger (False for paper).
    has_balances: bool

    def rules(self, symbols: Iterable[str]) -> dict[str, MarketRules]:
        """Order rules of each listed symbol (a symbol the venue lacks is left out)."""
        ...

    def prices(self, symbols: Iterable[str]) -> dict[str, float]:
        """Last traded price per symbol (quote per base unit)."""
        ...

    def balances(self) -> dict[str, float]:
        """Asset (upper case) -> amount held at the venue."""
        ...

    def place(self, request: OrderRequest) -> VenueOrder:
        """Send a market order; never twice under one client order id."""
        ...

    def query(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """The order with this client order id, or None if the venue never received it."""
        ...

    def cancel(self, order: VenueOrder, symbol: str) -> VenueOrder:
        """Cancel what is left of an open order; its final state."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def close_time(period: pd.Timestamp) -> dt.datetime:
    """The instant a decision close is taken: 00:00 UTC of the next day."""
    day = (pd.Timestamp(period) + pd.Timedelta(days=1)).date()
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


class PaperVenue:
    """Simulated broker with the backtest's fill model (see the module docstring).

    Parameters
    ----------
    cost_bps, slippage_bps : per side, basis points of the notional at the reference price
        (``backtest.cost_bps`` and ``backtest.slippage_bps``).
    quote : quote asset the fees are paid in.
    """

    name = "paper"
    has_balances = False

    def __init__(self, cost_bps: float, slippage_bps: float = 0.0, quote: str = "USDT") -> None:
        self.cost_rate, self.slippage = cost_bps / 1e4, slippage_bps / 1e4
        self.quote = quote

    def __repr__(self) -> str:
        return f"PaperVenue(cost_rate={self.cost_rate:g}, slippage={self.slippage:g})"

    def rules(self, symbols: Iterable[str]) -> dict[str, MarketRules]:
        """Any quantity of any symbol (the backtest's trades exactly)."""
        return {s: UNCONSTRAINED for s in symbols}

    def prices(self, symbols: Iterable[str]) -> dict[str, float]:
        """No market to ask: paper orders fill at the reference price, so no band is checked."""
        return {}

    def balances(self) -> dict[str, float]:
        """None to compare: the ledger is the paper account (``has_balances`` is False)."""
        return {}

    def place(self, request: OrderRequest) -> VenueOrder:
        """Fill in full at ``reference × (1 ± slippage)``; fee ``cost_bps`` × quantity × reference."""
        sign = 1.0 if request.side == "buy" else -1.0
        price = request.reference_price * (1.0 + sign * self.slippage)
        fee = self.cost_rate * request.quantity * request.reference_price
        fill = VenueFill(
            f"{request.client_order_id}-1",
            request.quantity,
            price,
            fee,
            self.quote,
            close_time(request.period),
        )
        return VenueOrder(
            request.client_order_id, request.client_order_id, "filled", request.quantity, (fill,)
        )

    def query(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """Nothing: a paper order not recorded as filled is sent (and filled) again, identically."""
        return None

    def cancel(self, order: VenueOrder, symbol: str) -> VenueOrder:
        """Paper orders never stay open: nothing to cancel."""
        return order

    def close(self) -> None:
        """Nothing to release."""
        return None


def fee_in_quote(fill: VenueFill, quote: str, base: str, prices: Mapping[str, float]) -> float:
    """A fill's fee valued in the quote currency: as is, at the fill price, or at ``prices[asset]``."""
    if fill.fee_asset.upper() == quote.upper():
        return fill.fee
    if fill.fee_asset.upper() == base.upper():
        return fill.fee * fill.price
    return fill.fee * float(prices.get(fill.fee_asset.lower(), float("nan")))
