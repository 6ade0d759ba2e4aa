"""``kallos run --tune`` from the command line: SIGKILL and resume, a second run refused, scheduler errors."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kallos.cli.app import app

runner = CliRunner()

TUNED_STUDY = """
n_jobs = 2
[universe]
top_n = 3
[forecast]
forecasters = ["gru", "zero", "historical_mean"]
[backtest]
start = 2023-01-01
end = 2023-06-30
[forecast.training]
lookback = 10
max_epochs = 4
[forecast.tuning]
n_trials = 4
[forecast.tuning.space]
hidden_size = [4, 8]
num_layers = [1, 1]
lookback = [5, 10]
batch_size = [64]
[evaluation.calibration]
size_reps = 0
power_reps = 0
"""


def _args(cfg: Path, out: Path, data_dir: Path) -> list[str]:
    return ["run", "--tune", "--config", str(cfg), "--out", str(out), "--data-dir", str(data_dir)]


def _trials(db: Path, state: str = "COMPLETE") -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM trials WHERE state = ?", (state,)).fetchone()[0]
    except sqlite3.Error:
        return 0  # no Optuna tables yet


def _run_dir(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "models"]
    return run


@pytest.mark.slow
def test_sigkill_mid_search_then_rerun_equals_an_uninterrupted_run(tmp_path, data_dir):
    """Kill `kallos run --tune` (and its local Dask workers) mid-search; the same command finishes the
    search from the stored trials, and its forecasts equal an uninterrupted run's. While the first run
    is alive, a second one on the same configuration and database is refused."""
    cfg = tmp_path / "tuned.toml"
    cfg.write_text(TUNED_STUDY)
    killed = tmp_path / "killed"
    env = {**os.environ, "KALLOS_DATA_DIR": str(data_dir)}
    cmd = [sys.executable, "-c", "from kallos.cli.app import main; main()", *_args(cfg, killed, data_dir)]
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    db = killed / "kallos.db"
    deadline = time.monotonic() + 300
    while _trials(db) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]

    second = runner.invoke(app, _args(cfg, killed, data_dir))  # same config, same database, at once
    assert second.exit_code == 2
    assert "another `kallos run --tune` of this configuration" in " ".join(second.output.split())

    os.killpg(proc.pid, signal.SIGKILL)  # the client and its LocalCluster workers
    proc.wait(timeout=30)
    done_before = _trials(db)
    assert 6 <= done_before < 24, done_before  # stopped mid-search (6 studies x 4 trials)

    resumed = runner.invoke(app, _args(cfg, killed, data_dir))
    assert resumed.exit_code == 0, resumed.output
    fresh = tmp_path / "fresh"
    uninterrupted = runner.invoke(app, _args(cfg, fresh, data_dir))
    assert uninterrupted.exit_code == 0, uninterrupted.output

    a, b = _run_dir(killed), _run_dir(fresh)
    assert (a / "forecasts.parquet").read_bytes() == (b / "forecasts.parquet").read_bytes()
    assert (a / "weights.parquet").read_bytes() == (b / "weights.parquet").read_bytes()
    ta, tb = (json.loads((d / "results.json").read_text())["tuning"] for d in (a, b))
    assert [s["training"] | s["network"] for s in ta["studies"]] == [
        s["training"] | s["network"] for s in tb["studies"]
    ]
    assert ta["states"]["COMPLETE"] + ta["states"].get("PRUNED", 0) == 24 == sum(tb["states"].values())
    # Trials left running by the kill are kept as FAIL (interrupted) and counted for the DSR.
    assert ta["states"].get("FAIL", 0) == _trials(db, "FAIL") >= 1


def test_a_remote_scheduler_with_sqlite_is_refused_before_any_work(tmp_path, data_dir):
    out = tmp_path / "out"
    res = runner.invoke(
        app,
        ["run", "--tune", "--scheduler", "tcp://127.0.0.1:9", "--out", str(out), "--data-dir", str(data_dir)],
    )
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "cannot share a SQLite file" in text and "--database-url postgresql://" in text
    assert not out.exists() or not any(out.iterdir())  # no database, no run directory


def test_an_unknown_scheduler_and_preset_name_what_to_use(tmp_path):
    res = runner.invoke(app, ["run", "--scheduler", "dask://x", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "compute.scheduler" in res.output
    res = runner.invoke(app, ["run", "--preset", "nope", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "shipped presets: original" in res.output
    res = runner.invoke(
        app, ["run", "--preset", "original", "--config", "x.toml", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2 and "--preset and --config" in res.output
