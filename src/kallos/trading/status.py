"""``kallos status``: an account's holdings, its last cycle, the next one and any guard that fired."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from kallos.config import StudyConfig
from kallos.data import Store
from kallos.data.locks import store_lock
from kallos.exceptions import StoreError
from kallos.trading.calendar import next_cycle
from kallos.trading.ledger import Account, Ledger

__all__ = ["AccountStatus", "account_status"]


@dataclass(frozen=True)
class AccountStatus:
    """What ``kallos status`` shows.

    Attributes
    ----------
    account : the account (None when it does not exist yet).
    positions : asset, quantity, reference price and value at the last decision close.
    nav, nav_date : the last mark (after trading when the cycle finished).
    last_cycle : the latest cycle row (period, status, guard, message, ...), or None.
    last_guard : the latest cycle a guard refused (period, guard, message), or None.
    next_period, next_run : the next decision close and when its cycle runs (UTC).
    kill_switch : the kill-switch file and whether it exists.
    locked : another process holds the account's lock (a cycle or ``kallos schedule --run``).
    inconsistent : asset -> position minus the sum of its fills (empty when consistent).
    """

    account_id: str
    account: Account | None
    positions: pd.DataFrame = field(repr=False)
    nav: float | None
    nav_date: pd.Timestamp | None
    last_cycle: dict[str, Any] | None
    last_guard: dict[str, Any] | None
    next_period: pd.Timestamp
    next_run: dt.datetime
    kill_switch: tuple[Path, bool]
    locked: bool
    inconsistent: dict[str, float]


def account_status(
    store: Store, config: StudyConfig, account_id: str, kill_switch: Path, now: dt.datetime
) -> AccountStatus:
    """The status of ``account_id`` (see :class:`AccountStatus`); read-only."""
    ledger = Ledger(store)
    account = ledger.account(account_id)
    period, at = next_cycle(now, config.backtest, config.trading)
    try:
        with store_lock(store, account_id, "trade", timeout=0):
            locked = False
    except StoreError:
        locked = True
    empty = pd.DataFrame(columns=["asset", "quantity", "price", "value"])
    if account is None:
        return AccountStatus(
            account_id,
            None,
            empty,
            None,
            None,
            None,
            None,
            period,
            at,
            (kill_switch, kill_switch.exists()),
            locked,
            {},
        )
    cycles = ledger.cycles(account_id)
    marks = ledger.nav(account_id)
    orders = ledger.orders(account_id)
    prices = dict(zip(orders["coin_id"], orders["reference_price"], strict=True)) if len(orders) else {}
    rows = []
    for asset, qty in sorted(ledger.positions(account_id).items()):
        price = 1.0 if asset == account.quote else prices.get(asset, float("nan"))
        rows.append({"asset": asset, "quantity": qty, "price": price, "value": qty * price})
    positions = pd.DataFrame(rows, columns=empty.columns)
    nav, nav_date = None, None
    if len(marks):
        last = marks.iloc[-1]
        nav = float(last["nav_after"]) if pd.notna(last["nav_after"]) else float(last["nav"])
        nav_date = pd.Timestamp(last["date"])
    last_cycle = cycles.iloc[-1].to_dict() if len(cycles) else None
    guarded = cycles[cycles["guard"].notna()] if len(cycles) else cycles
    last_guard = guarded.iloc[-1][["period", "guard", "message"]].to_dict() if len(guarded) else None
    return AccountStatus(
        account_id,
        account,
        positions,
        nav,
        nav_date,
        last_cycle,
        last_guard,
        period,
        at,
        (kill_switch, kill_switch.exists()),
        locked,
        ledger.consistent(account),
    )
