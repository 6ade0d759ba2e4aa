"""From target weights to orders: the backtest's cost rule, then the exchange's lot rules.

An account holds ``quantities`` of coins (base units) and ``cash`` (quote). Marked at the
reference prices ``p`` (the prices the backtest assumes) it is worth ``V = cash + Σ q_i p_i`` with
drifted weights ``w_i = q_i p_i / V``. For target weights ``w*`` the backtest's cost ``c`` solves
``c = rate × Σ |w*_i (1 - c) - w_i|`` (:func:`kallos.backtest.rebalance_cost`), so that after paying
``rate`` per side on every traded notional the account holds exactly ``w*`` of ``V (1 - c)``. Each
coin's order is therefore ``Δ_i = w*_i (1 - c) V - q_i p_i`` of notional, ``|Δ_i| / p_i`` base units,
a buy when ``Δ_i > 0`` (a coin the target drops is sold in full).

The quantity is then fitted to the venue's rules (ccxt market ``precision.amount`` = Binance's
``LOT_SIZE.stepSize``, ``limits.amount`` and ``limits.cost.min`` = ``NOTIONAL``/``MIN_NOTIONAL``):
rounded down to the lot step (never more than asked, never more than held); an order below the
minimum quantity or notional is skipped with its reason. With :data:`UNCONSTRAINED` rules (the
paper venue) nothing is rounded or skipped, and the orders are the backtest's trades exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kallos.backtest import rebalance_cost
from kallos.trading.errors import TradingError

__all__ = ["UNCONSTRAINED", "MarketRules", "OrderPlan", "PlannedOrder", "plan_orders", "round_down"]


@dataclass(frozen=True)
class MarketRules:
    """A venue's order rules for one pair.

    Attributes
    ----------
    amount_step : lot step of the base quantity (0 = any quantity).
    min_amount, max_amount : base quantity limits (``max_amount`` None = none).
    min_notional : smallest quantity × price, quote currency.
    """

    amount_step: float = 0.0
    min_amount: float = 0.0
    max_amount: float | None = None
    min_notional: float = 0.0

    @classmethod
    def from_ccxt(cls, market: Mapping[str, Any]) -> MarketRules:
        """Rules from a ccxt unified market (``precision`` in ccxt's TICK_SIZE mode, ``limits``).

        Market orders use ``limits.market`` (Binance ``MARKET_LOT_SIZE``) where it is tighter.
        """
        limits = market.get("limits") or {}

        def num(value: Any) -> float | None:
            return None if value is None else float(value)

        amount = limits.get("amount") or {}
        mkt = limits.get("market") or {}
        lo = max(num(amount.get("min")) or 0.0, num(mkt.get("min")) or 0.0)
        highs = [x for x in (num(amount.get("max")), num(mkt.get("max"))) if x]
        return cls(
            amount_step=num((market.get("precision") or {}).get("amount")) or 0.0,
            min_amount=lo,
            max_amount=min(highs) if highs else None,
            min_notional=num((limits.get("cost") or {}).get("min")) or 0.0,
        )


UNCONSTRAINED = MarketRules()
"""Any quantity: the paper venue, where orders are the backtest's trades exactly."""


def round_down(quantity: float, step: float) -> float:
    """``quantity`` rounded down to a multiple of ``step`` (unchanged for ``step`` 0).

    A quantity within 1e-9 steps of a multiple counts as that multiple (float noise, e.g.
    ``0.3 / 0.1``), so an exact lot is never lost to rounding.
    """
    if step <= 0:
        return quantity
    lots = math.floor(quantity / step + 1e-9)
    # Format through the step's decimals so that 3 × 0.1 is 0.3, not 0.30000000000000004.
    decimals = max(0, -math.floor(math.log10(step)) + 8)
    return round(lots * step, decimals)


@dataclass(frozen=True)
class PlannedOrder:
    """One coin's order of a cycle (``status`` ``planned`` or ``skipped`` with a ``reason``)."""

    coin_id: str
    symbol: str
    side: str
    target_weight: float
    reference_price: float
    ideal_quantity: float
    quantity: float
    status: str
    reason: str | None = None

    @property
    def notional(self) -> float:
        """Quantity sent × reference price (quote currency)."""
        return self.quantity * self.reference_price


@dataclass(frozen=True)
class OrderPlan:
    """The orders of one rebalance and the backtest quantities they came from.

    Attributes
    ----------
    nav : account value at the reference prices before trading (quote currency).
    cost : the backtest's cost ``c`` (fraction of ``nav``) at ``rate``.
    turnover : ``Σ |Δ_i| / nav`` of the ideal trades (the backtest's turnover).
    orders : one per coin in the target or held, sells first.
    """

    nav: float
    cost: float
    turnover: float
    orders: list[PlannedOrder] = field(default_factory=list)

    @property
    def planned(self) -> list[PlannedOrder]:
        """The orders to send (skipped ones left out)."""
        return [o for o in self.orders if o.status == "planned"]


def plan_orders(
    quantities: Mapping[str, float],
    cash: float,
    prices: Mapping[str, float],
    targets: pd.Series,
    rate: float,
    rules: Mapping[str, MarketRules | None],
    symbol: Callable[[str], str],
) -> OrderPlan:
    """Orders that take the account from ``quantities`` to ``targets`` (see the module docstring).

    Parameters
    ----------
    quantities : coin -> base units held (zeros allowed).
    cash : quote currency held.
    prices : coin -> reference price (quote per base unit) of every coin held or targeted.
    targets : target weights of the post-cost value (index coin ids; sum 1, or <= 1 with cash).
    rate : cost per side as a fraction (``(cost_bps + slippage_bps) / 1e4``).
    rules : coin -> venue rules (coins not given: :data:`UNCONSTRAINED`; None: the venue has no
        market for the coin, its order is skipped).
    symbol : coin -> venue pair (``BTC/USDT``).

    Raises
    ------
    TradingError
        If a coin has no positive reference price or the account is worth nothing.
    """
    held = {c: float(q) for c, q in quantities.items() if q != 0}
    coins = sorted(set(held) | {c for c, w in targets.items() if w > 0})
    missing = [c for c in coins if not (prices.get(c, np.nan) > 0)]
    if missing:
        raise TradingError(f"no reference price for {missing} at the decision close")
    values = np.array([held.get(c, 0.0) * prices[c] for c in coins])
    nav = float(cash + values.sum())
    if not nav > 0:
        raise TradingError(f"the account is worth {nav:g}; nothing to trade")
    drifted = values / nav
    target = np.array([float(targets.get(c, 0.0)) for c in coins])
    cost = rebalance_cost(target, drifted, rate)
    delta = target * (1.0 - cost) * nav - values
    orders = []
    for i, coin in enumerate(coins):
        price = prices[coin]
        side = "buy" if delta[i] > 0 else "sell"
        ideal = held.get(coin, 0.0) if side == "sell" and target[i] == 0 else abs(delta[i]) / price
        market = rules.get(coin, UNCONSTRAINED)
        orders.append(_fit(coin, symbol(coin), side, target[i], price, ideal, held, market))
    orders.sort(key=lambda o: (o.side != "sell", o.coin_id))
    return OrderPlan(nav, cost, float(np.abs(delta).sum() / nav), orders)


def _fit(
    coin: str,
    symbol: str,
    side: str,
    weight: float,
    price: float,
    ideal: float,
    held: Mapping[str, float],
    rules: MarketRules | None,
) -> PlannedOrder:
    if rules is None:
        return PlannedOrder(
            coin, symbol, side, weight, price, ideal, 0.0, "skipped", f"the venue has no {symbol}"
        )
    qty = round_down(ideal, rules.amount_step)
    if side == "sell":
        qty = min(qty, round_down(held.get(coin, 0.0), rules.amount_step))
    reason = None
    if rules.max_amount is not None and qty > rules.max_amount:
        qty = round_down(rules.max_amount, rules.amount_step)
        reason = f"cut to the venue's maximum quantity {rules.max_amount:g}"
    skip = None
    if ideal == 0:
        skip = "no change"
    elif qty <= 0:
        skip = f"{ideal:.8g} is below one lot step ({rules.amount_step:g})"
    elif qty < rules.min_amount:
        skip = f"quantity {qty:.8g} is below the venue's minimum {rules.min_amount:g}"
    elif qty * price < rules.min_notional:
        skip = f"notional {qty * price:.2f} is below the venue's minimum {rules.min_notional:g}"
    if skip:
        return PlannedOrder(coin, symbol, side, weight, price, ideal, 0.0, "skipped", skip)
    return PlannedOrder(coin, symbol, side, weight, price, ideal, qty, "planned", reason)
