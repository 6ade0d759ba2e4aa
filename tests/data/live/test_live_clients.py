"""Live clients against the local stub: agreement with the CSV importers, every fault case,
bounded retries, Retry-After, the Demo-plan limit and keys that never leak."""

from __future__ import annotations

import datetime as dt
import logging
import traceback

import numpy as np
import pandas as pd
import pytest

from kallos.data import Store
from kallos.data.live import (
    BinanceClient,
    CoinGeckoClient,
    DemoPlanLimitError,
    LiveSourceError,
    RateLimiter,
    RetryPolicy,
    ingest_live,
)
from kallos.data.live.policy import parse_retry_after
from kallos.data.sources.binance import BinanceKlinesImporter
from kallos.data.sources.coingecko import CoinGeckoCsvImporter

# The span the stub fixtures cover (see conftest.py); NOW makes END yesterday's close.
START, END = dt.date(2021, 1, 1), dt.date(2021, 1, 20)
NOW = dt.datetime(2021, 1, 21, 12, tzinfo=dt.UTC)
VALUES = ["open", "high", "low", "close", "volume", "market_cap"]
ROUTE = {"coingecko": "cg_range", "binance": "bn_klines"}


def make_client(source, stub, policy, sleep, **kw):
    if source == "coingecko":
        return CoinGeckoClient(base_url=stub.coingecko_url, policy=policy, window_days=5, sleep=sleep, **kw)
    return BinanceClient(stub.url, policy=policy, page_limit=5, sleep=sleep)


def expected_rows(source, raw_tables, tmp_path, coin="btc") -> pd.DataFrame:
    """What the CSV importer makes of the same raw rows, restricted to [START, END]."""
    if source == "coingecko":
        raw = raw_tables["coingecko"]["bitcoin" if coin == "btc" else "ethereum"]
        f = tmp_path / f"{coin}-usd-max.csv"
        raw[["snapped_at", "price", "market_cap", "total_volume"]].to_csv(f, index=False)
        market = CoinGeckoCsvImporter().read(f).market
    else:
        raw = raw_tables["binance"][f"{coin.upper()}USDT"]
        f = tmp_path / f"{coin.upper()}USDT_1d.csv"
        raw.rename(columns={"date": "timestamp"}).to_csv(f, index=False)
        market = BinanceKlinesImporter(drop_last=False).read(f).market
    keep = (market["date"] >= pd.Timestamp(START)) & (market["date"] <= pd.Timestamp(END))
    return market[keep].reset_index(drop=True)


def stored(store: Store, source: str) -> pd.DataFrame:
    m = store.read_market_data()
    return m[m["source"] == source].reset_index(drop=True)


