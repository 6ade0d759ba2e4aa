"""Daily backtest of target weights with drift and transaction costs.

Rules (enforced here, so no caller has to remember to shift signals):

* target weights decided at the close of day ``t`` are traded at that close and earn
  returns from ``t + 1`` on;
* between rebalances weights drift with prices: ``w_{t+1} = w_t (1 + r_{t+1}) / (1 + r^p_{t+1})``;
* names absent from a new target are sold (target weight 0);
* costs are ``cost_bps`` basis points per side on the traded notional, i.e.
  ``cost_t = cost_bps / 10^4 × sum_i |w*_i - w_i|`` as a fraction of portfolio value
  (the first rebalance buys from cash, a turnover of 1), charged on the first day the
  new weights earn: ``1 + r^net_{t+1} = (1 - cost_t)(1 + r^gross_{t+1})``.

A held coin with an unknown return on a day is treated as flat (0) for that day and
counted in ``BacktestResult`` diagnostics via ``missing_returns``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kallos.exceptions import DataValidationError
from kallos.types import BacktestResult

__all__ = ["run_backtest"]


def run_backtest(
    target_weights: pd.DataFrame,
    returns: pd.DataFrame,
    end: pd.Timestamp,
    cost_bps: float = 10.0,
) -> BacktestResult:
    """Simulate holding ``target_weights`` from the first decision date to ``end``.

    Parameters
    ----------
    target_weights : DataFrame (n_decisions, n_assets): weights decided at the close of
        each index date; each row sums to 1 (NaN = 0). The first row opens the portfolio.
    returns : DataFrame (n_days, n_assets) of daily simple returns (not percent), with a
        row for every day from the first decision + 1 to ``end``. Columns must include
        every asset that ever gets weight.
    end : last day returns are earned.
    cost_bps : cost per side in basis points of traded notional.

    Returns
    -------
    BacktestResult with daily gross/net returns for ``(first decision, end]``.

    Raises
    ------
    DataValidationError
        If a target row does not sum to 1, is negative, or returns are missing a column/day.
    """
    end = pd.Timestamp(end)
    targets = target_weights.fillna(0.0).sort_index().loc[: end - pd.Timedelta(days=1)]
    if targets.empty:
        raise DataValidationError(f"no target weights decided before {end.date()}")
    sums = targets.sum(axis=1)
    bad = (sums - 1).abs() > 1e-6
    if bad.any():
        raise DataValidationError(f"target weights on {sums[bad].index[0].date()} sum to {sums[bad].iloc[0]}")
    if (targets < -1e-12).any().any():
        raise DataValidationError("target weights must be long-only (>= 0)")
    missing_cols = [c for c in targets.columns if c not in returns.columns]
    if missing_cols:
        raise DataValidationError(f"no returns for {missing_cols}")
    first = targets.index[0]
    days = pd.date_range(first + pd.Timedelta(days=1), end, freq="D")
    absent = days.difference(returns.index)
    if absent.size:
        raise DataValidationError(f"returns miss day(s) {[d.date() for d in absent[:3]]}")
    rv = returns.reindex(index=days, columns=targets.columns).to_numpy(dtype=float)
    tv = targets.to_numpy(dtype=float)
    # Position k of the target decided at the close before day i (or -1).
    decided = targets.index.get_indexer(days - pd.Timedelta(days=1))

    c = cost_bps / 1e4
    n_days, n_assets = rv.shape
    w = np.zeros(n_assets)
    gross = np.empty(n_days)
    net = np.empty(n_days)
    holdings = np.empty((n_days, n_assets))
    turnover = np.zeros(len(targets))
    costs = np.zeros(len(targets))
    missing = 0
    for i in range(n_days):
        cost = 0.0
        k = decided[i]
        if k >= 0:
            turnover[k] = float(np.abs(tv[k] - w).sum())
            cost = costs[k] = c * turnover[k]
            w = tv[k].copy()
        ri = rv[i]
        unknown = np.isnan(ri)
        missing += int((unknown & (w > 0)).sum())
        ri = np.where(unknown, 0.0, ri)
        holdings[i] = w
        g = float(w @ ri)
        gross[i] = g
        net[i] = (1.0 - cost) * (1.0 + g) - 1.0
        if 1.0 + g > 0:
            w = w * (1.0 + ri) / (1.0 + g)
    return BacktestResult(
        returns_gross=pd.Series(gross, index=days, name="return_gross"),
        returns_net=pd.Series(net, index=days, name="return_net"),
        turnover=pd.Series(turnover, index=targets.index, name="turnover"),
        costs=pd.Series(costs, index=targets.index, name="cost"),
        holdings=pd.DataFrame(holdings, index=days, columns=targets.columns),
        missing_returns=missing,
    )
