"""Backtest stage: daily simulation of target weights with drift and costs."""

from kallos.backtest.engine import run_backtest

__all__ = ["run_backtest"]