def assert_same_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert not got.duplicated(["coin_id", "date", "source"]).any()
    assert list(got["date"]) == list(want["date"])
    assert list(got["coin_id"]) == list(want["coin_id"])
    for c in VALUES:
        np.testing.assert_allclose(got[c].astype(float), want[c].astype(float), rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("source", ["coingecko", "binance"])
def test_live_rows_equal_the_csv_importer_rows(source, stub, raw_tables, tmp_path, fast_policy, sleep_log):
    client = make_client(source, stub, fast_policy, sleep_log)
    got = pd.concat(list(client.fetch_daily("btc", START, END)), ignore_index=True)
    want = expected_rows(source, raw_tables, tmp_path)
    assert len(want) == 20
    assert_same_rows(got, want)
    if source == "coingecko":  # the CoinGecko row dated D is the snapshot of D+1 00:00 UTC
        first = stub.calls("cg_range")[0].params
        assert int(first["from"]) == int(pd.Timestamp("2021-01-02", tz="UTC").timestamp())
        assert first["interval"] == "daily"
        # sanity value from the data README: BTC row 2020-12-31 (snapshot 2021-01-01) = 29,022 USD
    else:  # Binance 2021-01-01 close 29,331.69 (the kline opened 2021-01-01 00:00 UTC)
        assert got.loc[got["date"] == "2021-01-01", "close"].item() == pytest.approx(29331.69)


FAULTS = ["429", "500", "slow", "malformed", "empty", "overlap"]


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("source", ["coingecko", "binance"])
def test_fault_on_a_later_page_loses_and_duplicates_nothing(
    source, fault, stub, raw_tables, tmp_path, fast_policy, sleep_log
):
    stub.faults = {ROUTE[source]: {1: fault, 2: fault if fault == "500" else None}}
    stub.slow_s = 1.5
    store = Store(f"sqlite:///{tmp_path / 'k.db'}")
    client = make_client(source, stub, fast_policy, sleep_log)
    report = ingest_live(store, client, ["btc"], start=START, end=END, clock=lambda: NOW)
    assert_same_rows(stored(store, source), expected_rows(source, raw_tables, tmp_path))
    binance_overlap = fault == "overlap" and source == "binance"
    # an overlapping page re-sends 2 stored days; they are dropped (ccxt filters by ``since``,
    # CoinGecko rows are cut to the window), and a Binance page then covers 2 days fewer, so one
    # more page is needed
    assert report.rows == {"btc": 20}
    calls = stub.calls(ROUTE[source])
    retried = {"429": 1, "500": 2, "slow": 1, "malformed": 1, "empty": 1, "overlap": int(binance_overlap)}[
        fault
    ]
    assert len(calls) == 4 + retried  # 4 pages of 5 days, plus the retries
    if fault == "429":
        assert 7.0 in sleep_log.waits  # Retry-After honoured
    if fault == "overlap":  # the overlapping page started earlier, yet every date is stored once
        assert stored(store, source)["date"].is_unique


@pytest.mark.parametrize("source", ["coingecko", "binance"])
def test_a_dead_provider_fails_in_bounded_attempts_and_keeps_whole_chunks(source, stub, tmp_path, sleep_log):
    stub.faults = {ROUTE[source]: {i: "500" for i in range(1, 50)}}
    policy = RetryPolicy(
        calls_per_minute=0, timeout_s=0.5, max_attempts=3, max_total_s=5, backoff_initial_s=0.01
    )
    store = Store(f"sqlite:///{tmp_path / 'k.db'}")
    with pytest.raises(LiveSourceError, match="gave up after 3 attempt"):
        ingest_live(
            store,
            make_client(source, stub, policy, sleep_log),
            ["btc"],
            start=START,
            end=END,
            clock=lambda: NOW,
        )
    assert len(stub.calls(ROUTE[source])) == 1 + 3
    rows = stored(store, source)
    assert list(rows["date"]) == list(pd.date_range(START, periods=5))  # the first chunk, whole


def test_binance_never_stores_the_open_day(stub, tmp_path, fast_policy, sleep_log):
    today = dt.datetime.now(dt.UTC).date()
    days = pd.date_range(today - dt.timedelta(days=6), today)
    stub.binance["BTCUSDT"] = pd.DataFrame(
        {"date": days, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10.0}
    )
    store = Store(f"sqlite:///{tmp_path / 'k.db'}")
    ingest_live(store, make_client("binance", stub, fast_policy, sleep_log), ["btc"], start=days[0].date())
    got = stored(store, "binance")
    assert got["date"].max().date() == today - dt.timedelta(days=1)
    assert len(got) == 6
    assert got["ingested_at"].notna().all()


def test_demo_plan_limit_is_a_clear_error(stub, fast_policy, sleep_log):
    stub.demo_oldest = dt.date(2021, 1, 10)
    client = CoinGeckoClient(
        "demo-key", "demo", base_url=stub.coingecko_url, policy=fast_policy, sleep=sleep_log
    )
    with pytest.raises(DemoPlanLimitError) as info:
        list(client.fetch_daily("btc", START, END))
    msg = str(info.value)
    assert "Demo plan serves only the last 365 days" in msg
    assert "COINGECKO_PRO_API_KEY" in msg and "CSV" in msg
    assert len(stub.calls("cg_range")) == 1  # not retried


SECRET = "CG-s3cr3t-KEY-0123456789"


def test_api_key_is_sent_but_never_leaks(stub, fast_policy, sleep_log, caplog):
    caplog.set_level(logging.DEBUG)
    stub.api_key, stub.key_header = SECRET, "x-cg-demo-api-key"
    client = CoinGeckoClient.from_env(
        {"COINGECKO_DEMO_API_KEY": SECRET}, base_url=stub.coingecko_url, policy=fast_policy, sleep=sleep_log
    )
    texts = [repr(client), str(client)]
    list(client.fetch_daily("btc", START, dt.date(2021, 1, 3)))
    assert stub.calls("cg_range")[0].headers["x-cg-demo-api-key"] == SECRET
    for fault in ("500", "slow", "malformed"):  # errors after exhausted retries
        stub.faults = {"cg_range": {i: fault for i in range(len(stub.requests), len(stub.requests) + 10)}}
        with pytest.raises(LiveSourceError) as info:
            list(client.fetch_daily("btc", START, dt.date(2021, 1, 3)))
        texts += [str(info.value), repr(info.value), "".join(traceback.format_exception(info.value))]
    stub.faults, stub.api_key = {}, "another-key"  # a refused key: 401
    with pytest.raises(LiveSourceError, match="HTTP 401") as info:
        list(client.fetch_daily("btc", START, dt.date(2021, 1, 3)))
    texts += [str(info.value), repr(info.value), "".join(traceback.format_exception(info.value))]
    texts.append(caplog.text)
    assert not [t for t in texts if SECRET in t]


def test_plan_choice_from_environment(stub):
    pro = CoinGeckoClient.from_env({"COINGECKO_PRO_API_KEY": "p", "COINGECKO_DEMO_API_KEY": "d"})
    demo = CoinGeckoClient.from_env({"COINGECKO_DEMO_API_KEY": "d"})
    public = CoinGeckoClient.from_env({})
    assert (pro.plan.header, pro.base_url) == ("x-cg-pro-api-key", "https://pro-api.coingecko.com/api/v3")
    assert (demo.plan.header, demo.base_url) == ("x-cg-demo-api-key", "https://api.coingecko.com/api/v3")
    assert public.plan.header is None
    with pytest.raises(LiveSourceError, match="needs an API key"):
        CoinGeckoClient(None, "pro")


def test_rate_limiter_spaces_calls_evenly():
    now = [0.0]
    waits: list[float] = []

    def sleep(s: float) -> None:
        waits.append(s)
        now[0] += s

    limiter = RateLimiter(30, clock=lambda: now[0], sleep=sleep)  # one call per 2 s
    for _ in range(4):
        limiter.acquire()
    assert waits == pytest.approx([2.0, 2.0, 2.0])
    now[0] += 10.0  # idle time is not banked beyond one interval
    limiter.acquire()
    assert len(waits) == 3


@pytest.mark.parametrize(
    ("header", "seconds"), [("7", 7.0), ("0", 0.0), ("", None), ("soon", None), ("-3", 0.0)]
)
def test_parse_retry_after(header, seconds):
    assert parse_retry_after(header) == seconds


def test_unknown_binance_pair_names_the_market(stub, fast_policy, sleep_log):
    client = make_client("binance", stub, fast_policy, sleep_log)
    with pytest.raises(LiveSourceError, match="no spot market DOGE/USDT"):
        list(client.fetch_daily("doge", START, END))


@pytest.mark.parametrize(
    ("now", "coingecko", "binance"),
    [
        ("2024-03-10 00:20", "2024-03-08", "2024-03-09"),  # CoinGecko's 00:00 snapshot not out yet
        ("2024-03-10 00:45", "2024-03-09", "2024-03-09"),
        ("2024-03-10 23:59", "2024-03-09", "2024-03-09"),
    ],
)
def test_latest_close_never_reaches_an_open_or_unpublished_day(now, coingecko, binance):
    t = pd.Timestamp(now, tz="UTC").to_pydatetime()
    assert str(CoinGeckoClient().latest_close(t)) == coingecko
    assert str(BinanceClient().latest_close(t)) == binance
