"""Sandbox cycles on a stubbed Binance spot testnet (ccxt, sandbox mode, signed requests checked).

Each fault ends with a consistent account (positions = the sum of the fills, and equal to the
venue's balances) and no order sent twice (one venue order per client order id).
"""

from __future__ import annotations

import logging

import pytest

from kallos.data import build_panel
from kallos.trading import Ledger, VenueError, reference_prices
from kallos.trading.binance import BinanceVenue, credentials, open_venue
from kallos.trading.parity import compute_parity
from kallos.trading.report import render_trade_report

from .conftest import COINS, KEY, PERIODS, SECRET, Sleeps, price_stub, sandbox_trader, small_config

PERIOD = PERIODS[0]


@pytest.fixture
def closes(small_store):
    panel = build_panel(small_store.read_market_data(), small_store.read_coins(), small_config().quality)
    return {p: reference_prices(panel, p, list(COINS)) for p in PERIODS}


def _consistent(store, stub) -> None:
    """Ledger positions equal the sum of the fills and the venue's balances; no doubled order."""
    ledger = Ledger(store)
    account = ledger.account("sandbox")
    assert ledger.consistent(account) == {}
    venue = stub.spot.balances
    for asset, qty in ledger.positions("sandbox").items():
        assert qty == pytest.approx(venue.get(asset.upper(), 0.0), rel=1e-9, abs=1e-9), asset
    for cid in ledger.orders("sandbox")["client_order_id"]:
        assert len(stub.spot.orders_with(cid)) <= 1, cid


def test_sandbox_cycle_on_the_stubbed_testnet(small_store, tmp_path, testnet, closes):
    price_stub(testnet, closes[PERIOD])
    testnet.spot.slippage_bps = 3.0
    result = sandbox_trader(small_store, tmp_path, testnet, PERIOD).run()
    assert result.status == "done" and result.sent == len(result.orders) > 0
    orders = result.orders
    assert (orders["status"] == "filled").all()
    steps = {f"{c.upper()}/USDT": testnet.spot.markets[f"{c.upper()}USDT"].step for c in COINS}
    for o in orders.itertuples(index=False):  # sized to the lot step, never above the ideal
        assert (
            o.quantity <= o.ideal_quantity
            and abs(o.quantity / steps[o.symbol] - round(o.quantity / steps[o.symbol])) < 1e-6
        )
    _consistent(small_store, testnet)
    again = sandbox_trader(small_store, tmp_path, testnet, PERIOD).run()
    assert again.status == "nothing_to_do" and again.sent == 0
    assert len(testnet.spot.orders) == len(orders)
    # Every private request was signed with the key and a signature (the stub refuses others).
    private = [
        r
        for r in testnet.requests
        if r.route in ("bn_order_new", "bn_order_get", "bn_account", "bn_my_trades")
    ]
    assert private and all(r.headers.get("x-mbx-apikey") == KEY and "signature" in r.params for r in private)
    # The parity page explains the deviations order by order: slippage, rounding, base-asset fees.
    parity = compute_parity(small_store, "sandbox")
    text = " ".join(parity.orders["explanation"])
    assert "filled +3.0 bps against the close (backtest: 0 bps)" in text
    assert "rounded" in text
    assert 0 < parity.max_abs_difference < 10
    assert "deviate from the backtest" in render_trade_report(parity)


def test_min_notional_skipped_by_sizing_or_rejected_by_the_venue(small_store, tmp_path, testnet, closes):
    price_stub(testnet, closes[PERIOD])
    testnet.spot.markets["XRPUSDT"].min_notional = 1e9
    testnet.faults = {"bn_order_new": {0: "reject_min_notional"}}
    result = sandbox_trader(small_store, tmp_path, testnet, PERIOD).run()
    by = result.orders.set_index("coin_id")
    skipped = by[by["status"] == "skipped"]
    assert "xrp" in skipped.index and "below the venue's minimum 1e+09" in skipped.at["xrp", "reason"]
    rejected = by[by["status"] == "rejected"]
    assert len(rejected) == 1 and rejected["reason"].iloc[0] == "Filter failure: NOTIONAL (-1013)"
    assert result.status == "done"
    _consistent(small_store, testnet)
    n = len(testnet.spot.orders)
    assert sandbox_trader(small_store, tmp_path, testnet, PERIOD).run().sent == 0  # not retried
    assert len(testnet.spot.orders) == n
    explained = compute_parity(small_store, "sandbox").orders.set_index("coin_id")["explanation"]
    assert explained["xrp"].startswith("skipped:") and explained[rejected.index[0]].startswith(
        "rejected by the venue"
    )


def test_partial_fill_is_recorded_and_the_rest_cancelled(small_store, tmp_path, testnet, closes):
    price_stub(testnet, closes[PERIOD])
    testnet.faults = {"bn_order_new": {0: "partial"}}
    result = sandbox_trader(small_store, tmp_path, testnet, PERIOD).run()
    first = result.orders.iloc[0]
    assert first["status"] == "canceled" and "the rest was cancelled" in first["reason"]
    assert 0 < first["filled_quantity"] < first["quantity"]
    assert testnet.spot.orders_with(first["client_order_id"])[0]["status"] == "CANCELED"
    _consistent(small_store, testnet)


def test_timeout_after_the_venue_accepted(small_store, tmp_path, testnet, closes):
    price_stub(testnet, closes[PERIOD])
    testnet.faults = {"bn_order_new": {0: "timeout_after_accept"}}
    testnet.slow_s = 1.5
    result = sandbox_trader(small_store, tmp_path, testnet, PERIOD, timeout_s=0.5).run()
    assert result.status == "done" and (result.orders["status"] == "filled").all()
    assert len(testnet.calls("bn_order_new")) == len(result.orders)  # looked up, not sent again
    _consistent(small_store, testnet)


