"""The trading calendar: which decision close a cycle trades and when cycles run.

It is the backtest's calendar (:func:`kallos.pipeline.study.decision_calendar`): weekly decisions
at the close of ``backtest.rebalance_day`` (Sunday by default) plus every month end (the universe
is re-selected there), or month ends only for ``backtest.rebalance = "monthly"``. A decision at the
close of day ``t`` is known at 00:00 UTC of ``t + 1``; the cycle runs at ``trading.cycle_time``
(00:30 UTC) of that day and trades right away, or at ``trading.execute_time`` when deciding and
trading are split.

An account's calendar starts at its first period (the backtest's first decision, ``start - 1``).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from kallos.config import BacktestConfig, TradingConfig
from kallos.pipeline.study import decision_calendar
from kallos.trading.errors import TradingError
from kallos.trading.venue import close_time

__all__ = [
    "account_periods",
    "current_period",
    "cycle_at",
    "is_decision_date",
    "natural_periods",
    "next_cycle",
]


def natural_periods(first: pd.Timestamp, last: pd.Timestamp, backtest: BacktestConfig) -> pd.DatetimeIndex:
    """Decision closes in ``[first, last]`` of the calendar not tied to a start: weekdays and month ends."""
    first, last = pd.Timestamp(first), pd.Timestamp(last)
    dates = pd.date_range(first, last, freq="ME")
    if backtest.rebalance == "weekly":
        dates = dates.union(pd.date_range(first, last, freq=f"W-{backtest.rebalance_day}"))
    return dates


def is_decision_date(day: pd.Timestamp, backtest: BacktestConfig) -> bool:
    """Whether ``day``'s close is a decision of the calendar (a rebalance weekday or a month end)."""
    day = pd.Timestamp(day)
    return day in natural_periods(day, day, backtest)


def account_periods(first: pd.Timestamp, last: pd.Timestamp, backtest: BacktestConfig) -> pd.DatetimeIndex:
    """An account's decision closes from its first period to ``last`` (the backtest's, from ``first + 1``)."""
    day = pd.Timedelta(days=1)
    dates, _ = decision_calendar(
        pd.Timestamp(first) + day, pd.Timestamp(last) + day, backtest.rebalance, backtest.rebalance_day
    )
    return dates


def current_period(
    now: dt.datetime, backtest: BacktestConfig, first: pd.Timestamp | None = None
) -> pd.Timestamp:
    """The latest decision close known at ``now`` (UTC): the period a cycle run now trades.

    ``first`` is the account's first period (None for a new account).
    """
    last_close = pd.Timestamp(now.astimezone(dt.UTC).date()) - pd.Timedelta(days=1)
    if first is not None and first <= last_close:
        return account_periods(first, last_close, backtest)[-1]
    return natural_periods(last_close - pd.Timedelta(days=40), last_close, backtest)[-1]


def cycle_at(period: pd.Timestamp, hhmm: str) -> dt.datetime:
    """When a cycle for ``period`` runs: ``hhmm`` UTC on the day after the decision close."""
    hours, minutes = (int(x) for x in hhmm.split(":"))
    return close_time(period) + dt.timedelta(hours=hours, minutes=minutes)


def next_cycle(
    now: dt.datetime, backtest: BacktestConfig, trading: TradingConfig
) -> tuple[pd.Timestamp, dt.datetime]:
    """The next (period, UTC time) a cycle runs after ``now``.

    Raises
    ------
    TradingError
        Never in practice (a decision falls in every 40 days); kept for an impossible calendar.
    """
    today = pd.Timestamp(now.astimezone(dt.UTC).date())
    for period in natural_periods(today - pd.Timedelta(days=1), today + pd.Timedelta(days=40), backtest):
        at = cycle_at(period, trading.cycle_time)
        if at > now:
            return period, at
    raise TradingError("no decision close in the next 40 days; check backtest.rebalance")
