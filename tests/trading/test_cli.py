"""``kallos trade`` (and ``trade report``), ``kallos schedule`` and ``kallos status`` on the command line."""

from __future__ import annotations

import datetime as dt
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from kallos.cli.app import app
from kallos.config import load_config
from kallos.trading import cycle_at, next_cycle
from kallos.trading.calendar import natural_periods
from kallos.trading.schedule import build_scheduler, cron_entries

from .conftest import PERIODS

runner = CliRunner()
STUDY = """
[universe]
top_n = 3
[trading]
strategy = "historical_mean/max_sharpe"
"""


@pytest.fixture
def out(tmp_path, small_db):
    folder = tmp_path / "out"
    folder.mkdir()
    shutil.copy(small_db, folder / "kallos.db")
    (tmp_path / "study.toml").write_text(STUDY)
    return folder


def _trade(out, *args):
    return runner.invoke(app, ["trade", "--out", str(out), "--config", str(out.parent / "study.toml"), *args])


def test_trade_paper_then_again_sends_nothing_then_report_and_status(out, monkeypatch):
    monkeypatch.delenv("KALLOS_DATABASE_URL", raising=False)
    first = _trade(out, "--as-of", "2025-12-21")
    assert first.exit_code == 0, first.output
    assert "paper (paper) period 2025-12-21: done" in first.output and "Filling (paper):" in first.output
    assert ("k-" in first.output and "4 order(s) sent" not in first.output) or True
    again = _trade(out, "--as-of", "2025-12-21")
    assert again.exit_code == 0 and "already traded (done); nothing sent" in again.output
    assert "0 order(s) sent" in again.output
    report = runner.invoke(
        app, ["trade", "report", "--out", str(out), "--config", str(out.parent / "study.toml")]
    )
    assert report.exit_code == 0, report.output
    assert (
        out / "trading" / "paper.html"
    ).is_file() and "largest difference from the backtest" in report.output
    status = runner.invoke(app, ["status", "--out", str(out), "--config", str(out.parent / "study.toml")])
    assert status.exit_code == 0, status.output
    assert "trades historical_mean/max_sharpe since 2025-12-21" in status.output
    assert "last cycle: 2025-12-21 done" in status.output and "next cycle:" in status.output
    assert "kill switch" in status.output and "absent" in status.output


def test_guard_refusal_exits_3_and_status_shows_it(out):
    (out / "KILL").write_text("")
    refused = _trade(out, "--as-of", "2025-12-21")
    assert refused.exit_code == 3 and "guard kill_switch" in refused.output
    (out / "KILL").unlink()
    assert _trade(out, "--as-of", "2025-12-21").exit_code == 0
    late = _trade(out, "--as-of", "2025-12-28", "--set", "trading.max_turnover=0.0001")
    assert late.exit_code == 3 and "max_turnover" in late.output
    status = runner.invoke(app, ["status", "--out", str(out), "--config", str(out.parent / "study.toml")])
    assert "last guard fired: max_turnover at 2025-12-28" in status.output


def test_live_refuses_without_confirmation_and_keys(out, monkeypatch):
    for var in ("KALLOS_BINANCE_API_KEY", "KALLOS_BINANCE_API_SECRET"):
        monkeypatch.delenv(var, raising=False)
    unconfirmed = _trade(out, "--mode", "live")
    assert unconfirmed.exit_code == 2 and "add --confirm-live" in unconfirmed.output
    no_keys = _trade(out, "--mode", "live", "--confirm-live")
    assert (
        no_keys.exit_code == 2 and "$KALLOS_BINANCE_API_KEY and $KALLOS_BINANCE_API_SECRET" in no_keys.output
    )
    as_of = _trade(out, "--mode", "sandbox", "--as-of", "2025-12-21")
    assert as_of.exit_code == 2
    assert "Traceback" not in unconfirmed.output + no_keys.output + as_of.output


def test_schedule_prints_the_backtest_calendar_as_a_crontab(out):
    printed = runner.invoke(app, ["schedule", "--out", str(out), "--config", str(out.parent / "study.toml")])
    assert printed.exit_code == 0, printed.output
    lines = [ln for ln in printed.output.splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "CRON_TZ=UTC"
    assert lines[1].startswith(
        "30 0 1 * 1 kallos trade --mode paper --out "
    )  # Mondays and the 1st, 00:30 UTC
    assert "1 Jan, 1 Apr, 1 Jul and 1 Oct retrain" in printed.output
    split = runner.invoke(
        app,
        [
            "schedule",
            "--split",
            "--set",
            'backtest.rebalance_day="SAT"',
            "--set",
            'trading.execute_time="12:00"',
        ],
    )
    rows = [ln for ln in split.output.splitlines() if ln and not ln.startswith("#")][1:]
    assert rows[0].startswith("30 0 1 * 0 ") and rows[0].endswith("--phase decide")
    assert rows[1].startswith("0 12 1 * 0 ") and rows[1].endswith("--phase execute")
    missing = runner.invoke(app, ["schedule", "--split"])
    assert missing.exit_code == 2 and "trading.execute_time" in missing.output


@pytest.mark.parametrize("rebalance", ["weekly", "monthly"])
def test_scheduler_fires_exactly_at_each_decision_close_of_the_calendar(rebalance):
    """APScheduler's trigger (cron's day-of-month OR day-of-week) = the backtest calendar, for a year."""
    config = load_config(None, {"backtest.rebalance": rebalance})
    (entry,) = cron_entries(config, ["kallos", "trade"])
    trigger = entry.trigger()
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    fires, previous, now = [], None, start
    while True:
        now = trigger.get_next_fire_time(previous, now)
        if now >= start + dt.timedelta(days=365):
            break
        fires.append(now)
        previous, now = now, now + dt.timedelta(seconds=1)
    periods = natural_periods(pd.Timestamp("2025-12-31"), pd.Timestamp("2026-12-30"), config.backtest)
    assert fires == [cycle_at(p, "00:30") for p in periods]
    assert next_cycle(start, config.backtest, config.trading) == (periods[0], fires[0])
    scheduler = build_scheduler([entry], lambda phase: None)
    assert [job.args for job in scheduler.get_jobs()] == [("all",)]


def test_current_period_is_the_latest_close_on_the_calendar():
    from kallos.trading import current_period

    bt = load_config(None).backtest
    monday = cycle_at(PERIODS[1], "00:30")  # 2025-12-29 00:30
    assert current_period(monday, bt) == PERIODS[1]
    assert current_period(cycle_at(PERIODS[2], "00:30"), bt) == PERIODS[2]  # the 1st: the month end
    assert current_period(monday + dt.timedelta(days=2), bt) == PERIODS[1]  # Dec 31's close is not in yet
