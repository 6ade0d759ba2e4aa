"""Parity: a trading account beside a shadow backtest of the same strategy over the same weeks.

The shadow backtest is the study's own computation (:func:`kallos.pipeline.study.decide` and
:func:`kallos.backtest.run_backtest`) on the store's data, with the account's study config, the
account's strategy only, ``backtest.start`` the day after the account's first period and the
decisions up to its last one; recurrent models come from the same registry. In paper mode the
two agree by construction: the same decisions (:func:`~kallos.pipeline.study.decide_period` is bit
for bit :func:`~kallos.pipeline.study.decide`), fills at the backtest's prices and costs, so the
account's value at every decision close equals the backtest's equity times the initial cash, to
float rounding.

On a real venue the page explains every deviation, order by order: the fill price against the
reference price (bps), the fee paid against the fee the backtest charges, quantities rounded to
the lot step, orders skipped (below the venue's minimum, no market), rejected, partly filled or
cancelled, and the cash the account kept because of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kallos.backtest import drift_weights, run_backtest
from kallos.config import StudyConfig, apply_overrides, build_config
from kallos.data import Store, build_panel, schema
from kallos.data.panel import MarketPanel
from kallos.forecast.model_store import ModelRegistry
from kallos.forecast.tuned import TuningStorage
from kallos.pipeline.progress import NullProgress, Progress
from kallos.pipeline.study import Compute, decide
from kallos.pipeline.validate import validate_study
from kallos.trading.calendar import account_periods
from kallos.trading.cycle import reference_price_frame
from kallos.trading.errors import TradingError
from kallos.trading.ledger import Account, Ledger
from kallos.types import BacktestResult

__all__ = ["Parity", "compute_parity", "shadow_config"]

DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class Parity:
    """An account and its shadow backtest, period by period and order by order.

    Attributes
    ----------
    account : the account.
    periods : one row per decision close of the account's calendar: ``status`` (the cycle's, or
        ``missed``), ``nav`` and ``nav_backtest`` before trading, ``nav_after`` and
        ``nav_after_backtest``, ``difference`` (nav - nav_backtest), ``fees`` and ``cost_backtest``
        (quote currency), ``turnover`` and ``turnover_backtest``.
    orders : the account's orders with ``notional_backtest`` (the backtest's trade of the coin,
        signed), ``fill_bps`` (average fill price against the reference price, signed against the
        trader), ``fee_assumed``, ``unfilled`` and ``explanation`` (the deviations in words).
    daily : daily ``nav`` (the account's holdings at the reference prices) and ``nav_backtest``.
    backtest : the shadow backtest.
    """

    account: Account
    periods: pd.DataFrame
    orders: pd.DataFrame
    daily: pd.DataFrame
    backtest: BacktestResult = field(repr=False)

    @property
    def max_abs_difference(self) -> float:
        """Largest |account value - backtest value| at any decision close, before or after trading."""
        p = self.periods[self.periods["status"] != "missed"]
        if p.empty:
            return float("nan")
        after = (p["nav_after"] - p["nav_after_backtest"]).abs()
        return float(max(p["difference"].abs().max(), after.max(skipna=True) if after.notna().any() else 0.0))

    @property
    def max_rel_difference(self) -> float:
        """:attr:`max_abs_difference` over the initial cash."""
        return self.max_abs_difference / self.account.initial_cash


def shadow_config(account: Account, last: pd.Timestamp) -> StudyConfig:
    """The account's study config backtesting its strategy from its first period through ``last``.

    Raises
    ------
    TradingError
        If the account has not traded a period yet.
    """
    if account.first_period is None:
        raise TradingError(f"account {account.account_id!r} has no cycle yet: nothing to compare")
    overrides: dict[str, object] = {
        "backtest.start": (account.first_period + DAY).date().isoformat(),
        "backtest.end": (pd.Timestamp(last) + 2 * DAY).date().isoformat(),
    }
    name, _, objective = account.strategy.partition("/")
    # Only the traded strategy's forecaster is run (a benchmark needs none).
    overrides["forecast.forecasters"] = [name] if objective else []
    if objective:
        overrides["portfolio.objectives"] = [objective]
    return validate_study(
        build_config(apply_overrides(account.config, overrides), f"account {account.account_id!r}")
    )


def compute_parity(
    store: Store,
    account_id: str,
    registry: ModelRegistry | None = None,
    progress: Progress | None = None,
) -> Parity:
    """Compare account ``account_id`` with its shadow backtest (see the module docstring).

    Raises
    ------
    TradingError
        If the account does not exist or has not traded yet.
    """
    ledger = Ledger(store)
    account = ledger.account(account_id)
    if account is None:
        known = ", ".join(ledger.accounts()) or "none"
        raise TradingError(f"no trading account {account_id!r} in the store (accounts: {known})")
    marks = ledger.nav(account_id)
    if marks.empty or account.first_period is None:
        raise TradingError(f"account {account_id!r} has no cycle yet: run `kallos trade` first")
    last = pd.Timestamp(marks["date"].max())
    config = shadow_config(account, last)
    panel = build_panel(
        store.read_market_data(),
        store.read_coins(),
        config.quality,
        snapshots=store.read_table(schema.market_cap_snapshots),
    ).truncate(last)
    decided = decide(
        panel,
        config,
        through=last,
        progress=progress or NullProgress(),
        registry=registry,
        compute=Compute(tuning_storage=TuningStorage(store.url, store.schema_name)),
    )
    key = account.strategy
    targets = decided.weights[decided.weights["key"] == key].pivot(
        index="date", columns="coin_id", values="weight"
    )
    # One day of zero returns after the last decision lets the backtest price its last rebalance.
    returns = panel.returns.reindex(pd.date_range(panel.dates[0], last + DAY, freq="D")).fillna(
        {last + DAY: 0.0}
    )
    returns.loc[last + DAY] = 0.0
    bt = config.backtest
    result = run_backtest(
        targets,
        returns,
        last + DAY,
        bt.cost_bps,
        slippage_bps=bt.slippage_bps,
        allow_cash=config.portfolio.allow_cash,
        cash_rate=bt.cash_rate,
    )
    periods = _periods(account, ledger, result, account_periods(account.first_period, last, bt))
    orders = _orders(account, ledger, config, targets, returns, periods)
    daily = _daily(account, ledger, panel, result, last)
    return Parity(account, periods, orders, daily, result)


def _equity(account: Account, result: BacktestResult) -> pd.Series:
    """The backtest's value at each close (before that close's trade), in the account's currency."""
    first = result.returns_net.index[0] - DAY
    growth = (1.0 + result.returns_net).cumprod()
    return pd.concat([pd.Series({first: 1.0}), growth]) * account.initial_cash


