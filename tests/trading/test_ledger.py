"""The ledger: client order ids, fills applied once, fees in any asset, positions = the sum of the fills."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest

from kallos.trading import Ledger, OrderPlan, PlannedOrder, VenueFill, VenueOrder, client_order_id

NOW = dt.datetime(2026, 1, 5, 0, 30, tzinfo=dt.UTC)
PERIOD = pd.Timestamp("2026-01-04")


def test_client_order_ids_are_deterministic_short_and_binance_safe():
    cid = client_order_id("1a2b3c4d", PERIOD, "btc")
    assert cid == "k-1a2b3c4d-20260104-btc" == client_order_id("1a2b3c4d", PERIOD, "btc")
    next_week = PERIOD + pd.Timedelta(days=7)
    assert client_order_id("1a2b3c4d", PERIOD, "eth") != cid != client_order_id("1a2b3c4d", next_week, "btc")
    long = client_order_id("1a2b3c4d", PERIOD, "figure_heloc_token_long")
    assert len(long) <= 36 and re.fullmatch(r"[.A-Z:/a-z0-9_-]{1,36}", long)


@pytest.fixture
def ledger(any_store):
    led = Ledger(any_store)
    account = led.open_account(
        "acct", mode="sandbox", venue="binance", quote="USDT", strategy="x/y", initial_cash=1000.0,
        config={}, config_hash="h", now=NOW,
    )  # fmt: skip
    orders = [
        PlannedOrder("btc", "BTC/USDT", "buy", 0.5, 100.0, 2.0, 2.0, "planned"),
        PlannedOrder("eth", "ETH/USDT", "buy", 0.3, 10.0, 5.0, 5.0, "planned"),
    ]
    led.record_decision(account, PERIOD, "run-1", {"nav": 1000.0}, OrderPlan(1000.0, 0.0, 0.25, orders),
                        cash=1000.0, interest=0.0, now=NOW)  # fmt: skip
    return led, led.account("acct")


def test_fills_are_applied_once_and_fees_move_their_asset(ledger):
    led, account = ledger
    btc = client_order_id(account.uid, PERIOD, "btc")
    eth = client_order_id(account.uid, PERIOD, "eth")
    partial = VenueOrder(btc, "7", "open", 1.0, (VenueFill("t1", 1.0, 100.0, 0.001, "BTC", NOW),))
    assert led.apply(account, partial, {}, NOW) == 1
    full = VenueOrder(btc, "7", "filled", 2.0, (*partial.fills, VenueFill("t2", 1.0, 101.0, 0.5, "BNB", NOW)))
    assert led.apply(account, full, {"bnb": 600.0}, NOW) == 1  # t1 already recorded
    assert led.apply(account, full, {"bnb": 600.0}, NOW) == 0  # a rerun changes nothing
    eth_fill = VenueFill("t3", 5.0, 10.0, 0.05, "USDT", NOW)
    led.apply(account, VenueOrder(eth, "8", "filled", 5.0, (eth_fill,)), {}, NOW)
    expected = {"USDT": 1000 - 100 - 101 - 50 - 0.05, "btc": 2.0 - 0.001, "bnb": -0.5, "eth": 5.0}
    assert led.positions("acct") == pytest.approx(expected)
    orders = led.orders("acct").set_index("coin_id")
    assert orders.at["btc", "status"] == "filled" and orders.at["btc", "average_price"] == pytest.approx(
        100.5
    )
    assert orders.at["btc", "fee_quote"] == pytest.approx(0.001 * 100 + 0.5 * 600)
    assert led.consistent(account) == {}
    with led.engine.begin() as conn:  # a position changed outside the fills is reported
        from kallos.data import schema

        conn.execute(schema.positions.update().where(schema.positions.c.asset == "btc").values(quantity=3.0))
    assert set(led.consistent(account)) == {"btc"}


def test_a_decision_is_recorded_whole(ledger):
    led, _ = ledger
    cycle = led.cycle("acct", PERIOD)
    assert (cycle["status"], cycle["run_id"], cycle["turnover"]) == ("decided", "run-1", 0.25)
    assert led.account("acct").first_period == PERIOD
    orders = led.orders("acct")
    assert list(orders["status"]) == ["planned", "planned"] and set(orders["run_id"]) == {"run-1"}
    assert list(orders["target_weight"]) == [0.5, 0.3] and set(orders["period"]) == {PERIOD}
    nav = led.nav("acct")
    assert nav["nav"].tolist() == [1000.0] and pd.isna(nav["nav_after"].iloc[0])
