"""Daily backtest of target weights with drift, transaction costs, slippage and an optional cash sleeve.

Rules (enforced here, so no caller has to remember to shift signals):

* target weights decided at the close of day ``t`` are traded at that close and earn
  returns from ``t + 1`` on;
* between rebalances weights drift with prices (each position grows by ``prod(1 + r)``);
* names absent from a new target are sold (target weight 0);
* trading costs are ``cost_bps + slippage_bps`` basis points per side on the traded notional,
  paid out of the portfolio at the trade, so that **after** paying them the portfolio holds
  exactly the target weights: with drifted weights ``w`` and targets ``w*`` the cost ``c_t``
  (fraction of pre-trade value) solves ``c_t = rate × sum_i |w*_i (1 - c_t) - w_i|`` (a
  contraction, solved by fixed-point iteration to machine precision; the first rebalance buys
  from cash: ``c = rate / (1 + rate)`` for a fully invested target). The net return of the first
  day the new weights earn is ``1 + r^net = (1 - c_t)(1 + r^gross)``. This is the accounting of
  vectorbt ``Portfolio.from_orders`` with target-percent orders ``w* (1 - c_t)`` and
  proportional fees and ``min_size=0`` (cross-checked in the tests; ``benchmarks/portfolio.py``
  finds equity within 1e-13 over 10,000 days; vectorbt's default ``min_size`` of 1e-8 shares
  skips tiny rebalancing trades);
* a target row may sum below 1 when ``allow_cash``: the rest is cash earning ``cash_rate``
  (annual simple, ``cash_rate / 365`` a day), drifting like any position.

A held coin with an unknown return on a day is treated as flat (0) for that day and
counted in ``BacktestResult.missing_returns``.

The simulation is vectorised: within a rebalance segment each position is its post-trade
value times ``exp(L_t - L_k)`` with ``L`` the cumulative log growth; only the rebalance dates
are visited in a Python loop.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kallos.exceptions import DataValidationError
from kallos.types import PERIODS_PER_YEAR, BacktestResult

__all__ = ["drift_weights", "rebalance_cost", "run_backtest"]

_MIN_GROWTH = 1e-300  # a -100% day leaves a position of (almost) nothing, not log(0)


def rebalance_cost(target: np.ndarray, drifted: np.ndarray, rate: float) -> float:
    """Cost ``c`` (fraction of pre-trade value) solving ``c = rate × sum |target (1 - c) - drifted|``.

    Parameters
    ----------
    target : shape (n_assets,), target weights of the post-cost value (sum <= 1).
    drifted : shape (n_assets,), current weights of the pre-trade value.
    rate : cost per side as a fraction (``bps / 1e4``), ``0 <= rate < 1``.
    """
    cost = 0.0
    for _ in range(100):
        new = rate * float(np.abs(target * (1.0 - cost) - drifted).sum())
        if abs(new - cost) <= 1e-17:
            return new
        cost = new
    return cost


def drift_weights(
    weights: pd.Series,
    returns: pd.DataFrame,
    cash_rate: float = 0.0,
    periods_per_year: int = PERIODS_PER_YEAR,
) -> pd.Series:
    """Weights after drifting with ``returns`` (the engine's rule), e.g. for a turnover limit.

    Parameters
    ----------
    weights : held right after a trade (index coin ids; sum <= 1, the rest cash).
    returns : daily simple returns of the days since the trade (rows), columns ⊇ held coins;
        NaN counts as 0 (as in :func:`run_backtest`).
    cash_rate : annual simple rate of the cash rest.

    Returns
    -------
    pd.Series on ``weights.index``: ``w_i prod(1 + r_i) / (sum_j w_j prod(1 + r_j) + cash growth)``.
    """
    growth = (1.0 + returns.reindex(columns=weights.index).fillna(0.0)).prod(axis=0)
    cash = (1.0 - float(weights.sum())) * (1.0 + cash_rate / periods_per_year) ** len(returns)
    values = weights * growth
    return values / (float(values.sum()) + cash)


def run_backtest(
    target_weights: pd.DataFrame,
    returns: pd.DataFrame,
    end: pd.Timestamp,
    cost_bps: float = 10.0,
    slippage_bps: float = 0.0,
    allow_cash: bool = False,
    cash_rate: float = 0.0,
    periods_per_year: int = PERIODS_PER_YEAR,
) -> BacktestResult:
    """Simulate holding ``target_weights`` from the first decision date to ``end``.

    Parameters
    ----------
    target_weights : DataFrame (n_decisions, n_assets): weights decided at the close of
        each index date; each row sums to 1 (NaN = 0), or to ``<= 1`` with ``allow_cash``.
        The first row opens the portfolio.
    returns : DataFrame (n_days, n_assets) of daily simple returns (not percent), with a
        row for every day from the first decision + 1 to ``end``. Columns must include
        every asset that ever gets weight.
    end : last day returns are earned.
    cost_bps, slippage_bps : per side, basis points of traded notional (charged together).
    allow_cash : accept rows summing below 1 (the rest is cash).
    cash_rate : annual simple return of cash (daily ``cash_rate / periods_per_year``).

    Returns
    -------
    BacktestResult with daily gross/net returns for ``(first decision, end]``; ``turnover``
    is the traded notional over pre-trade value, ``costs`` the cost fraction ``c_t``.

    Raises
    ------
    DataValidationError
        If a target row does not sum to 1 (or exceeds 1 with cash), is negative, or returns
        are missing a column/day.
    """
    end = pd.Timestamp(end)
    targets = target_weights.fillna(0.0).sort_index().loc[: end - pd.Timedelta(days=1)]
    if targets.empty:
        raise DataValidationError(f"no target weights decided before {end.date()}")
    sums = targets.sum(axis=1)
    bad = (sums > 1 + 1e-6) | ((sums < 1 - 1e-6) & (not allow_cash))
    if bad.any():
        hint = "" if allow_cash else " (set allow_cash to hold the rest in cash)"
        raise DataValidationError(
            f"target weights on {sums[bad].index[0].date()} sum to {sums[bad].iloc[0]}{hint}"
        )
    if (targets < -1e-12).any().any():
        raise DataValidationError("target weights must be long-only (>= 0)")
    missing_cols = [c for c in targets.columns if c not in returns.columns]
    if missing_cols:
        raise DataValidationError(f"no returns for {missing_cols}")
    rate = (cost_bps + slippage_bps) / 1e4
    if not 0 <= rate < 1:
        raise DataValidationError(f"cost_bps + slippage_bps = {rate * 1e4} must be in [0, 10000)")
    first = targets.index[0]
    days = pd.date_range(first + pd.Timedelta(days=1), end, freq="D")
    absent = days.difference(returns.index)
    if absent.size:
        raise DataValidationError(f"returns miss day(s) {[d.date() for d in absent[:3]]}")

    rv = returns.reindex(index=days, columns=targets.columns).to_numpy(dtype=float)
    tv = np.clip(targets.to_numpy(dtype=float), 0.0, None)
    unknown = np.isnan(rv)
    rv = np.where(unknown, 0.0, rv)
    # Column n is cash; growth is tracked as cumulative log growth L on the timeline [first, end].
    cash_daily = cash_rate / periods_per_year
    growth = np.log(np.maximum(1.0 + np.column_stack([rv, np.full(len(days), cash_daily)]), _MIN_GROWTH))
    log_level = np.vstack([np.zeros(growth.shape[1]), np.cumsum(growth, axis=0)])
    # Timeline position of each decision (0 = first) and, per day, the decision it holds.
    pos = ((targets.index - first) / pd.Timedelta(days=1)).to_numpy().astype(int)
    seg = np.searchsorted(pos, np.arange(len(days)), side="right") - 1

    n_assets = tv.shape[1]
    post = np.zeros((len(pos), n_assets + 1))  # post-trade value of each position (incl. cash)
    turnover = np.zeros(len(pos))
    costs = np.zeros(len(pos))
    value, held = 1.0, np.zeros(n_assets + 1)
    held[-1] = 1.0  # start all in cash
    for k, p in enumerate(pos):
        if k > 0:
            held = post[k - 1] * np.exp(log_level[p] - log_level[pos[k - 1]])
            value = float(held.sum())
        drifted = held[:-1] / value
        costs[k] = rebalance_cost(tv[k], drifted, rate)
        turnover[k] = float(np.abs(tv[k] * (1.0 - costs[k]) - drifted).sum())
        post_value = value * (1.0 - costs[k])
        post[k, :-1] = tv[k] * post_value
        post[k, -1] = post_value - post[k, :-1].sum()

    start_pos = pos[seg]
    rel_end = np.exp(log_level[1:] - log_level[start_pos])  # growth since the trade, end of day
    rel_start = np.exp(log_level[:-1] - log_level[start_pos])  # ... start of day
    end_values = post[seg] * rel_end
    start_values = post[seg] * rel_start
    start_total = start_values.sum(axis=1)
    gross = end_values.sum(axis=1) / start_total - 1.0
    first_day = np.r_[True, seg[1:] != seg[:-1]]
    net = gross.copy()
    net[first_day] = (1.0 - costs[seg[first_day]]) * (1.0 + gross[first_day]) - 1.0
    holdings = start_values[:, :-1] / start_total[:, None]
    missing = int((unknown & (holdings > 0)).sum())
    return BacktestResult(
        returns_gross=pd.Series(gross, index=days, name="return_gross"),
        returns_net=pd.Series(net, index=days, name="return_net"),
        turnover=pd.Series(turnover, index=targets.index, name="turnover"),
        costs=pd.Series(costs, index=targets.index, name="cost"),
        holdings=pd.DataFrame(holdings, index=days, columns=targets.columns),
        missing_returns=missing,
    )