def _periods(
    account: Account, ledger: Ledger, result: BacktestResult, calendar: pd.DatetimeIndex
) -> pd.DataFrame:
    equity = _equity(account, result)
    cycles = ledger.cycles(account.account_id).set_index("period")
    marks = ledger.nav(account.account_id).set_index("date")
    rows = []
    for day in calendar:
        v = float(equity.get(day, np.nan))
        c = float(result.costs.get(day, 0.0))
        traded = day in result.costs.index
        row = {
            "period": day,
            "status": cycles.at[day, "status"] if day in cycles.index else "missed",
            "guard": cycles.at[day, "guard"] if day in cycles.index else None,
            "nav_backtest": v,
            "nav_after_backtest": v * (1.0 - c),
            "cost_backtest": v * c,
            "turnover_backtest": float(result.turnover.get(day, 0.0)) if traded else 0.0,
            "nav": np.nan,
            "nav_after": np.nan,
            "fees": np.nan,
            "turnover": np.nan,
        }
        if day in marks.index:
            row |= {
                "nav": float(marks.at[day, "nav"]),
                "nav_after": float(marks.at[day, "nav_after"])
                if pd.notna(marks.at[day, "nav_after"])
                else np.nan,
                "fees": float(marks.at[day, "fees"]) if pd.notna(marks.at[day, "fees"]) else np.nan,
            }
        if day in cycles.index and pd.notna(cycles.at[day, "turnover"]):
            row["turnover"] = float(cycles.at[day, "turnover"])
        elif row["status"] == "held":
            row["turnover"] = 0.0
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["difference"] = frame["nav"] - frame["nav_backtest"]
    return frame


