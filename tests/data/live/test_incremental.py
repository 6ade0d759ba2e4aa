"""Incremental ingestion: only missing days are fetched; concurrent and killed ingests leave a
consistent store (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from kallos.data import Store
from kallos.data.live import BinanceClient, CoinGeckoClient, RetryPolicy, ingest_live, last_dates
from kallos.data.locks import advisory_key, ingest_lock, lock_path
from kallos.exceptions import ConfigError, StoreError

START, END = dt.date(2021, 1, 1), dt.date(2021, 1, 20)
NOW = dt.datetime(2021, 1, 21, 12, tzinfo=dt.UTC)
KEY = ["coin_id", "date", "source"]
VALUES = ["open", "high", "low", "close", "volume", "market_cap"]


def policy(timeout_s: float = 5.0) -> RetryPolicy:
    return RetryPolicy(
        calls_per_minute=0, timeout_s=timeout_s, max_attempts=3, max_total_s=30, backoff_initial_s=0.01
    )


def binance(stub) -> BinanceClient:
    return BinanceClient(stub.url, policy=policy(), page_limit=5, sleep=lambda s: None)


def rows(store: Store, source: str = "binance") -> pd.DataFrame:
    m = store.read_market_data()
    return m[m["source"] == source].sort_values(KEY, ignore_index=True)[KEY + VALUES]


def test_second_run_fetches_only_the_new_day(stub, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'k.db'}")
    first_end = END - dt.timedelta(days=1)
    cg = CoinGeckoClient(base_url=stub.coingecko_url, policy=policy(), window_days=30, sleep=lambda s: None)
    for client in (binance(stub), cg):
        ingest_live(store, client, ["btc", "eth"], start=START, end=first_end, clock=lambda: NOW)
    assert last_dates(store, "binance") == {"btc": first_end, "eth": first_end}
    before = {src: rows(store, src) for src in ("binance", "coingecko")}
    n_bn, n_cg = len(stub.calls("bn_klines")), len(stub.calls("cg_range"))

    for client in (binance(stub), cg):
        report = ingest_live(store, client, ["btc", "eth"], end=END, clock=lambda: NOW)
        assert report.ranges == {"btc": (END, END), "eth": (END, END)}
        assert report.rows == {"btc": 1, "eth": 1}
    new_bn, new_cg = stub.calls("bn_klines")[n_bn:], stub.calls("cg_range")[n_cg:]
    end_ms = int(pd.Timestamp(END, tz="UTC").timestamp() * 1000)
    assert [r.params["startTime"] for r in new_bn] == [str(end_ms)] * 2  # one request per coin, from END
    next_day = int(pd.Timestamp(END + dt.timedelta(days=1), tz="UTC").timestamp())
    assert [int(r.params["from"]) for r in new_cg] == [next_day] * 2  # the snapshot of END+1 00:00
    for src in ("binance", "coingecko"):
        after = rows(store, src)
        assert len(after) == len(before[src]) + 2
        pd.testing.assert_frame_equal(
            after[after["date"] < pd.Timestamp(END)].reset_index(drop=True), before[src]
        )
    # a third run has nothing to do and asks nothing
    report = ingest_live(store, binance(stub), ["btc", "eth"], end=END, clock=lambda: NOW)
    assert report.rows == {} and len(stub.calls("bn_klines")) == n_bn + 2


def test_backfill_starts_at_start_when_later_than_the_last_row(stub, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'k.db'}")
    ingest_live(store, binance(stub), ["btc"], start=START, end=dt.date(2021, 1, 5), clock=lambda: NOW)
    report = ingest_live(
        store, binance(stub), ["btc"], start=dt.date(2021, 1, 15), end=END, clock=lambda: NOW
    )
    assert report.ranges == {"btc": (dt.date(2021, 1, 15), END)}


def test_end_before_start_is_an_error_not_up_to_date(stub, tmp_path):
    """Issue 10.10: --end before --start exited 0 with "up to date (last None)"."""
    store = Store(f"sqlite:///{tmp_path / 'k.db'}")
    with pytest.raises(ConfigError, match=r"binance: end 2021-01-05 is before start 2021-01-10"):
        ingest_live(
            store,
            binance(stub),
            ["btc"],
            start=dt.date(2021, 1, 10),
            end=dt.date(2021, 1, 5),
            clock=lambda: NOW,
        )
    with pytest.raises(
        ConfigError, match=r"start 2021-02-01 \(--start\) is after 2021-01-20, the last closed"
    ):
        ingest_live(store, binance(stub), ["btc"], start=dt.date(2021, 2, 1), clock=lambda: NOW)
    assert stub.calls("bn_klines") == [] and store.is_empty()


@pytest.fixture
def backend_store(backend_url):
    store = Store(*backend_url)
    yield store
    store.dispose()


def expected(stub, tmp_path) -> pd.DataFrame:
    ref = Store(f"sqlite:///{tmp_path / 'reference.db'}")
    ingest_live(ref, binance(stub), ["btc", "eth"], start=START, end=END, clock=lambda: NOW)
    stub.requests.clear()
    return rows(ref)


def test_two_concurrent_ingests_fetch_once_and_store_once(stub, tmp_path, backend_store):
    want = expected(stub, tmp_path)
    stub.delays = {"bn_klines": (0, 0.05)}
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ingest_live(backend_store, binance(stub), ["btc", "eth"], start=START, end=END, clock=lambda: NOW)
        except BaseException as err:  # collected, asserted empty below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads) and not errors
    pd.testing.assert_frame_equal(rows(backend_store), want)
    # the lock serialised them: the second found everything stored and asked for nothing
    assert len(stub.calls("bn_klines")) == 8


def test_lock_timeout_names_the_source(tmp_path, backend_store):
    with ingest_lock(backend_store, "binance"):
        box: list[BaseException] = []
        t = threading.Thread(target=lambda: _try_lock(backend_store, box))
        t.start()
        t.join(10)
    assert len(box) == 1 and isinstance(box[0], StoreError) and "binance" in str(box[0])
    with ingest_lock(backend_store, "binance", timeout=0.2):  # released: free again
        pass
    if backend_store.dialect == "sqlite":
        assert lock_path(backend_store, "binance").exists()
    assert advisory_key("a") != advisory_key("b")


def _try_lock(store: Store, box: list[BaseException]) -> None:
    try:
        with ingest_lock(store, "binance", timeout=0.3):
            pass
    except StoreError as err:
        box.append(err)


RUNNER = """
import datetime as dt, sys
from kallos.data import Store
from kallos.data.live import BinanceClient, RetryPolicy, ingest_live
url, schema, base = sys.argv[1], sys.argv[2] or None, sys.argv[3]
store = Store(url, schema_name=schema)
client = BinanceClient(base, policy=RetryPolicy(calls_per_minute=0, timeout_s=30), page_limit=5)
now = dt.datetime(2021, 1, 21, 12, tzinfo=dt.UTC)
start, end = dt.date(2021, 1, 1), dt.date(2021, 1, 20)
ingest_live(store, client, ["btc", "eth"], start=start, end=end, clock=lambda: now)
print("done")
"""


def test_killed_ingest_leaves_whole_chunks_and_the_rerun_completes(
    stub, tmp_path, backend_url, backend_store
):
    want = expected(stub, tmp_path)
    stub.delays = {"bn_klines": (3, 30.0)}  # pages 4+ hang: the runner is killed while waiting
    url, schema = backend_url
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, url, schema or "", stub.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        while len(stub.calls("bn_klines")) < 4 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    partial = rows(backend_store)
    # exactly the first three pages of btc: whole chunks only
    assert list(partial["coin_id"]) == ["btc"] * 15
    pd.testing.assert_frame_equal(partial, want[want["coin_id"] == "btc"].head(15).reset_index(drop=True))
    assert last_dates(backend_store, "binance") == {"btc": dt.date(2021, 1, 15)}

    stub.delays = {}
    n = len(stub.calls("bn_klines"))
    # the dead process's lock is gone (kernel / server released it): a bounded wait must succeed
    ingest_live(
        backend_store, binance(stub), ["btc", "eth"], start=START, end=END, lock_timeout=10, clock=lambda: NOW
    )
    pd.testing.assert_frame_equal(rows(backend_store), want)
    assert len(stub.calls("bn_klines")) - n == 1 + 4  # btc resumes at 2021-01-16; eth whole