def test_429_waits_for_retry_after(small_store, tmp_path, testnet, closes):
    price_stub(testnet, closes[PERIOD])
    testnet.faults = {"bn_order_new": {0: "429"}}
    testnet.retry_after = "3"
    sleeps = Sleeps()
    result = sandbox_trader(small_store, tmp_path, testnet, PERIOD, sleep=sleeps).run()
    assert result.status == "done" and 3.0 in sleeps.waits
    assert len(testnet.calls("bn_order_new")) == len(result.orders) + 1  # the refused request, then once
    _consistent(small_store, testnet)


def _half_filled_and_cancelled(done, first) -> None:
    row = done.orders.set_index("client_order_id").loc[first["client_order_id"]]
    assert row["status"] == "canceled" and row["filled_quantity"] == pytest.approx(
        first["quantity"] / 2, abs=1e-5
    )


def test_duplicate_client_order_id_is_looked_up_not_doubled(small_store, tmp_path, testnet, closes):
    price_stub(testnet, closes[PERIOD])
    testnet.faults = {"bn_order_new": {0: "duplicate"}}
    done = sandbox_trader(small_store, tmp_path, testnet, PERIOD).run()
    assert done.status == "done"
    first = done.orders.iloc[0]
    assert testnet.calls("bn_order_new")[0].params["newClientOrderId"] == first["client_order_id"]
    _half_filled_and_cancelled(done, first)
    assert len(testnet.spot.orders_with(first["client_order_id"])) == 1
    _consistent(small_store, testnet)


def test_an_order_the_ledger_lost_is_found_by_its_id(small_store, tmp_path, testnet, closes):
    price_stub(testnet, closes[PERIOD])
    decided = sandbox_trader(small_store, tmp_path, testnet, PERIOD).run(phase="decide")
    first = decided.orders.iloc[0]
    # A process placed the first order (it rests, half filled) and died before recording "sent".
    pair = first["symbol"].replace("/", "")
    testnet.spot.add_order(pair, first["side"].upper(), first["quantity"], first["client_order_id"], 0.5)
    done = sandbox_trader(small_store, tmp_path, testnet, PERIOD).run(phase="execute")
    assert done.status == "done" and done.sent == len(decided.orders) - 1, done.message
    assert any("reconciled as open" in n for n in done.notes)
    _half_filled_and_cancelled(done, first)
    assert len(testnet.spot.orders_with(first["client_order_id"])) == 1
    _consistent(small_store, testnet)


def test_price_band_and_balance_guards(small_store, tmp_path, testnet, closes):
    off = dict(closes[PERIOD])
    off["btc"] *= 1.10
    price_stub(testnet, off)
    refused = sandbox_trader(small_store, tmp_path, testnet, PERIOD).run()
    assert (refused.status, refused.guard) == ("refused", "price_band")
    assert "BTC/USDT" in refused.message and "nothing was sent" in refused.message
    assert testnet.spot.orders == []
    price_stub(testnet, closes[PERIOD])
    retried = sandbox_trader(small_store, tmp_path, testnet, PERIOD).run()
    assert retried.status == "done", retried.message
    testnet.spot.balances["BTC"] = testnet.spot.balances.get("BTC", 0.0) / 2  # funds moved outside Kallos
    price_stub(testnet, closes[PERIODS[1]])
    later = sandbox_trader(small_store, tmp_path, testnet, PERIODS[1]).run()
    assert (later.status, later.guard) == ("refused", "balance") and "btc" in later.message


def test_keys_only_from_the_environment_and_never_shown(small_store, tmp_path, testnet, closes, caplog):
    config = small_config()
    with pytest.raises(
        Exception, match=r"\$KALLOS_BINANCE_TESTNET_API_KEY and \$KALLOS_BINANCE_TESTNET_API_SECRET"
    ):
        open_venue("sandbox", config, env={})
    with pytest.raises(Exception, match="--base-url is for the sandbox"):
        open_venue("live", config, base_url=testnet.url, env={})
    env = {"KALLOS_BINANCE_TESTNET_API_KEY": KEY, "KALLOS_BINANCE_TESTNET_API_SECRET": SECRET}
    assert credentials("sandbox", env) == (KEY, SECRET)
    venue = open_venue("sandbox", config, base_url=testnet.url, env=env)
    assert KEY not in repr(venue) and SECRET not in repr(venue)
    caplog.set_level(logging.DEBUG)
    price_stub(testnet, closes[PERIOD])
    result = sandbox_trader(small_store, tmp_path, testnet, PERIOD).run()
    wrong = BinanceVenue("sandbox", KEY, "not-the-secret", base_url=testnet.url)
    trader = sandbox_trader(small_store, tmp_path, testnet, PERIODS[1])
    trader.venue = wrong
    with pytest.raises(VenueError) as err:
        trader.run()
    assert "Signature for this request is not valid" in str(err.value)
    dump = [str(err.value), result.message, *result.notes, caplog.text]
    with small_store.engine.connect() as conn:
        from sqlalchemy import inspect, text

        for table in inspect(conn).get_table_names():
            dump.append(str(conn.execute(text(f'SELECT * FROM "{table}"')).fetchall()))
    dump.append(render_trade_report(compute_parity(small_store, "sandbox")))
    blob = "\n".join(dump)
    assert KEY not in blob and SECRET not in blob and "not-the-secret" not in blob
