"""SIGKILL mid-cycle, then a rerun: the account equals an uninterrupted run's, nothing doubled or lost.

The cycle runs in a child process that kills itself (SIGKILL: no cleanup, no ``finally``) at a
step: after the decision is recorded, after an order is marked sent, after the venue filled it but
before the fill is recorded, after a fill is recorded, after the cycle is finished. The rerun
reconciles by client order id and finishes the period.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from kallos.data import Store, build_panel
from kallos.testing import MarketStub, SpotExchange, SpotMarket
from kallos.trading import Ledger, reference_prices

from .conftest import (
    COINS,
    KEY,
    PERIODS,
    SECRET,
    copy_store,
    paper_trader,
    price_stub,
    sandbox_trader,
    small_config,
)

RUNNER = Path(__file__).with_name("kill_runner.py")
FIRST, SECOND = PERIODS[0], PERIODS[1]


def _kill(
    db: Path, out: Path, mode: str, period: pd.Timestamp, step: str, n: int, url: str | None = None
) -> None:
    env = {**os.environ, "STUB_KEY": KEY, "STUB_SECRET": SECRET}
    args = [sys.executable, str(RUNNER), str(db), str(out), mode, str(period.date()), step, str(n)]
    proc = subprocess.run(
        [*args, *([url] if url else [])], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr


def _state(store: Store, account: str, sandbox: bool = False) -> dict[str, pd.DataFrame]:
    ledger = Ledger(store)
    uid = f"k-{ledger.account(account).uid}-"  # accounts of two stores differ by their random uid
    orders = ledger.orders(account)[
        ["client_order_id", "status", "quantity", "filled_quantity", "average_price", "fee_quote", "run_id"]
    ]
    fills = ledger.fills(account).drop(columns=["traded_at"] if sandbox else [])
    nav = ledger.nav(account)[["date", "nav", "cash", "nav_after", "fees"]]
    cycles = ledger.cycles(account)[["period", "status", "run_id", "nav", "cost", "turnover"]]
    positions = pd.Series(ledger.positions(account)).sort_index()
    assert ledger.consistent(ledger.account(account)) == {}
    for frame in (orders, fills):
        frame["client_order_id"] = frame["client_order_id"].str.replace(uid, "k-", regex=False)
    if not sandbox:  # paper fill ids are client order ids
        fills["fill_id"] = fills["fill_id"].str.replace(uid, "k-", regex=False)
    return {"orders": orders, "fills": fills, "nav": nav, "cycles": cycles, "positions": positions.to_frame()}


def _assert_same(a: dict, b: dict) -> None:
    for key in a:
        pd.testing.assert_frame_equal(
            a[key].reset_index(drop=True),
            b[key].reset_index(drop=True),
            check_exact=False,
            rtol=1e-12,
            atol=1e-9,
            obj=key,
        )


@pytest.fixture(scope="module")
def after_first(tmp_path_factory, small_db) -> Path:
    """The small store after a paper cycle of the first period (the killed cycle has holdings to sell)."""
    tmp = tmp_path_factory.mktemp("kill-base")
    store = copy_store(small_db, tmp)
    assert paper_trader(store, tmp).run(as_of=FIRST).status == "done"
    store.dispose()
    return tmp / "kallos.db"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, after_first) -> dict:
    tmp = tmp_path_factory.mktemp("kill-reference")
    store = copy_store(after_first, tmp)
    assert paper_trader(store, tmp).run(as_of=SECOND).status == "done"
    return _state(store, "paper")


KILL_POINTS = [("decided", 1), ("sent", 1), ("placed", 2), ("recorded", 3), ("done", 1)]


@pytest.mark.slow
@pytest.mark.parametrize(("step", "n"), KILL_POINTS, ids=[f"{s}{n}" for s, n in KILL_POINTS])
def test_paper_cycle_killed_then_rerun_equals_an_uninterrupted_run(
    tmp_path, after_first, uninterrupted, step, n
):
    shutil.copy(after_first, tmp_path / "kallos.db")
    _kill(tmp_path / "kallos.db", tmp_path / "out", "paper", SECOND, step, n)
    store = Store(f"sqlite:///{tmp_path / 'kallos.db'}")
    rerun = paper_trader(store, tmp_path).run(as_of=SECOND)
    assert rerun.status == ("nothing_to_do" if step == "done" else "done")
    _assert_same(_state(store, "paper"), uninterrupted)


def _testnet() -> MarketStub:
    spot = SpotExchange(
        KEY,
        SECRET,
        markets={f"{c.upper()}USDT": SpotMarket(c.upper(), "USDT", 1.0) for c in COINS},
        balances={"USDT": 10_000.0},
    )
    return MarketStub(spot=spot)


@pytest.mark.parametrize(
    ("step", "n"), [("placed", 1), pytest.param("sent", 2, marks=pytest.mark.slow)], ids=["placed1", "sent2"]
)
def test_sandbox_cycle_killed_after_the_venue_accepted(tmp_path, small_db, step, n):
    """Killed after the venue took an order, before it was recorded: the rerun finds it by id."""
    runs = {}
    for name in ("uninterrupted", "killed"):
        folder = tmp_path / name
        folder.mkdir()
        store = copy_store(small_db, folder)
        panel = build_panel(store.read_market_data(), store.read_coins(), small_config().quality)
        with _testnet() as stub:
            price_stub(stub, reference_prices(panel, FIRST, list(COINS)))
            if name == "killed":
                _kill(folder / "kallos.db", folder / "out", "sandbox", FIRST, step, n, stub.url)
            result = sandbox_trader(store, folder, stub, FIRST).run()
            assert result.status == "done"
            runs[name] = (_state(store, "sandbox", sandbox=True), dict(stub.spot.balances), result)
            for cid in result.orders["client_order_id"]:
                assert len(stub.spot.orders_with(cid)) == 1  # never sent twice
        store.dispose()
    (expected, venue, _), (state, killed_venue, rerun) = runs["uninterrupted"], runs["killed"]
    assert any("reconciled as filled" in note or "sent again" in note for note in rerun.notes)
    _assert_same(state, expected)
    assert killed_venue == pytest.approx(venue)
