"""Run one trading cycle and SIGKILL the process at a chosen step (used by test_kill.py).

Usage: python kill_runner.py DB OUT MODE PERIOD STEP N [BASE_URL]
kills itself at the N-th time the cycle reaches STEP (a name of kallos.trading.STEPS).
"""

from __future__ import annotations

import os
import signal
import sys

import pandas as pd

from kallos.config import load_config
from kallos.data import Store
from kallos.data.live import RetryPolicy
from kallos.trading import PaperVenue, Trader, cycle_at
from kallos.trading.binance import BinanceVenue


def main() -> None:
    db, out, mode, period, step, n = sys.argv[1:7]
    base_url = sys.argv[7] if len(sys.argv) > 7 else None
    config = load_config(
        None,
        {
            "n_jobs": 1,
            "universe.top_n": 3,
            "trading.strategy": "historical_mean/max_sharpe",
            "trading.ingest": [],
            "trading.fill_timeout_s": 0.2,
        },
    )
    seen = {"n": 0}

    def hook(name: str, cid: str | None) -> None:
        if name == step:
            seen["n"] += 1
            if seen["n"] == int(n):
                os.kill(os.getpid(), signal.SIGKILL)

    period = pd.Timestamp(period)
    store = Store(f"sqlite:///{db}")
    if mode == "paper":
        venue = PaperVenue(config.backtest.cost_bps)
        Trader(store, config, venue, mode="paper", out_dir=out, hooks=hook).run(as_of=period)
    else:
        policy = RetryPolicy(calls_per_minute=0, timeout_s=2.0, max_attempts=4, backoff_initial_s=0.01)
        venue = BinanceVenue(
            "sandbox", os.environ["STUB_KEY"], os.environ["STUB_SECRET"], base_url=base_url, policy=policy
        )
        at = cycle_at(period, "00:30")
        Trader(
            store, config, venue, mode="sandbox", out_dir=out, hooks=hook, clock=lambda: at, poll_s=0.05
        ).run()
    print("finished without being killed")


if __name__ == "__main__":
    main()
