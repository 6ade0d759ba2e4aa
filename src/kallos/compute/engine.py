"""Execution engines: where training and tuning jobs run. Dask distributed, or this process.

Three places a job can run (config ``compute.scheduler``, CLI ``--scheduler``):

* ``"local"`` (default): a :class:`distributed.LocalCluster` with ``n_workers`` worker
  processes of one thread each, started for the run and closed after it.
* ``"tcp://HOST:PORT"``: a cluster the user started with ``dask scheduler`` and
  ``dask worker tcp://HOST:PORT`` (on this and other machines); Kallos only connects a client.
* ``"none"``: every job in this process, one after another.

An engine only decides *where* a job runs. Jobs are pure functions of their arguments (seeded
fits, one torch thread each, see :mod:`kallos.forecast.training`), so forecasts and results do
not depend on the engine, the number of workers or the completion order (tested).

Dask reschedules the tasks of a worker that dies on another worker
(``distributed.scheduler.allowed-failures``, default 3 deaths per task), so a killed worker
costs only its running job. Task functions must be importable from a module (workers are
separate processes, spawned), not defined in ``__main__``.

Reference: the Dask distributed documentation, "Futures" and "LocalCluster"
(https://distributed.dask.org/en/stable/).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from kallos.exceptions import ConfigError

__all__ = [
    "DaskEngine",
    "Engine",
    "InProcessEngine",
    "is_remote",
    "open_engine",
    "probe_directory",
]

T = TypeVar("T")
R = TypeVar("R")

#: A job carries its coin's feature history in the task itself (about 1 MB), so the graph of a
#: study is tens of MB. Kept in the graph rather than scattered: scattered data dies with its
#: worker, graph arguments are resent when Dask reruns a killed worker's task. Dask's warning
#: threshold (10 MB) is raised accordingly.
GRAPH_WARNING_THRESHOLD = "1GB"

#: Seconds to wait for a ``tcp://`` scheduler to answer before giving up.
CONNECT_TIMEOUT_S = 20


class Engine(Protocol):
    """Runs picklable, importable functions over items (see the module docstring)."""

    name: str
    dashboard_link: str | None

    def check_writable(self, directory: str) -> None:
        """Raise :class:`ConfigError` unless every worker can create files in ``directory``."""
        ...

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``fn(x)`` for each of ``items``, yielded in order as each becomes available."""
        ...

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        """``(i, fn(items[i]))`` for every ``i``, as each finishes. A task's exception is raised here."""
        ...


@dataclass
class InProcessEngine:
    """Every job in this process, in order (``compute.scheduler = "none"``)."""

    name: str = "none"
    dashboard_link: str | None = None

    def check_writable(self, directory: str) -> None:
        """Raise :class:`ConfigError` unless this process can create files in ``directory``."""
        why = probe_directory(directory)
        if why:
            raise ConfigError(f"compute.artifact_dir={directory}: cannot write there ({why}); choose another")

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        for x in items:
            yield fn(x)

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        for i, x in enumerate(items):
            yield i, fn(x)


class DaskEngine:
    """Jobs submitted to a Dask distributed ``Client`` (a local or a remote cluster).

    Parameters
    ----------
    client : a connected :class:`distributed.Client`.
    name : ``"local"`` or the scheduler address, for messages.
    """

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name
        self.dashboard_link: str | None = client.dashboard_link

    @property
    def n_workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def check_writable(self, directory: str) -> None:
        """Raise :class:`ConfigError` unless every worker can create files in ``directory``."""
        answers = self.client.run(probe_directory, directory)
        bad = {worker: why for worker, why in answers.items() if why}
        if bad:
            listed = "; ".join(f"{w}: {why}" for w, why in sorted(bad.items()))
            raise ConfigError(
                f"compute.artifact_dir={directory}: {len(bad)} of {len(answers)} Dask workers cannot write "
                f"there ({listed}); use a directory every worker reaches (a shared mount) and can write"
            )

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        items = list(items)
        if not items:
            return
        futures = self.client.map(fn, items, pure=False)
        try:
            for future in futures:
                yield future.result()
                future.release()
        finally:
            self.client.cancel(futures)

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        from distributed import as_completed

        if not items:
            return
        futures = self.client.map(fn, list(items), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for future in as_completed(futures):
                result = future.result()
                i = index[future.key]
                future.release()
                yield i, result
        finally:
            self.client.cancel(futures)


def probe_directory(directory: str) -> str | None:
    """None if this process can create and remove a file in ``directory``, else why not.

    Directories the probe had to create are removed again: it leaves nothing behind.
    """
    path = Path(directory)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".kallos-probe-"):
            pass
    except OSError as err:
        return f"{type(err).__name__}: {err.strerror or err}"
    finally:
        for created in missing:  # deepest first
            try:
                created.rmdir()
            except OSError:
                break
    return None


def is_remote(scheduler: str) -> bool:
    """True for a ``tcp://`` scheduler address (workers may be on other machines)."""
    return scheduler.startswith("tcp://")


@contextmanager
def open_engine(scheduler: str = "local", n_workers: int = 2) -> Iterator[Engine]:
    """The engine for ``scheduler`` (see the module docstring), closed when the block ends.

    Parameters
    ----------
    scheduler : ``"local"``, ``"none"`` or ``"tcp://HOST:PORT"``.
    n_workers : worker processes of the local cluster (one thread each); ignored otherwise.

    Raises
    ------
    ConfigError
        For an unknown scheduler, or a ``tcp://`` scheduler that does not answer within
        ``CONNECT_TIMEOUT_S`` seconds or has no worker (the message says how to start them).
    """
    if scheduler == "none":
        yield InProcessEngine()
        return
    import dask
    import distributed  # noqa: F401 - registers its config defaults before they are changed below

    with dask.config.set({"distributed.admin.large-graph-warning-threshold": GRAPH_WARNING_THRESHOLD}):
        yield from _dask_engine(scheduler, n_workers)


def _dask_engine(scheduler: str, n_workers: int) -> Iterator[Engine]:
    from distributed import Client, LocalCluster

    if scheduler == "local":
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
        try:
            with Client(cluster) as client:
                yield DaskEngine(client, "local")
        finally:
            cluster.close()
        return
    if not is_remote(scheduler):
        raise ConfigError(
            f"compute.scheduler={scheduler!r}: use 'local', 'none' or 'tcp://HOST:PORT' of a running "
            "`dask scheduler`"
        )
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as err:
        raise ConfigError(
            f"compute.scheduler={scheduler}: no Dask scheduler answered ({err}); start one with "
            f"`dask scheduler --port {scheduler.rsplit(':', 1)[-1]}` and workers with "
            f"`dask worker {scheduler} --nthreads 1`, or use --scheduler local"
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise ConfigError(
                f"compute.scheduler={scheduler}: the scheduler has no worker; start some with "
                f"`dask worker {scheduler} --nthreads 1` (one per core, on any machine that can reach it)"
            ) from None
        yield DaskEngine(client, scheduler)
    finally:
        client.close()
