"""Order sizing: the backtest's trades exactly without lot rules; lot step, minimums and limits with them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kallos.backtest import rebalance_cost
from kallos.trading.sizing import UNCONSTRAINED, MarketRules, plan_orders, round_down

RATE = 0.001
PRICES = {"btc": 50_000.0, "eth": 3_000.0, "xrp": 0.5}


def _symbol(coin: str) -> str:
    return f"{coin.upper()}/USDT"


def _after(plan, quantities, cash):
    """Holdings and cash after every planned order fills at its price, paying RATE on the notional."""
    q = dict(quantities)
    for o in plan.planned:
        sign = 1 if o.side == "buy" else -1
        q[o.coin_id] = q.get(o.coin_id, 0.0) + sign * o.quantity
        cash -= sign * o.quantity * o.reference_price + RATE * o.quantity * o.reference_price
    return q, cash


def test_first_rebalance_buys_from_cash_at_the_backtests_cost():
    targets = pd.Series({"btc": 0.35, "eth": 0.35, "xrp": 0.30})
    plan = plan_orders({}, 10_000.0, PRICES, targets, RATE, {}, _symbol)
    assert plan.cost == pytest.approx(RATE / (1 + RATE), rel=1e-15)  # the backtest's known answer
    assert [o.side for o in plan.orders] == ["buy"] * 3
    q, cash = _after(plan, {}, 10_000.0)
    value = cash + sum(q[c] * PRICES[c] for c in q)
    assert value == pytest.approx(10_000.0 * (1 - plan.cost), rel=1e-14)
    for coin, w in targets.items():
        assert q[coin] * PRICES[coin] / value == pytest.approx(w, rel=1e-13)
    assert abs(cash) < 1e-9


@settings(max_examples=60, deadline=None)
@given(
    held=st.lists(st.floats(0, 3), min_size=3, max_size=3),
    cash=st.floats(0, 5_000),
    raw=st.lists(st.floats(0.01, 1), min_size=3, max_size=3),
    drop=st.integers(0, 3),
)
def test_without_lot_rules_the_orders_are_the_backtests_trades(held, cash, raw, drop):
    """Post-trade weights are the targets and the value is V (1 - c), c from the backtest's rule."""
    coins = list(PRICES)
    quantities = {c: q / PRICES[c] * 1000 for c, q in zip(coins, held, strict=True)}
    if sum(quantities.values()) + cash <= 1:
        return
    w = np.array(raw)
    if drop < 3:
        w[drop] = 0.0  # a coin the target drops is sold in full
    targets = pd.Series(w / w.sum(), index=coins)
    plan = plan_orders(quantities, cash, PRICES, targets, RATE, {}, _symbol)
    value = cash + sum(quantities[c] * PRICES[c] for c in coins)
    drifted = np.array([quantities[c] * PRICES[c] / value for c in coins])
    assert plan.cost == rebalance_cost(targets.to_numpy(), drifted, RATE)
    q, left = _after(plan, quantities, cash)
    after = left + sum(q[c] * PRICES[c] for c in coins)
    assert after == pytest.approx(value * (1 - plan.cost), rel=1e-12, abs=1e-9)
    for c in coins:
        assert q[c] * PRICES[c] == pytest.approx(targets[c] * after, rel=1e-10, abs=1e-7)
        if targets[c] == 0:
            assert q[c] == 0.0  # sold exactly, no dust
    assert plan.turnover == pytest.approx(float(np.abs(targets * (1 - plan.cost) - drifted).sum()), rel=1e-12)


def test_lot_step_minimums_and_missing_markets():
    rules = {
        "btc": MarketRules(amount_step=1e-4, min_amount=1e-4, min_notional=10.0),
        "eth": MarketRules(amount_step=0.01, min_notional=10_000.0),  # its order is below the minimum
        "xrp": None,  # the venue has no XRP/USDT
    }
    targets = pd.Series({"btc": 0.5, "eth": 0.3, "xrp": 0.2})
    plan = plan_orders({}, 10_000.0, PRICES, targets, RATE, rules, _symbol)
    by = {o.coin_id: o for o in plan.orders}
    btc = by["btc"]
    assert btc.status == "planned" and btc.quantity <= btc.ideal_quantity
    assert btc.quantity == round_down(btc.ideal_quantity, 1e-4) and round(btc.quantity / 1e-4, 9) % 1 == 0
    assert by["eth"].status == "skipped" and "below the venue's minimum 10000" in by["eth"].reason
    assert by["xrp"].status == "skipped" and by["xrp"].reason == "the venue has no XRP/USDT"
    assert by["eth"].quantity == by["xrp"].quantity == 0.0


def test_sells_never_exceed_the_holding_and_max_quantity_cuts():
    rules = {"btc": MarketRules(amount_step=0.001), "eth": MarketRules(max_amount=0.5)}
    quantities = {"btc": 0.1234567}
    targets = pd.Series({"eth": 1.0})
    plan = plan_orders(quantities, 0.0, PRICES, targets, RATE, rules, _symbol)
    btc, eth = plan.orders  # sells first
    assert (btc.side, btc.quantity) == ("sell", 0.123)  # rounded down: 0.0004567 stays as dust
    assert eth.quantity == 0.5 and "maximum quantity" in eth.reason


def test_refuses_unpriced_coins_and_an_empty_account():
    from kallos.trading.errors import TradingError

    with pytest.raises(TradingError, match="no reference price"):
        plan_orders({"doge": 1.0}, 0.0, PRICES, pd.Series({"btc": 1.0}), RATE, {}, _symbol)
    with pytest.raises(TradingError, match="worth 0"):
        plan_orders({}, 0.0, PRICES, pd.Series({"btc": 1.0}), RATE, {}, _symbol)


@given(st.floats(1e-6, 1e6), st.sampled_from([1e-8, 1e-5, 0.001, 0.1, 1.0, 10.0]))
def test_round_down_is_a_multiple_never_above(quantity, step):
    r = round_down(quantity, step)
    assert r <= quantity * (1 + 1e-12)
    assert quantity - r < step * (1 + 1e-6)
    assert abs(r / step - round(r / step)) < 1e-9 * max(1.0, r / step)
    assert round_down(quantity, 0.0) == quantity


def test_ccxt_market_rules():
    market = {
        "precision": {"amount": 1e-5},
        "limits": {
            "amount": {"min": 1e-5, "max": 9000.0},
            "market": {"min": 0.0, "max": 100.0},
            "cost": {"min": 5},
        },
    }
    assert MarketRules.from_ccxt(market) == MarketRules(1e-5, 1e-5, 100.0, 5.0)
    assert MarketRules.from_ccxt({}) == UNCONSTRAINED
