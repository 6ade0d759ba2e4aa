"""The trading ledger in the Kallos store: accounts, cycles, orders, fills, positions and nav.

Tables of revision 0003 (:mod:`kallos.data.schema`). Every change that must hold together is one
transaction: a decision (the cycle row, every order of the period and the account's mark), an
order's venue report (its fills, the positions they move and the order row), a cycle's end.
Fills are keyed by the venue's trade id and a fill already recorded is never applied twice, so
recording a report again (a rerun after a crash) changes nothing. Positions are the sum of the
fills (plus the initial cash and credited interest); :meth:`Ledger.consistent` checks it.

Cash is the position in the account's quote asset (``USDT``, upper case; coin ids are lower case).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, and_, delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from kallos.data import schema
from kallos.data.store import Store
from kallos.exceptions import StoreError
from kallos.trading.errors import TradingError
from kallos.trading.sizing import OrderPlan
from kallos.trading.venue import VenueOrder, fee_in_quote

__all__ = ["OPEN_STATES", "Account", "Ledger", "client_order_id", "positions_value"]

OPEN_STATES = ("sent", "open")
"""Order states whose outcome the venue may still change (reconciled at start-up)."""


def client_order_id(uid: str, period: pd.Timestamp, coin_id: str) -> str:
    """The order id of ``coin_id`` in an account's cycle for ``period``: ``k-<uid>-<yyyymmdd>-<coin>``.

    At most 36 characters of ``[A-Za-z0-9_-]`` (Binance's ``newClientOrderId``), the same on every
    run of the cycle: one set of orders per period.
    """
    cid = f"k-{uid}-{pd.Timestamp(period):%Y%m%d}-{coin_id}"
    return cid[:36]


@dataclass(frozen=True)
class Account:
    """One row of ``accounts``."""

    account_id: str
    uid: str
    mode: str
    venue: str
    quote: str
    strategy: str
    first_period: pd.Timestamp | None
    initial_cash: float
    config: dict[str, Any]
    config_hash: str


def _day(value: Any) -> dt.date:
    return pd.Timestamp(value).date()


class Ledger:
    """Reads and atomic writes of the trading tables of ``store`` (schema at revision 0003 or later)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    # ------------------------------------------------------------------ accounts
    def account(self, account_id: str) -> Account | None:
        """The account row, or None if no account has that id."""
        t = schema.accounts
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.account_id == account_id)).mappings().first()
        if row is None:
            return None
        first = pd.Timestamp(row["first_period"]) if row["first_period"] is not None else None
        return Account(
            row["account_id"],
            row["uid"],
            row["mode"],
            row["venue"],
            row["quote"],
            row["strategy"],
            first,
            float(row["initial_cash"]),
            dict(row["config"]),
            row["config_hash"],
        )

    def accounts(self) -> list[str]:
        """Ids of every account in the store, sorted."""
        with self.engine.connect() as conn:
            return sorted(r[0] for r in conn.execute(select(schema.accounts.c.account_id)))

    def open_account(
        self,
        account_id: str,
        *,
        mode: str,
        venue: str,
        quote: str,
        strategy: str,
        initial_cash: float,
        config: Mapping[str, Any],
        config_hash: str,
        now: dt.datetime,
    ) -> Account:
        """Create the account with ``initial_cash`` of ``quote`` (one transaction); return it."""
        with self.engine.begin() as conn:
            conn.execute(
                insert(schema.accounts).values(
                    account_id=account_id,
                    uid=secrets.token_hex(4),
                    mode=mode,
                    venue=venue,
                    quote=quote,
                    strategy=strategy,
                    first_period=None,
                    initial_cash=initial_cash,
                    config=dict(config),
                    config_hash=config_hash,
                    created_at=now,
                )
            )
            self._add(conn, account_id, quote, initial_cash, now)
        account = self.account(account_id)
        assert account is not None
        return account

    # ------------------------------------------------------------------ reads
    def _frame(self, table, *conds) -> pd.DataFrame:
        return self.store.read_table(table, and_(*conds) if conds else None)

    def positions(self, account_id: str) -> dict[str, float]:
        """Asset -> quantity (the quote asset is the cash); zero positions left out."""
        t = schema.positions
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.asset, t.c.quantity).where(t.c.account_id == account_id))
            return {a: float(q) for a, q in rows if q != 0}

    def cycle(self, account_id: str, period: pd.Timestamp) -> dict[str, Any] | None:
        """The cycle row of one period (a dict of its columns), or None before it ran."""
        t = schema.cycles
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t).where(and_(t.c.account_id == account_id, t.c.period == _day(period)))
            ).mappings()
            first = row.first()
        return dict(first) if first is not None else None

    def cycles(self, account_id: str) -> pd.DataFrame:
        """Every cycle of the account, oldest period first."""
        return self._frame(schema.cycles, schema.cycles.c.account_id == account_id).sort_values(
            "period", ignore_index=True
        )

    def orders(
        self, account_id: str, period: pd.Timestamp | None = None, statuses: Iterable[str] | None = None
    ) -> pd.DataFrame:
        """Orders of the account (of one period, in some states), by period, sells first, by coin."""
        t = schema.orders
        conds = [t.c.account_id == account_id]
        if period is not None:
            conds.append(t.c.period == _day(period))
        if statuses is not None:
            conds.append(t.c.status.in_(list(statuses)))
        frame = self._frame(t, *conds)
        return frame.sort_values(
            ["period", "side", "coin_id"], ascending=[True, False, True], ignore_index=True
        )

    def fills(self, account_id: str) -> pd.DataFrame:
        """Every fill of the account, in trade order."""
        frame = self._frame(schema.fills, schema.fills.c.account_id == account_id)
        return frame.sort_values(["traded_at", "fill_id"], ignore_index=True)

    def nav(self, account_id: str) -> pd.DataFrame:
        """The account's marks (one per cycle), oldest first."""
        return self._frame(schema.nav, schema.nav.c.account_id == account_id).sort_values(
            "date", ignore_index=True
        )

    def consistent(self, account: Account) -> dict[str, float]:
        """Asset -> (position − what the fills, initial cash and interest add up to); {} when consistent.

        Differences below 1e-9 of the asset's scale are float rounding and not reported.
        """
        expected: dict[str, float] = {account.quote: account.initial_cash}
        nav = self.nav(account.account_id)
        expected[account.quote] += float(nav["interest"].sum()) if len(nav) else 0.0
        fills = self.fills(account.account_id)
        for f in fills.itertuples(index=False):
            for asset, qty in _fill_moves(
                f.side, f.coin_id, f.quantity, f.price, f.fee, f.fee_asset, account
            ):
                expected[asset] = expected.get(asset, 0.0) + qty
        held = self.positions(account.account_id)
        out = {}
        for asset in set(expected) | set(held):
            a, b = held.get(asset, 0.0), expected.get(asset, 0.0)
            if abs(a - b) > 1e-9 * max(1.0, abs(a), abs(b)):
                out[asset] = a - b
        return out

    # ------------------------------------------------------------------ writes
    @staticmethod
    def _add(conn: Connection, account_id: str, asset: str, quantity: float, now: dt.datetime) -> None:
        t = schema.positions
        where = and_(t.c.account_id == account_id, t.c.asset == asset)
        held = conn.execute(select(t.c.quantity).where(where)).scalar_one_or_none()
        if held is None:
            conn.execute(
                insert(t).values(account_id=account_id, asset=asset, quantity=quantity, updated_at=now)
            )
        else:
            conn.execute(update(t).where(where).values(quantity=float(held) + quantity, updated_at=now))

    def _write(self, work: Callable[[Connection], Any]) -> None:
        """Run ``work`` in one transaction (all or nothing)."""
        try:
            with self.engine.begin() as conn:
                work(conn)
        except SQLAlchemyError as err:
            raise StoreError(f"trading ledger write failed, nothing was stored: {err}") from err

    def record_decision(
        self,
        account: Account,
        period: pd.Timestamp,
        run_id: str,
        decision: Mapping[str, Any],
        plan: OrderPlan | None,
        *,
        cash: float,
        interest: float,
        now: dt.datetime,
    ) -> None:
        """The period's decision in one transaction.

        Writes the cycle row (status ``decided``, or ``held`` without a ``plan``: the strategy does
        not rebalance that day), every order of ``plan`` (``planned`` or ``skipped``), the mark
        (``nav`` row; ``interest`` credited to the cash) and, on the first cycle, the account's
        ``first_period``.
        """
        day = _day(period)
        nav_value = plan.nav if plan is not None else float(decision["nav"])

        def work(conn: Connection) -> None:
            t = schema.cycles
            conn.execute(delete(t).where(and_(t.c.account_id == account.account_id, t.c.period == day)))
            conn.execute(
                insert(t).values(
                    account_id=account.account_id,
                    period=day,
                    run_id=run_id,
                    status="decided" if plan is not None else "held",
                    guard=None,
                    message=None,
                    decision=dict(decision),
                    nav=nav_value,
                    cost=plan.cost if plan is not None else None,
                    turnover=plan.turnover if plan is not None else None,
                    started_at=now,
                    finished_at=None if plan is not None else now,
                )
            )
            if interest:
                self._add(conn, account.account_id, account.quote, interest, now)
            n = schema.nav
            conn.execute(delete(n).where(and_(n.c.account_id == account.account_id, n.c.date == day)))
            conn.execute(
                insert(n).values(
                    account_id=account.account_id,
                    date=day,
                    nav=float(decision["nav"]),
                    cash=cash + interest,
                    interest=interest,
                    nav_after=None if plan is not None else float(decision["nav"]),
                    fees=None if plan is not None else 0.0,
                    marked_at=now,
                )
            )
            if plan is not None:
                rows = [
                    {
                        "client_order_id": client_order_id(account.uid, period, o.coin_id),
                        "account_id": account.account_id,
                        "period": day,
                        "run_id": run_id,
                        "coin_id": o.coin_id,
                        "symbol": o.symbol,
                        "side": o.side,
                        "target_weight": o.target_weight,
                        "reference_price": o.reference_price,
                        "ideal_quantity": o.ideal_quantity,
                        "quantity": o.quantity,
                        "status": o.status,
                        "reason": o.reason,
                        "venue_order_id": None,
                        "filled_quantity": 0.0,
                        "average_price": None,
                        "fee_quote": 0.0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for o in plan.orders
                ]
                if rows:
                    conn.execute(insert(schema.orders), rows)
            if account.first_period is None:
                a = schema.accounts
                conn.execute(update(a).where(a.c.account_id == account.account_id).values(first_period=day))

        self._write(work)

    def record_refusal(
        self, account: Account, period: pd.Timestamp, run_id: str, guard: str, message: str, now: dt.datetime
    ) -> None:
        """Note a guard that refused the period's cycle (a decided cycle keeps its orders)."""
        day = _day(period)

        def work(conn: Connection) -> None:
            t = schema.cycles
            where = and_(t.c.account_id == account.account_id, t.c.period == day)
            status = conn.execute(select(t.c.status).where(where)).scalar_one_or_none()
            values = {"guard": guard, "message": message, "finished_at": now}
            if status is None:
                conn.execute(
                    insert(t).values(
                        account_id=account.account_id,
                        period=day,
                        run_id=run_id,
                        status="refused",
                        started_at=now,
                        **values,
                    )
                )
            else:
                conn.execute(update(t).where(where).values(**values))

        self._write(work)

    def set_order(self, cid: str, now: dt.datetime, **values: Any) -> None:
        """Update one order row (``status``, ``quantity``, ``reason``, ...)."""
        t = schema.orders
        self._write(
            lambda conn: conn.execute(
                update(t).where(t.c.client_order_id == cid).values(**values, updated_at=now)
            )
        )

    def apply(
        self, account: Account, report: VenueOrder, prices: Mapping[str, float], now: dt.datetime
    ) -> int:
        """Record a venue report of one order: new fills, the positions they move, the order row.

        One transaction; a fill already recorded (same ``fill_id``) is skipped, so applying the same
        report twice changes nothing. ``prices`` (asset -> quote price) values fees paid in a third
        asset (BNB). Returns the number of new fills.
        """
        t, f = schema.orders, schema.fills
        cid = report.client_order_id
        new = 0

        def work(conn: Connection) -> None:
            nonlocal new
            order = conn.execute(select(t).where(t.c.client_order_id == cid)).mappings().first()
            if order is None:
                raise TradingError(f"venue reported order {cid}, which the ledger does not hold")
            base = order["symbol"].split("/")[0]
            for fill in report.fills:
                key = and_(f.c.account_id == account.account_id, f.c.fill_id == fill.fill_id)
                if conn.execute(select(f.c.fill_id).where(key)).first() is not None:
                    continue
                fee_quote = fee_in_quote(fill, account.quote, base, prices)
                fee_quote = 0.0 if np.isnan(fee_quote) else fee_quote  # a third asset without a price
                conn.execute(
                    insert(f).values(
                        account_id=account.account_id,
                        fill_id=fill.fill_id,
                        client_order_id=cid,
                        coin_id=order["coin_id"],
                        side=order["side"],
                        quantity=fill.quantity,
                        price=fill.price,
                        fee=fill.fee,
                        fee_asset=fill.fee_asset,
                        fee_quote=fee_quote,
                        traded_at=fill.traded_at,
                    )
                )
                moves = _fill_moves(
                    order["side"],
                    order["coin_id"],
                    fill.quantity,
                    fill.price,
                    fill.fee,
                    fill.fee_asset,
                    account,
                )
                for asset, qty in moves:
                    self._add(conn, account.account_id, asset, qty, now)
                new += 1
            rows = conn.execute(
                select(f.c.quantity, f.c.price, f.c.fee_quote).where(
                    and_(f.c.account_id == account.account_id, f.c.client_order_id == cid)
                )
            ).fetchall()
            qty = float(sum(r[0] for r in rows))
            avg = float(sum(r[0] * r[1] for r in rows) / qty) if qty > 0 else None
            conn.execute(
                update(t)
                .where(t.c.client_order_id == cid)
                .values(
                    status=report.status,
                    reason=report.reason if report.reason is not None else order["reason"],
                    venue_order_id=report.venue_order_id,
                    filled_quantity=qty,
                    average_price=avg,
                    fee_quote=float(sum(r[2] for r in rows)),
                    updated_at=now,
                )
            )

        self._write(work)
        return new

    def finish_cycle(
        self, account: Account, period: pd.Timestamp, nav_after: float, fees: float, now: dt.datetime
    ) -> None:
        """The period is traded: cycle ``done`` and the mark after trading."""
        day = _day(period)

        def work(conn: Connection) -> None:
            c, n = schema.cycles, schema.nav
            conn.execute(
                update(c)
                .where(and_(c.c.account_id == account.account_id, c.c.period == day))
                .values(status="done", guard=None, message=None, finished_at=now)
            )
            conn.execute(
                update(n)
                .where(and_(n.c.account_id == account.account_id, n.c.date == day))
                .values(nav_after=nav_after, fees=fees)
            )

        self._write(work)


def _fill_moves(
    side: str, coin: str, quantity: float, price: float, fee: float, fee_asset: str, account: Account
) -> list[tuple[str, float]]:
    """(asset, quantity change) of one fill: the coin, the cash and the fee's asset."""
    sign = 1.0 if side == "buy" else -1.0
    moves = [(coin, sign * quantity), (account.quote, -sign * quantity * price)]
    if fee:
        asset = fee_asset.upper()
        if asset == account.quote.upper():
            moves.append((account.quote, -fee))
        elif asset == coin.upper():
            moves.append((coin, -fee))
        else:
            moves.append((asset.lower(), -fee))
    return moves


def positions_value(positions: Mapping[str, float], quote: str, prices: Mapping[str, float]) -> float:
    """Cash plus every coin position at ``prices`` (NaN where a held coin has no price)."""
    value = positions.get(quote, 0.0)
    for asset, qty in positions.items():
        if asset != quote:
            value += qty * float(prices.get(asset, np.nan))
    return float(value)
