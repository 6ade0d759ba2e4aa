"""A throw-away Dask cluster of separate processes on this machine: ``dask scheduler`` and
``dask worker`` started as subprocesses, as a user would start them by hand.

Used by the tests and ``benchmarks/tuned_study.py`` to exercise the ``tcp://`` path exactly as a
real cluster is used (the workers are not children of the client), and to kill a worker.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ProcessCluster", "process_cluster"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dask_cli() -> list[str]:
    exe = Path(sys.executable).with_name("dask")
    return [str(exe)] if exe.is_file() else [shutil.which("dask") or "dask"]


@dataclass
class ProcessCluster:
    """A running scheduler and its workers (``address`` is ``tcp://127.0.0.1:PORT``)."""

    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    def kill_worker(self, i: int = 0) -> None:
        """SIGKILL worker ``i`` and its nanny-less process group (as a crash would)."""
        os.killpg(self.workers[i].pid, signal.SIGKILL)
        self.workers[i].wait(timeout=30)


def _wait_for_workers(address: str, n: int, timeout: float) -> None:
    from distributed import Client

    with Client(address, timeout=timeout) as client:
        client.wait_for_workers(n, timeout=timeout)


@contextmanager
def process_cluster(
    n_workers: int = 2, timeout: float = 60.0, env: dict[str, str] | None = None
) -> Iterator[ProcessCluster]:
    """Start ``dask scheduler`` and ``n_workers`` single-threaded ``dask worker`` processes on 127.0.0.1.

    Workers run without a nanny (``--no-nanny``), so a killed worker stays dead and its tasks
    move to the others. Everything is stopped when the block ends.

    Raises
    ------
    TimeoutError
        If the workers have not joined within ``timeout`` seconds.
    """
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
    full_env = {**os.environ, **(env or {}), "OMP_NUM_THREADS": "1"}
    cli = _dask_cli()
    scheduler = subprocess.Popen(
        [*cli, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0"],
        env=full_env,
        **quiet,
    )
    cluster = ProcessCluster(address, scheduler)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or scheduler.poll() is not None:
                    raise TimeoutError(f"dask scheduler on {address} did not start") from None
                time.sleep(0.2)
        for _ in range(n_workers):
            cluster.workers.append(
                subprocess.Popen(
                    [*cli, "worker", address, "--nthreads", "1", "--no-nanny", "--dashboard-address", ":0"],
                    env=full_env,
                    **quiet,
                )
            )
        _wait_for_workers(address, n_workers, timeout)
        yield cluster
    finally:
        for proc in [*cluster.workers, scheduler]:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in [*cluster.workers, scheduler]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
