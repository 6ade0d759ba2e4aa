"""Paper cycles on real data: idempotent reruns, backtest parity, every guard, the decide/execute split."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from kallos.data import schema
from kallos.data.locks import store_lock
from kallos.pipeline.study import decide
from kallos.trading import Ledger, TradingError, cycle_at
from kallos.trading.parity import compute_parity, shadow_config

from .conftest import PERIODS, Clock, copy_store, paper_trader, small_config


@pytest.fixture(scope="module")
def traded(small_db, tmp_path_factory):
    """The five small periods traded in paper mode, each run twice (read-only for the tests)."""
    tmp = tmp_path_factory.mktemp("traded")
    store = copy_store(small_db, tmp)
    results = []
    for period in PERIODS:
        first = paper_trader(store, tmp).run(as_of=period)
        again = paper_trader(store, tmp).run(as_of=period)
        results.append((first, again))
    return store, results


def test_each_period_trades_once_and_a_rerun_sends_nothing(traded):
    store, results = traded
    ledger = Ledger(store)
    for first, again in results:
        assert first.status == "done" and first.sent > 0 and first.sent == len(first.orders)
        assert again.status == "nothing_to_do" and again.sent == 0 and "nothing sent" in again.message
    orders = ledger.orders("paper")
    assert orders["client_order_id"].is_unique and (orders["status"] == "filled").all()
    assert len(ledger.fills("paper")) == len(orders)  # one fill per order: nothing doubled
    assert ledger.consistent(ledger.account("paper")) == {}
    assert set(ledger.cycles("paper")["status"]) == {"done"}


def test_paper_account_equals_the_shadow_backtest(traded):
    store, _ = traded
    parity = compute_parity(store, "paper")
    assert list(parity.periods["period"]) == PERIODS and set(parity.periods["status"]) == {"done"}
    assert parity.max_abs_difference < 1e-9
    p = parity.periods
    assert (p["fees"] - p["cost_backtest"]).abs().max() < 1e-9  # fills and costs included
    assert (p["turnover"] - p["turnover_backtest"]).abs().max() < 1e-12
    assert p["nav"].iloc[0] == 10_000.0 and p["nav"].nunique() == len(p)
    assert (parity.orders["explanation"] == "as the backtest").all()
    daily = parity.daily.dropna()
    assert len(daily) == (PERIODS[-1] - PERIODS[0]).days + 1
    assert (daily["nav"] - daily["nav_backtest"]).abs().max() < 1e-9


def test_every_order_records_the_decision_that_caused_it(traded):
    store, _ = traded
    ledger = Ledger(store)
    account = ledger.account("paper")
    config = shadow_config(account, PERIODS[-1])
    from kallos.data import build_panel

    panel = build_panel(store.read_market_data(), store.read_coins(), config.quality)
    weights = decide(panel, config, through=PERIODS[-1]).weights
    expected = weights[weights["key"] == account.strategy].set_index(["date", "coin_id"])["weight"]
    orders = ledger.orders("paper")
    cycles = ledger.cycles("paper").set_index("period")
    for o in orders.itertuples(index=False):
        period = pd.Timestamp(o.period)
        assert o.client_order_id == f"k-{account.uid}-{period:%Y%m%d}-{o.coin_id}"
        assert o.run_id == cycles.at[period, "run_id"]
        assert o.target_weight == expected.get((period, o.coin_id), 0.0)


def test_kill_switch_stops_the_cycle_until_removed(small_store, tmp_path):
    trader = paper_trader(small_store, tmp_path)
    trader.kill_switch.parent.mkdir(parents=True, exist_ok=True)
    trader.kill_switch.write_text("stop")
    refused = trader.run(as_of=PERIODS[0])
    assert (refused.status, refused.guard) == ("refused", "kill_switch")
    assert "remove the file to resume" in refused.message
    assert Ledger(small_store).account("paper") is None  # nothing at all happened
    trader.kill_switch.unlink()
    assert trader.run(as_of=PERIODS[0]).status == "done"


def test_stale_data_is_refused(small_store, tmp_path):
    beyond = paper_trader(small_store, tmp_path).run(as_of=pd.Timestamp("2026-01-18"))
    assert (beyond.status, beyond.guard) == ("refused", "stale_data")
    assert "last close is 2026-01-11, before the decision close 2026-01-18" in beyond.message
    # Run on Thursday: the current period is Sunday's close, four days old.
    late = paper_trader(small_store, tmp_path, clock=Clock(pd.Timestamp("2026-01-07"))).run()
    assert (late.status, late.guard, late.period) == ("refused", "stale_data", pd.Timestamp("2026-01-04"))
    assert "days old (trading.stale_days = 2)" in late.message
    # One coin's source stopped four days before the close: its price would be carried forward.
    with small_store.engine.begin() as conn:
        t = schema.daily_market_data
        conn.execute(t.delete().where((t.c.coin_id == "btc") & (t.c.date > dt.date(2025, 12, 24))))
    stale = paper_trader(small_store, tmp_path).run(as_of=PERIODS[1])
    assert stale.guard == "stale_data" and "btc (last observed close 2025-12-24)" in stale.message
    assert Ledger(small_store).orders("paper").empty  # refused cycles send nothing


def test_fresh_rows_must_pass_the_data_check(small_store, tmp_path):
    spike = pd.DataFrame(
        [{"coin_id": "eth", "date": pd.Timestamp("2025-12-20"), "source": "coingecko", "close": 25_000.0}]
    )
    small_store.upsert(schema.daily_market_data, spike)
    result = paper_trader(small_store, tmp_path).run(as_of=PERIODS[0])
    assert (result.status, result.guard) == ("refused", "data_check")
    assert "return_cap" in result.message and "eth coingecko 2025-12-20" in result.message


@pytest.mark.parametrize(
    ("overrides", "guard", "text"),
    [
        ({"trading.max_turnover": 0.5}, "max_turnover", "(trading.max_turnover = 50%)"),
        ({"trading.max_order_notional": 1000.0}, "max_order_notional", "exceeds trading.max_order_notional"),
    ],
)
def test_plan_limits_refuse_before_anything_is_recorded(small_store, tmp_path, overrides, guard, text):
    result = paper_trader(small_store, tmp_path, small_config(**overrides)).run(as_of=PERIODS[0])
    assert (result.status, result.guard) == ("refused", guard) and text in result.message
    ledger = Ledger(small_store)
    assert ledger.orders("paper").empty and ledger.positions("paper") == {"USDT": 10_000.0}
    assert ledger.cycle("paper", PERIODS[0])["guard"] == guard  # recorded for kallos status


def test_one_cycle_per_account_at_a_time(small_store, tmp_path):
    with store_lock(small_store, "paper", "trade"):
        result = paper_trader(small_store, tmp_path).run(as_of=PERIODS[0])
    assert (result.status, result.guard) == ("refused", "lock")
    assert "one cycle per account at a time" in result.message


def test_the_account_keeps_its_mode_strategy_and_study(small_store, tmp_path):
    paper_trader(small_store, tmp_path).run(as_of=PERIODS[0])
    with pytest.raises(TradingError, match=r"changed: backtest\.cost_bps"):
        paper_trader(small_store, tmp_path, small_config(**{"backtest.cost_bps": 20})).run(as_of=PERIODS[1])
    with pytest.raises(TradingError, match="trades historical_mean/max_sharpe, the config says equal_weight"):
        paper_trader(small_store, tmp_path, small_config(**{"trading.strategy": "equal_weight"})).run(
            as_of=PERIODS[1]
        )
    # Risk limits may change: they are not the study.
    assert (
        paper_trader(small_store, tmp_path, small_config(**{"trading.price_band": 0.02}))
        .run(as_of=PERIODS[1])
        .status
        == "done"
    )
    with pytest.raises(TradingError, match="not a decision close"):
        paper_trader(small_store, tmp_path).run(as_of=pd.Timestamp("2026-01-06"))
    with pytest.raises(TradingError, match="before the account's first period"):
        paper_trader(small_store, tmp_path).run(as_of=pd.Timestamp("2025-12-14"))


def test_decide_then_execute(small_store, tmp_path):
    with pytest.raises(TradingError, match="run `kallos trade --phase decide` first"):
        paper_trader(small_store, tmp_path).run(as_of=PERIODS[0], phase="execute")
    decided = paper_trader(small_store, tmp_path).run(as_of=PERIODS[0], phase="decide")
    assert decided.status == "decided" and (decided.orders["status"] == "planned").all()
    again = paper_trader(small_store, tmp_path).run(as_of=PERIODS[0], phase="decide")
    pd.testing.assert_frame_equal(again.orders, decided.orders)  # decided once
    lines = []
    done = paper_trader(small_store, tmp_path, on_plan=lines.extend).run(as_of=PERIODS[0], phase="execute")
    assert done.status == "done" and done.sent == len(decided.orders)
    assert len(lines) == len(decided.orders) and all(
        cid in " ".join(lines) for cid in done.orders["client_order_id"]
    )


def test_market_cap_holds_between_reconstitutions(small_store, tmp_path):
    config = small_config(**{"trading.strategy": "market_cap"})
    statuses = [paper_trader(small_store, tmp_path, config).run(as_of=p).status for p in PERIODS]
    assert statuses == ["done", "held", "done", "held", "held"]
    parity = compute_parity(small_store, "paper")
    assert parity.max_abs_difference < 1e-9


def test_cycle_ingests_the_missing_days_waiting_for_coingecko(small_store, tmp_path, data_dir):
    """The store ends two days before the close; the cycle waits for CoinGecko's 00:40 publication,
    ingests both sources from the stub, then trades."""
    from kallos.data.live import BinanceClient, CoinGeckoClient, RetryPolicy
    from kallos.testing import MarketStub

    period = PERIODS[-1]  # 2026-01-11
    with small_store.engine.begin() as conn:
        t = schema.daily_market_data
        conn.execute(t.delete().where(t.c.date > dt.date(2026, 1, 9)))
    ids = {"btc": "bitcoin", "eth": "ethereum", "xrp": "ripple", "bnb": "binancecoin", "sol": "solana"}
    raw = {}
    for coin, api_id in ids.items():
        frame = pd.read_csv(data_dir / "coingecko_daily_top50" / "original" / f"{coin}-usd-max.csv.gz")
        frame["stamp"] = pd.to_datetime(frame["snapped_at"], utc=True)
        raw[api_id] = frame[frame["stamp"] >= pd.Timestamp("2026-01-01", tz="UTC")].reset_index(drop=True)
    policy = RetryPolicy(calls_per_minute=0, timeout_s=2, max_attempts=2, backoff_initial_s=0.01)
    clock = Clock(period)  # 00:30 UTC: CoinGecko publishes the close at about 00:35

    def sleep(seconds: float) -> None:
        clock.now += dt.timedelta(seconds=seconds)

    with MarketStub(coingecko=raw) as stub:
        clients = {
            "coingecko": CoinGeckoClient(base_url=stub.coingecko_url, policy=policy, sleep=sleep),
            "binance": BinanceClient(base_url=stub.url, policy=policy, sleep=sleep),
        }
        config = small_config(**{"trading.ingest": ["coingecko", "binance"]})
        trader = paper_trader(small_store, tmp_path, config, clock=clock, sleep=sleep, ingest_clients=clients)
        result = trader.run()
    assert result.status == "done" and result.period == period
    assert clock.now >= cycle_at(period, "00:40")  # it waited for the publication
    assert any(n.startswith("coingecko: 10 rows") for n in result.notes), result.notes  # 2 days x 5 coins
    assert any(n.startswith("binance:") for n in result.notes)
    assert pd.Timestamp(small_store.coverage().query("source == 'coingecko'")["last"].max()) == period
