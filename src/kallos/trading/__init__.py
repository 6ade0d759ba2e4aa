"""Trading stage: the study's strategy traded on a schedule (paper, sandbox or live), with parity.

The cycle (:class:`~kallos.trading.cycle.Trader`) takes each period's decision with the backtest's
own functions (:func:`kallos.pipeline.study.decide_period`), sizes orders to the venue's rules and
sends them with client order ids derived from (account, period, coin); the ledger (revision 0003
tables) records everything, and start-up reconciliation by client order id makes a killed cycle
safe to rerun. The parity report compares the account with a shadow backtest of the same weeks.

Imports flow one way: this stage uses data, forecast, portfolio, backtest, pipeline and report;
only the CLI imports it.
"""

from kallos.trading.calendar import account_periods, current_period, cycle_at, next_cycle
from kallos.trading.cycle import STEPS, CycleResult, Trader, reference_prices
from kallos.trading.errors import GuardError, TradingError, VenueError
from kallos.trading.ledger import Account, Ledger, client_order_id
from kallos.trading.sizing import UNCONSTRAINED, MarketRules, OrderPlan, PlannedOrder, plan_orders
from kallos.trading.venue import OrderRequest, PaperVenue, Venue, VenueFill, VenueOrder

__all__ = [
    "STEPS",
    "UNCONSTRAINED",
    "Account",
    "CycleResult",
    "GuardError",
    "Ledger",
    "MarketRules",
    "OrderPlan",
    "OrderRequest",
    "PaperVenue",
    "PlannedOrder",
    "Trader",
    "TradingError",
    "Venue",
    "VenueError",
    "VenueFill",
    "VenueOrder",
    "account_periods",
    "client_order_id",
    "current_period",
    "cycle_at",
    "next_cycle",
    "plan_orders",
    "reference_prices",
]