def _orders(
    account: Account,
    ledger: Ledger,
    config: StudyConfig,
    targets: pd.DataFrame,
    returns: pd.DataFrame,
    periods: pd.DataFrame,
) -> pd.DataFrame:
    orders = ledger.orders(account.account_id)
    if orders.empty:
        return orders.assign(notional_backtest=[], fill_bps=[], fee_assumed=[], unfilled=[], explanation=[])
    bt = config.backtest
    cash_rate = bt.cash_rate
    targets = targets.fillna(0.0)
    by_period = periods.set_index("period")
    trades: dict[tuple[pd.Timestamp, str], float] = {}
    previous: tuple[pd.Timestamp, pd.Series] | None = None
    for day in targets.index:
        w = targets.loc[day]
        drifted = pd.Series(0.0, index=w.index)
        if previous is not None:
            since, held = previous
            drifted = drift_weights(held, returns.loc[since + DAY : day], cash_rate).reindex(
                w.index, fill_value=0.0
            )
        v = float(by_period.at[day, "nav_backtest"]) if day in by_period.index else np.nan
        c = float(by_period.at[day, "cost_backtest"]) / v if v else 0.0
        for coin in w.index:
            trades[(day, coin)] = (float(w[coin]) * (1.0 - c) - float(drifted[coin])) * v
        previous = (day, w)
    rate = bt.cost_bps / 1e4
    out = orders.copy()
    out["notional_backtest"] = [
        trades.get((pd.Timestamp(p), c), 0.0) for p, c in zip(out["period"], out["coin_id"], strict=True)
    ]
    sign = np.where(out["side"] == "buy", 1.0, -1.0)
    out["fill_bps"] = sign * (out["average_price"] / out["reference_price"] - 1.0) * 1e4
    out["fee_assumed"] = rate * out["filled_quantity"] * out["reference_price"]
    out["unfilled"] = (out["quantity"] - out["filled_quantity"]).clip(lower=0.0)
    out["explanation"] = [_explain(r, bt.slippage_bps) for r in out.itertuples(index=False)]
    return out


def _explain(o, slippage_bps: float) -> str:
    """The deviations of one order from the backtest's trade, in words ('as the backtest' if none)."""
    parts = []
    if o.status == "skipped":
        return f"skipped: {o.reason}"
    if o.status == "rejected":
        return f"rejected by the venue: {o.reason}"
    if o.status in ("planned", "sent", "open", "expired"):
        return f"{o.status}: {o.reason or 'not executed'}"
    if o.ideal_quantity and abs(o.quantity - o.ideal_quantity) > 1e-12 * max(1.0, o.ideal_quantity):
        parts.append(f"rounded {o.ideal_quantity:.8g} → {o.quantity:.8g} to the lot step")
    if o.unfilled > 0:
        parts.append(f"{o.unfilled:.8g} of {o.quantity:.8g} unfilled ({o.status})")
    if pd.notna(o.fill_bps) and abs(o.fill_bps - slippage_bps) > 1e-6:
        parts.append(f"filled {o.fill_bps:+.1f} bps against the close (backtest: {slippage_bps:g} bps)")
    if abs(o.fee_quote - o.fee_assumed) > 1e-9 * max(1.0, o.fee_assumed):
        parts.append(f"fee {o.fee_quote:.4g} vs {o.fee_assumed:.4g} assumed")
    if o.reason and o.status == "filled" and "cut" in str(o.reason):
        parts.append(str(o.reason))
    return "; ".join(parts) or "as the backtest"


def _daily(
    account: Account, ledger: Ledger, panel: MarketPanel, result: BacktestResult, last
) -> pd.DataFrame:
    """Daily value of the account's holdings at the reference prices, beside the backtest's."""
    fills = ledger.fills(account.account_id)
    marks = ledger.nav(account.account_id)
    days = pd.date_range(account.first_period, last, freq="D")
    coins = sorted(set(fills["coin_id"])) if len(fills) else []
    prices = reference_price_frame(panel, coins).reindex(days)
    # Holdings after each period's fills (fills carry their decision close: the order's period).
    orders = ledger.orders(account.account_id)[["client_order_id", "period"]]
    fills = fills.merge(orders, on="client_order_id", how="left")
    quantity = pd.DataFrame(np.nan, index=days, columns=coins)
    cash = pd.Series(np.nan, index=days)
    for day, mark in marks.set_index("date").iterrows():
        held = dict.fromkeys(coins, 0.0)
        for f in fills[fills["period"] <= day].itertuples(index=False):
            held[f.coin_id] += f.quantity if f.side == "buy" else -f.quantity
            if f.fee_asset.upper() == f.coin_id.upper():
                held[f.coin_id] -= f.fee
        after = mark["nav_after"] if pd.notna(mark["nav_after"]) else mark["nav"]
        value = sum(q * prices.at[day, c] for c, q in held.items() if q)
        if day + DAY <= days[-1]:
            quantity.loc[day + DAY] = pd.Series(held)
            cash.loc[day + DAY] = after - value
    quantity, cash = quantity.ffill().fillna(0.0), cash.ffill()
    nav = (quantity * prices.fillna(0.0)).sum(axis=1) + cash
    nav.loc[marks["date"]] = marks["nav"].to_numpy()
    equity = _equity(account, result).reindex(days)
    return pd.DataFrame({"nav": nav, "nav_backtest": equity})
