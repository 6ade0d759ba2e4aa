"""Rich progress bars for the pipeline's :class:`~kallos.pipeline.progress.Progress` interface."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["RichProgress"]


class _Stage:
    def __init__(self, progress: Progress, task) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1, note: str | None = None) -> None:
        self._progress.update(self._task, advance=n, note=note or "")


class RichProgress:
    """One rich progress bar per stage; stages with an unknown length show a spinner."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[_Stage]:
        columns = [SpinnerColumn(), TextColumn("[bold]{task.description}")]
        if total is not None:
            columns += [BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        columns += [TimeElapsedColumn(), TextColumn("[dim]{task.fields[note]}")]
        with Progress(*columns, console=self.console, transient=False) as progress:
            task = progress.add_task(name, total=total, note="")
            yield _Stage(progress, task)
            if total is None:
                progress.update(task, total=1, completed=1)
