"""One trading cycle: the study's decision for the current period, traded on an account.

:meth:`Trader.run` takes these steps, in order, under the account's lock:

1. **Guards before anything.** The kill-switch file stops the cycle; another process holding the
   account's lock refuses this one.
2. **Reconcile with the venue.** Every order the ledger holds as ``sent``, ``open`` or ``planned``
   is looked up at the venue by its client order id and what happened is recorded (fills, final
   state); a sent order the venue never received goes back to ``planned`` (the current period) or
   ``expired``, and so does a planned order of a past period.
   On a real venue the balances must cover the ledger's positions.
3. **Decide** (once per period): ingest the missing days (``trading.ingest``, waiting up to
   ``trading.data_wait_minutes`` for a source to publish the decision close), build the panel and
   cut it at the decision close, refuse stale data (``trading.stale_days``) and fresh rows that
   break the data-check limits (``trading.max_findings``), mark the account at the reference
   prices, take the decision with :func:`kallos.pipeline.study.decide_period` (the backtest's own
   universe, forecasts, optimiser and fallbacks), size the orders to the venue's rules
   (:func:`kallos.trading.sizing.plan_orders`), refuse a plan over ``trading.max_turnover`` or
   ``trading.max_order_notional``, and record decision, orders and mark in one transaction.
4. **Execute** (unless ``phase="decide"``): refuse prices outside ``trading.price_band`` of the
   decision close, then send the planned orders, sells first, each marked ``sent`` before it
   leaves and recorded with its fills as soon as the venue answers; orders still open after
   ``trading.fill_timeout_s`` are cancelled. The cycle ends ``done`` with the mark after trading.

Client order ids come from (account, period, coin) (:func:`kallos.trading.ledger.client_order_id`),
so a rerun of a cycle never sends an order twice: a decided period is not decided again, a filled
order is not sent again, and a process killed between sending and recording is reconciled at the
next start. A refused cycle records the guard and its message and sends nothing.

Reference prices are the prices the backtest assumes (:func:`reference_prices`): each coin's
cleaned close, continued through gaps the way the backtest's returns are. Paper fills happen
there, so the paper account's value is the backtest's (see :mod:`kallos.trading.parity`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kallos.config import StudyConfig
from kallos.data import Store, build_panel, schema
from kallos.data.check import CHECKS, CheckSettings, run_checks
from kallos.data.live import LiveSource, LiveSourceError, ingest_live, make_client, stored_coins
from kallos.data.locks import store_lock
from kallos.data.panel import MarketPanel
from kallos.exceptions import StoreError
from kallos.forecast.model_store import ModelRegistry
from kallos.forecast.tuned import TuningStorage
from kallos.pipeline.persist import make_run_id
from kallos.pipeline.progress import NullProgress, Progress
from kallos.pipeline.study import Compute, PeriodDecision, decide_period
from kallos.trading.calendar import account_periods, current_period, cycle_at, is_decision_date
from kallos.trading.errors import GuardError, TradingError
from kallos.trading.ledger import OPEN_STATES, Account, Ledger, positions_value
from kallos.trading.sizing import OrderPlan, plan_orders, round_down
from kallos.trading.venue import OrderRequest, Venue, VenueOrder, close_time

__all__ = ["STEPS", "CycleResult", "Trader", "reference_price_frame", "reference_prices"]

STEPS = ("reconciled", "decided", "sent", "placed", "recorded", "done")
"""Points of a cycle at which ``Trader.hooks`` is called (the kill tests stop the process there)."""


def reference_price_frame(panel: MarketPanel, coins: list[str]) -> pd.DataFrame:
    """Each coin's price every day as the backtest assumes it (date × coin, NaN before its first close).

    The backtest grows a position by ``1 + r`` a day, an unknown return counting as 0. So within a
    run of known closes the price is the cleaned close; after a gap longer than the forward-fill
    limit (the first return after it is unknown) later closes are rescaled by ``last close before
    the gap / first close after it``; during a gap the price stays at its last value. Without gaps
    the prices are the closes exactly.
    """
    close = panel.close.reindex(columns=[c for c in coins if c in panel.close])
    known = close.notna()
    starts = known & ~known.shift(1, fill_value=False)
    first = known.cummax() & ~known.cummax().shift(1, fill_value=False)
    before = close.ffill().shift(1)
    ratio = (before / close).where(starts & ~first, 1.0)
    return close.ffill() * ratio.cumprod()


def reference_prices(panel: MarketPanel, date: pd.Timestamp, coins: list[str]) -> dict[str, float]:
    """:func:`reference_price_frame` at the close of ``date`` (coins with no close up to it left out)."""
    row = reference_price_frame(panel.truncate(date), coins).iloc[-1]
    return {c: float(v) for c, v in row.items() if np.isfinite(v)}


@dataclass(frozen=True)
class CycleResult:
    """What one run of :meth:`Trader.run` did.

    Attributes
    ----------
    account, mode, period : the account, its mode and the decision close traded.
    status : ``done`` (traded), ``held`` (the strategy does not rebalance that day), ``decided``
        (decision recorded, orders not sent: ``phase="decide"``), ``nothing_to_do`` (the period was
        already traded: nothing is sent) or ``refused`` (a guard fired; nothing more was sent).
    guard, message : the guard that refused and why, or a summary.
    run_id : id of the period's decision.
    nav, nav_after : account value before and after trading, at the reference prices.
    sent : orders sent to the venue by this run.
    orders : the period's orders as the ledger holds them after the run.
    notes : reconciliation and ingestion notes, one line each.
    """

    account: str
    mode: str
    period: pd.Timestamp | None
    status: str
    guard: str | None = None
    message: str = ""
    run_id: str | None = None
    nav: float | None = None
    nav_after: float | None = None
    sent: int = 0
    orders: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    notes: list[str] = field(default_factory=list)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class Trader:
    """Runs trading cycles of one config on one venue (see the module docstring).

    Parameters
    ----------
    store : the Kallos store (market data, model registry rows and the trading ledger).
    config : the study config; its ``[trading]`` section says what is traded and the limits.
    venue : where orders go (:class:`~kallos.trading.venue.PaperVenue` or
        :class:`~kallos.trading.binance.BinanceVenue`).
    mode : ``paper``, ``sandbox`` or ``live`` (recorded with the account; a mismatch is refused).
    out_dir : the ``--out`` directory: model artifacts, and relative kill-switch paths.
    ingest_clients : source -> live client used to ingest (default: :func:`kallos.data.live.make_client`).
    registry : model registry (default: the one in ``store`` under ``out_dir``).
    progress : progress reporter of the long steps.
    hooks : called as ``hooks(step, client_order_id)`` at each of :data:`STEPS`.
    on_plan : called with the lines describing the orders before any is sent.
    clock, sleep : UTC time and waiting (injectable for tests).
    poll_s : seconds between looks at an open order.
    """

    store: Store
    config: StudyConfig
    venue: Venue
    mode: str = "paper"
    out_dir: Path = Path("out")
    ingest_clients: Mapping[str, LiveSource] | None = None
    registry: ModelRegistry | None = None
    progress: Progress = field(default_factory=NullProgress)
    hooks: Callable[[str, str | None], None] | None = None
    on_plan: Callable[[list[str]], None] | None = None
    clock: Callable[[], dt.datetime] = _utc_now
    sleep: Callable[[float], None] = time.sleep
    poll_s: float = 1.0

    def __post_init__(self) -> None:
        self.ledger = Ledger(self.store)
        self.trading = self.config.trading
        self.account_id = self.trading.mode_account(self.mode)
        bt = self.config.backtest
        self.rate = (bt.cost_bps + bt.slippage_bps) / 1e4
        if self.registry is None:
            self.registry = ModelRegistry.for_store(
                self.store, self.out_dir, self.config.compute.artifact_dir
            )

    # ------------------------------------------------------------------ entry point
    @property
    def kill_switch(self) -> Path:
        """The kill-switch file (``trading.kill_switch``; relative paths are under ``out_dir``)."""
        path = Path(self.trading.kill_switch)
        return path if path.is_absolute() else self.out_dir / path

    def run(
        self, as_of: pd.Timestamp | None = None, phase: str = "all", lock_held: bool = False
    ) -> CycleResult:
        """Run the cycle of the current period (or of ``as_of``, paper only) on the account.

        Parameters
        ----------
        as_of : decision close of a past period to run now as if it were the day after it, at
            ``trading.cycle_time`` (paper replays over stored data). None: the current period.
        phase : ``all``; ``decide`` (record the decision and orders, send nothing) or ``execute``
            (send what a ``decide`` run recorded): the Saturday-data, Sunday-trade split.
        lock_held : the caller holds the account's lock already (the scheduler).

        Raises
        ------
        TradingError
            The account belongs to another mode, strategy or study config, ``as_of`` is not a
            decision date, or the venue fails for good. Guards do not raise: they refuse.
        """
        if phase not in ("all", "decide", "execute"):
            raise TradingError(f"phase {phase!r}: use all, decide or execute")
        if as_of is not None and self.mode != "paper":
            raise TradingError("--as-of replays a past period in paper mode only; sandbox and live trade now")
        with ExitStack() as stack:
            if not lock_held:
                try:
                    stack.enter_context(store_lock(self.store, self.account_id, "trade", timeout=0))
                except StoreError as err:
                    return CycleResult(
                        self.account_id,
                        self.mode,
                        None,
                        "refused",
                        "lock",
                        f"{err}: one cycle per account at a time",
                    )
            return self._run(None if as_of is None else pd.Timestamp(as_of), phase)

    def _hook(self, step: str, cid: str | None = None) -> None:
        if self.hooks is not None:
            self.hooks(step, cid)

    def _now(self, as_of: pd.Timestamp | None) -> dt.datetime:
        return self.clock() if as_of is None else cycle_at(as_of, self.trading.cycle_time)

    def _run(self, as_of: pd.Timestamp | None, phase: str) -> CycleResult:
        now = self._now(as_of)
        account = self._account()
        bt = self.config.backtest
        first = account.first_period if account is not None else None
        if as_of is not None:
            period = as_of
            if first is not None and as_of < first:
                raise TradingError(
                    f"--as-of {as_of.date()} is before the account's first period {first.date()}"
                )
            if as_of not in (account_periods(first, as_of, bt) if first is not None else [])[-1:] and not (
                first is None and is_decision_date(as_of, bt)
            ):
                raise TradingError(
                    f"--as-of {as_of.date()} is not a decision close of the {bt.rebalance} calendar "
                    f"({bt.rebalance_day} closes and month ends)"
                )
        else:
            period = current_period(now, bt, first)
        cycle = self.ledger.cycle(self.account_id, period) if account is not None else None
        run_id = cycle["run_id"] if cycle is not None else make_run_id(self.config.config_hash(), now)
        result = dict(account=self.account_id, mode=self.mode, period=period, run_id=run_id)
        try:
            self._refuse_if_killed()
            if account is None:
                account = self._open(now)
            notes = self._reconcile(account, period, now)
            self._hook("reconciled")
            cycle = self.ledger.cycle(self.account_id, period)
            status = cycle["status"] if cycle is not None else None
            if status in ("done", "held"):
                return CycleResult(
                    **result,
                    status="nothing_to_do",
                    message=f"period {period.date()} was already traded ({status}); nothing sent",
                    nav=cycle["nav"],
                    orders=self.ledger.orders(self.account_id, period),
                    notes=notes,
                )
            if status != "decided":
                if phase == "execute":
                    raise TradingError(
                        f"nothing decided for {period.date()}: run `kallos trade --phase decide` first"
                    )
                plan = self._decide(account, period, run_id, now, as_of, notes)
                if plan is None:
                    return CycleResult(
                        **result,
                        status="held",
                        message=f"{account.strategy} does not rebalance on {period.date()}; holdings drift",
                        nav=self.ledger.cycle(self.account_id, period)["nav"],
                        notes=notes,
                    )
                account = self._account() or account
            if phase == "decide":
                return CycleResult(
                    **result,
                    status="decided",
                    message="decision and orders recorded; `kallos trade --phase execute` sends them",
                    nav=self.ledger.cycle(self.account_id, period)["nav"],
                    orders=self.ledger.orders(self.account_id, period),
                    notes=notes,
                )
            sent, nav_after = self._execute(account, period)
        except GuardError as err:
            if account is not None:
                self.ledger.record_refusal(account, period, run_id, err.guard, err.detail, self._now(as_of))
            return CycleResult(
                **result,
                status="refused",
                guard=err.guard,
                message=err.detail,
                orders=self.ledger.orders(self.account_id, period) if account is not None else pd.DataFrame(),
            )
        cycle = self.ledger.cycle(self.account_id, period)
        orders = self.ledger.orders(self.account_id, period)
        return CycleResult(
            **result,
            status="done",
            message=f"{sent} order(s) sent, {int((orders['status'] == 'skipped').sum())} skipped",
            nav=cycle["nav"],
            nav_after=nav_after,
            sent=sent,
            orders=orders,
            notes=notes,
        )

    # ------------------------------------------------------------------ account
    def _account(self) -> Account | None:
        account = self.ledger.account(self.account_id)
        if account is None:
            return None
        if account.mode != self.mode:
            raise TradingError(
                f"account {self.account_id!r} is a {account.mode} account; trade {self.mode} on another "
                "(trading.account or --account)"
            )
        if account.strategy != self.trading.strategy:
            raise TradingError(
                f"account {self.account_id!r} trades {account.strategy}, the config says "
                f"{self.trading.strategy}: use another account (trading.account or --account)"
            )
        if account.config_hash != self.config.config_hash():
            changed = _changed_keys(account.config, self.config.model_dump(mode="json"))
            raise TradingError(
                f"account {self.account_id!r} was opened with study config {account.config_hash}, this is "
                f"{self.config.config_hash()} (changed: {', '.join(changed) or 'unknown'}); its trades "
                "would no longer be the backtest's: use another account (trading.account or --account)"
            )
        return account

    def _open(self, now: dt.datetime) -> Account:
        return self.ledger.open_account(
            self.account_id,
            mode=self.mode,
            venue=self.venue.name,
            quote=self.trading.quote,
            strategy=self.trading.strategy,
            initial_cash=self.trading.initial_cash,
            config=self.config.model_dump(mode="json"),
            config_hash=self.config.config_hash(),
            now=now,
        )

    def _refuse_if_killed(self) -> None:
        if self.kill_switch.exists():
            raise GuardError(
                "kill_switch", f"{self.kill_switch} exists: trading is stopped; remove the file to resume"
            )

    # ------------------------------------------------------------------ reconcile
    def _reconcile(self, account: Account, period: pd.Timestamp, now: dt.datetime) -> list[str]:
        notes = []
        day = period.date()
        pending = self.ledger.orders(self.account_id, statuses=(*OPEN_STATES, "planned"))
        prices = self._order_prices(pending)
        for o in pending.itertuples(index=False):
            current = pd.Timestamp(o.period).date() == day
            if o.status == "planned" and not current:
                self.ledger.set_order(
                    o.client_order_id, now, status="expired", reason="its period passed unsent"
                )
                notes.append(f"{o.client_order_id}: expired unsent (period {pd.Timestamp(o.period).date()})")
                continue
            found = self.venue.query(o.client_order_id, o.symbol)  # planned ones too: a lost record
            if found is None and o.status == "planned":
                continue
            if found is None:
                if o.status == "sent" and current:
                    self.ledger.set_order(o.client_order_id, now, status="planned")
                    notes.append(f"{o.client_order_id}: the venue never received it; it is sent again")
                else:
                    why = "never reached the venue" if o.status == "sent" else "the venue no longer knows it"
                    self.ledger.set_order(o.client_order_id, now, status="expired", reason=why)
                    notes.append(f"{o.client_order_id}: {why}")
                continue
            if not found.terminal and not current:
                found = self.venue.cancel(found, o.symbol)
            self.ledger.apply(account, found, prices, now)
            notes.append(
                f"{o.client_order_id}: reconciled as {found.status} ({found.filled_quantity:.8g} filled)"
            )
        for c in self.ledger.cycles(self.account_id).itertuples(index=False):
            if c.status == "decided" and pd.Timestamp(c.period).date() != day:
                self._finish(account, pd.Timestamp(c.period), now)
        if self.venue.has_balances:
            self._check_balances(account)
        return notes

    def _check_balances(self, account: Account) -> None:
        venue = {k.upper(): v for k, v in self.venue.balances().items()}
        short = []
        for asset, qty in self.ledger.positions(self.account_id).items():
            have = venue.get(asset.upper(), 0.0)
            if qty > 0 and have < qty * (1 - 1e-9):
                short.append(f"{asset} {have:.8g} at the venue < {qty:.8g} in the ledger")
        if short:
            raise GuardError(
                "balance",
                "the venue holds less than the account's ledger ("
                + "; ".join(short)
                + "): funds moved outside Kallos; reconcile them before trading",
            )

    @staticmethod
    def _order_prices(orders: pd.DataFrame) -> dict[str, float]:
        if orders.empty:
            return {}
        return dict(zip(orders["coin_id"], orders["reference_price"].astype(float), strict=True))

    # ------------------------------------------------------------------ decide
    def _decide(
        self,
        account: Account,
        period: pd.Timestamp,
        run_id: str,
        now: dt.datetime,
        as_of: pd.Timestamp | None,
        notes: list[str],
    ) -> OrderPlan | None:
        if as_of is None:
            notes.extend(self._ingest(period))
        market = self.store.read_market_data()
        with self.progress.stage("Cleaning data", total=None):
            panel = build_panel(
                market,
                self.store.read_coins(),
                self.config.quality,
                snapshots=self.store.read_table(schema.market_cap_snapshots),
            )
        if panel.dates[-1] < period:
            raise GuardError(
                "stale_data",
                f"the store's last close is {panel.dates[-1].date()}, before the decision close "
                f"{period.date()}: ingest the missing days (kallos ingest) or wait for the sources",
            )
        panel = panel.truncate(period)
        age = (now - close_time(period)).total_seconds() / 86_400
        if age > self.trading.stale_days:
            raise GuardError(
                "stale_data",
                f"the decision close {period.date()} is {age:.1f} days old (trading.stale_days = "
                f"{self.trading.stale_days:g}): trade the current period instead",
            )
        positions = self.ledger.positions(self.account_id)
        cash = positions.pop(account.quote, 0.0)
        held = sorted(positions)
        first = account.first_period if account.first_period is not None else period
        interest = self._interest(account, cash, period)
        prices = reference_prices(panel, period, sorted(set(held) | set(panel.coins)))
        nav = cash + interest + sum(q * prices.get(c, np.nan) for c, q in positions.items())
        if not np.isfinite(nav):
            raise TradingError(f"a held coin has no price up to {period.date()}: {held}")
        current = pd.Series({c: positions[c] * prices[c] / nav for c in held}, dtype=float)
        decision = decide_period(
            panel,
            self.config,
            period,
            account.strategy,
            first,
            current_weights=current,
            registry=self.registry,
            progress=self.progress,
            # A tuned strategy reads its studies back from the store (run in the backtest first).
            compute=Compute(tuning_storage=TuningStorage(self.store.url, self.store.schema_name)),
        )
        self._check_fresh(panel, market, decision, period)
        record = self._decision_record(decision, nav)
        if not decision.trades:
            self.ledger.record_decision(
                account, period, run_id, record, None, cash=cash, interest=interest, now=now
            )
            self._hook("decided")
            return None
        coins = sorted(set(held) | set(decision.weights.index))
        symbols = {c: self._symbol(c) for c in coins}
        venue_rules = self.venue.rules(symbols.values())
        rules = {c: venue_rules.get(symbols[c]) for c in coins}
        plan = plan_orders(
            positions, cash + interest, prices, decision.weights, self.rate, rules, self._symbol
        )
        self._check_plan(plan)
        self.ledger.record_decision(
            account, period, run_id, record, plan, cash=cash, interest=interest, now=now
        )
        self._hook("decided")
        return plan

    def _symbol(self, coin: str) -> str:
        return f"{coin.upper()}/{self.trading.quote}"

    def _interest(self, account: Account, cash: float, period: pd.Timestamp) -> float:
        """Cash interest since the last mark at ``backtest.cash_rate`` (paper: the backtest's cash)."""
        rate = self.config.backtest.cash_rate
        marks = self.ledger.nav(self.account_id)
        if self.venue.has_balances or not rate or marks.empty or not cash:
            return 0.0
        days = (period - pd.Timestamp(marks["date"].iloc[-1])).days
        return cash * ((1.0 + rate / 365) ** days - 1.0)

    def _decision_record(self, decision: PeriodDecision, nav: float) -> dict[str, Any]:
        forecasts = decision.forecasts.set_index("coin_id")["forecast"] if len(decision.forecasts) else {}
        keep = ("objective_used", "solver", "fallback", "fallback_chain")
        return _jsonable(
            {
                **{k: decision.decision.get(k) for k in keep},
                "key": decision.key,
                "is_reconstitution": decision.is_reconstitution,
                "universe": decision.universe,
                "weights": decision.weights.to_dict(),
                "forecasts": dict(forecasts),
                "fold": decision.fold.key,
                "registry": decision.registry_stats.message() if decision.registry_stats else None,
                "nav": nav,
            }
        )

    def _ingest(self, period: pd.Timestamp) -> list[str]:
        """Fetch the missing days from each source of ``trading.ingest`` (waiting for the decision close)."""
        notes = []
        for source in self.trading.ingest:
            client = (self.ingest_clients or {}).get(source) or make_client(source)
            try:
                waited = 0.0
                limit = self.trading.data_wait_minutes * 60
                while client.latest_close(self.clock()) < period.date() and waited < limit:
                    self.sleep(60.0)
                    waited += 60.0
                coins = stored_coins(self.store, source)
                if not coins:
                    notes.append(f"{source}: no coins stored yet; nothing ingested")
                    continue
                with self.progress.stage(f"Ingesting {source}", total=None):
                    report = ingest_live(self.store, client, coins, end=period.date(), clock=self.clock)
                notes.append(
                    f"{source}: {report.total_rows} rows in {report.chunks} chunk(s) up to {report.end}"
                )
            except (LiveSourceError, StoreError) as err:
                notes.append(f"{source}: ingest failed ({err}); the stale-data guard decides")
            finally:
                if not self.ingest_clients:
                    client.close()
        return notes

    def _check_fresh(
        self, panel: MarketPanel, market: pd.DataFrame, decision: PeriodDecision, period: pd.Timestamp
    ) -> None:
        """Every universe member has a recent observed close, and the fresh rows pass the data checks."""
        stale = []
        for coin in decision.members:
            seen = [s[coin].last_valid_index() for s in panel.source_close.values() if coin in s]
            last = max((d for d in seen if d is not None), default=None)
            if last is None or (period - last).days > self.trading.stale_days:
                stale.append(f"{coin} (last observed close {last.date() if last is not None else 'never'})")
        if stale:
            raise GuardError(
                "stale_data",
                f"no recent close for universe member(s) {', '.join(stale)} at {period.date()} "
                f"(trading.stale_days = {self.trading.stale_days:g}): a source stopped, or the coin was "
                "delisted (then exclude it with quality.known_bad_windows)",
            )
        lo = period - pd.Timedelta(days=self.trading.check_days - 1)
        dates = pd.to_datetime(market["date"])
        rows = market[market["coin_id"].isin(decision.universe) & (dates >= lo) & (dates <= period)]
        if rows.empty:
            return
        limits = {rule: None for rule in CHECKS} | dict(self.trading.max_findings)
        report = run_checks(rows, CheckSettings(quality=self.config.quality, max_findings=limits))
        if not report.ok:
            found = report.findings[report.findings["rule"].isin(list(report.exceeded))]
            first = found.iloc[0]
            raise GuardError(
                "data_check",
                f"fresh rows {lo.date()}..{period.date()} break trading.max_findings: "
                + ", ".join(f"{k} {n} > {a}" for k, (n, a) in report.exceeded.items())
                + f" (e.g. {first.coin_id} {first.source} {pd.Timestamp(first.start).date()}: "
                f"{first.detail}); "
                "check the data (kallos data check) or raise the limit",
            )

    def _check_plan(self, plan: OrderPlan) -> None:
        t = self.trading
        if plan.turnover > t.max_turnover:
            raise GuardError(
                "max_turnover",
                f"the rebalance trades {plan.turnover:.1%} of the account "
                f"(trading.max_turnover = {t.max_turnover:.0%})",
            )
        big = [o for o in plan.planned if o.notional > t.max_order_notional]
        if big:
            o = max(big, key=lambda o: o.notional)
            raise GuardError(
                "max_order_notional",
                f"{o.side} {o.symbol} of {o.notional:,.2f} {t.quote} exceeds trading.max_order_notional = "
                f"{t.max_order_notional:,.2f}",
            )

    # ------------------------------------------------------------------ execute
    def plan_lines(self, orders: pd.DataFrame) -> list[str]:
        """One line per order of a period: what is (or would be) sent, and what is skipped."""
        lines = []
        for o in orders.itertuples(index=False):
            what = (
                f"{o.side:<4} {o.quantity:.8g} {o.symbol} ~{o.quantity * o.reference_price:,.2f} "
                f"{self.trading.quote} at {o.reference_price:.6g}, target {o.target_weight:.2%} "
                f"[{o.client_order_id}]"
            )
            if o.status == "skipped":
                what = f"skip {o.symbol}: {o.reason}"
            lines.append(what)
        return lines

    def _execute(self, account: Account, period: pd.Timestamp) -> tuple[int, float]:
        orders = self.ledger.orders(self.account_id, period)
        planned = orders[orders["status"] == "planned"]
        self._refuse_if_killed()
        self._check_band(planned)
        if self.on_plan is not None:
            self.on_plan(self.plan_lines(orders))
        prices = self._order_prices(orders)
        nav = float(self.ledger.cycle(self.account_id, period)["nav"])
        rules = self.venue.rules(planned["symbol"]) if len(planned) else {}
        sent = 0
        for o in planned.itertuples(index=False):  # sells first (ledger order)
            self._refuse_if_killed()
            now = self.clock()
            quantity = float(o.quantity)
            if o.side == "buy":
                quantity = self._affordable(account, o, quantity, nav, rules.get(o.symbol))
                if quantity <= 0:
                    continue
            self.ledger.set_order(o.client_order_id, now, status="sent")
            self._hook("sent", o.client_order_id)
            request = OrderRequest(
                o.client_order_id, o.coin_id, o.symbol, o.side, quantity, o.reference_price, period
            )
            report = self.venue.place(request)
            sent += 1
            self._hook("placed", o.client_order_id)
            self.ledger.apply(account, report, prices, self.clock())
            self._hook("recorded", o.client_order_id)
        self._settle(account, period, prices)
        return sent, self._finish(account, period, self.clock())

    def _check_band(self, planned: pd.DataFrame) -> None:
        if planned.empty:
            return
        quotes = self.venue.prices(planned["symbol"])
        off = []
        for o in planned.itertuples(index=False):
            price = quotes.get(o.symbol)
            if price is not None and abs(price / o.reference_price - 1) > self.trading.price_band:
                off.append(f"{o.symbol} {price:.6g} vs close {o.reference_price:.6g}")
        if off:
            raise GuardError(
                "price_band",
                f"{'; '.join(off)}: off the decision close by more than trading.price_band = "
                f"{self.trading.price_band:.0%}; nothing was sent",
            )

    def _affordable(self, account: Account, o: Any, quantity: float, nav: float, rules: Any) -> float:
        """The buy's quantity, cut to the cash the ledger holds (a real venue's sells may fill lower)."""
        cash = self.ledger.positions(self.account_id).get(account.quote, 0.0)
        need = quantity * o.reference_price * (1 + self.rate)
        if need <= cash + 1e-9 * nav:
            return quantity
        step = rules.amount_step if rules is not None else 0.0
        cut = round_down(
            max(cash, 0.0) / (o.reference_price * (1 + self.rate + self.trading.price_band)), step
        )
        now = self.clock()
        minimum = rules.min_notional if rules is not None else 0.0
        if cut <= 0 or cut * o.reference_price < minimum or (rules is not None and cut < rules.min_amount):
            self.ledger.set_order(
                o.client_order_id,
                now,
                status="skipped",
                quantity=0.0,
                reason=f"cash {cash:,.2f} too low for the buy",
            )
            return 0.0
        self.ledger.set_order(
            o.client_order_id,
            now,
            quantity=cut,
            reason=f"cut from {quantity:.8g} to the cash available ({cash:,.2f} {account.quote})",
        )
        return cut

    def _settle(self, account: Account, period: pd.Timestamp, prices: Mapping[str, float]) -> None:
        """Wait for open orders up to ``trading.fill_timeout_s``, then cancel what is left."""
        waited = 0.0
        while True:
            open_ = self.ledger.orders(self.account_id, period, statuses=("open",))
            if open_.empty:
                return
            if waited >= self.trading.fill_timeout_s:
                break
            self.sleep(self.poll_s)
            waited += self.poll_s
            for o in open_.itertuples(index=False):
                found = self.venue.query(o.client_order_id, o.symbol)
                if found is not None:
                    self.ledger.apply(account, found, prices, self.clock())
        for o in open_.itertuples(index=False):
            found = self.venue.query(o.client_order_id, o.symbol)
            if found is not None and not found.terminal:
                found = self.venue.cancel(found, o.symbol)
            if found is not None:
                reason = f"open after {self.trading.fill_timeout_s:g} s: the rest was cancelled"
                found = VenueOrder(
                    found.client_order_id,
                    found.venue_order_id,
                    found.status,
                    found.filled_quantity,
                    found.fills,
                    reason,
                )
                self.ledger.apply(account, found, prices, self.clock())

    def _finish(self, account: Account, period: pd.Timestamp, now: dt.datetime) -> float:
        orders = self.ledger.orders(self.account_id, period)
        prices = self._order_prices(orders)
        positions = self.ledger.positions(self.account_id)
        valued = {a: q for a, q in positions.items() if a == account.quote or a in prices}
        nav_after = positions_value(valued, account.quote, prices)
        fees = float(orders["fee_quote"].sum()) if len(orders) else 0.0
        self.ledger.finish_cycle(account, period, nav_after, fees, now)
        self._hook("done")
        return nav_after


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dumps (the ``trading`` table ignored)."""
    out = []
    for key in sorted(set(old) | set(new)):
        if not prefix and key == "trading":
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(_changed_keys(a, b, f"{prefix}{key}."))
        elif a != b:
            out.append(f"{prefix}{key}")
    return out
