"""``kallos schedule``: the trading cycle on the backtest's rebalance calendar, as a crontab or in process.

The backtest decides at the close of ``backtest.rebalance_day`` (Sunday) and of every month end,
and trades into the next day. So the cycle runs at ``trading.cycle_time`` (00:30 UTC) of the day
after: every Monday, and on the 1st of every month. One crontab line says both, because cron
runs a line when *either* its day-of-month or its day-of-week field matches. The cycle of the 1st
of January, April, July and October is the one that retrains: its decision close is a quarter
end, the cutoff of a new walk-forward fold (the model registry serves the models afterwards).

The split of the original design (Saturday's data, Sunday's trades) is an option: with
``backtest.rebalance_day = "SAT"`` and ``trading.execute_time`` (e.g. ``"12:00"``), one line decides
on Sunday at ``cycle_time`` (``kallos trade --phase decide``) and another sends the orders at
``execute_time`` (``--phase execute``). The backtest then rebalances at Saturday closes too, so the
paper account stays comparable; the fills of a real venue come hours after the close the backtest
assumes, and the parity report shows that cost.

``kallos schedule --run`` runs the same calendar in process (APScheduler, UTC) while holding the
account's lock, so no other cycle can trade that account meanwhile.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from kallos.config import StudyConfig
from kallos.trading.errors import TradingError

__all__ = ["CronEntry", "build_scheduler", "cron_entries", "crontab_text"]

_WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")  # cron numbers 0..6


@dataclass(frozen=True)
class CronEntry:
    """One crontab line: ``minute hour day-of-month month day-of-week command`` (UTC)."""

    minute: int
    hour: int
    day: str
    day_of_week: str
    phase: str
    command: str
    comment: str

    def line(self) -> str:
        """The crontab line."""
        return f"{self.minute} {self.hour} {self.day} * {self.day_of_week} {self.command}"

    def trigger(self) -> OrTrigger:
        """The same times as an APScheduler trigger (cron's day-of-month OR day-of-week)."""
        parts = [CronTrigger(day=self.day, hour=self.hour, minute=self.minute, timezone="UTC")]
        if self.day_of_week != "*":
            dow = _WEEKDAYS[int(self.day_of_week)].lower()
            parts.append(CronTrigger(day_of_week=dow, hour=self.hour, minute=self.minute, timezone="UTC"))
        return OrTrigger(parts)


def _hm(hhmm: str) -> tuple[int, int]:
    h, m = hhmm.split(":")
    return int(h), int(m)


def cron_entries(config: StudyConfig, base_command: Sequence[str], split: bool = False) -> list[CronEntry]:
    """The cycle's crontab lines for ``config`` (see the module docstring).

    Parameters
    ----------
    base_command : the ``kallos trade`` command line with its options (``--mode``, ``--config`` ...).
    split : decide and trade at different times (needs ``trading.execute_time``).

    Raises
    ------
    TradingError
        ``split`` without ``trading.execute_time``.
    """
    bt, t = config.backtest, config.trading
    weekly = bt.rebalance == "weekly"
    dow = str((_WEEKDAYS.index(bt.rebalance_day) + 1) % 7) if weekly else "*"
    after = _WEEKDAYS[int(dow)].title() if weekly else ""
    when = (f"every {after} and " if weekly else "") + "the 1st of each month"
    closes = (f"{bt.rebalance_day.title()} closes and " if weekly else "") + "month ends"
    hour, minute = _hm(t.cycle_time)
    command = shlex.join(base_command)
    if not split:
        comment = (
            f"{when} at {t.cycle_time} UTC: decide at the close of the day before ({closes}), then trade"
        )
        return [CronEntry(minute, hour, "1", dow, "all", command, comment)]
    if t.execute_time is None:
        raise TradingError('--split needs trading.execute_time (e.g. "12:00"): when the orders go out')
    eh, em = _hm(t.execute_time)
    decide = f"{when} at {t.cycle_time} UTC: data, forecasts and weights for the close before ({closes})"
    execute = f"{when} at {t.execute_time} UTC: send the orders decided at {t.cycle_time}"
    return [
        CronEntry(minute, hour, "1", dow, "decide", shlex.join([*base_command, "--phase", "decide"]), decide),
        CronEntry(em, eh, "1", dow, "execute", shlex.join([*base_command, "--phase", "execute"]), execute),
    ]


def crontab_text(config: StudyConfig, entries: Sequence[CronEntry]) -> str:
    """A crontab to install (``crontab -e``): the UTC clock, the lines with their comments, retraining."""
    bt = config.backtest
    lines = [
        f"# Kallos trading cycle: {config.trading.strategy}, {bt.rebalance} rebalance "
        f"({bt.rebalance_day} closes and month ends), as the backtest.",
        "# Times are UTC: cronie reads CRON_TZ; with another cron, run it with TZ=UTC.",
        "CRON_TZ=UTC",
    ]
    for e in entries:
        lines += [f"# {e.comment}", e.line()]
    lines.append(
        "# The cycles of 1 Jan, 1 Apr, 1 Jul and 1 Oct retrain: their decision close is a quarter end, the "
        "cutoff of a new walk-forward fold; later cycles reuse the registered models."
    )
    if any(e.phase == "decide" for e in entries) and bt.rebalance_day != "SAT":
        lines.append(
            '# NOTE: the Saturday-data, Sunday-trade split expects backtest.rebalance_day = "SAT"; '
            f"this config decides at {bt.rebalance_day} closes."
        )
    return "\n".join(lines) + "\n"


def build_scheduler(entries: Sequence[CronEntry], run: Callable[[str], None]) -> BlockingScheduler:
    """An APScheduler (UTC) that calls ``run(phase)`` at each entry's times.

    Late runs (the machine was asleep) still run within an hour; missed runs are coalesced into
    one, and one run of a job at a time.
    """
    scheduler = BlockingScheduler(timezone="UTC")
    for i, e in enumerate(entries):
        scheduler.add_job(
            run,
            e.trigger(),
            args=[e.phase],
            id=f"kallos-{e.phase}-{i}",
            name=e.comment,
            misfire_grace_time=3600,
            coalesce=True,
            max_instances=1,
        )
    return scheduler
