"""Backtest stage: daily simulation of target weights with drift and costs."""

from kallos.backtest.engine import drift_weights, rebalance_cost, run_backtest

__all__ = ["drift_weights", "rebalance_cost", "run_backtest"]
