"""A tiny progress interface so long stages can report without touching a terminal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

__all__ = ["NullProgress", "Progress", "StageProgress"]


class StageProgress(Protocol):
    def advance(self, n: int = 1, note: str | None = None) -> None: ...


class Progress(Protocol):
    """Opens a stage of ``total`` steps (None = unknown); the CLI renders it with rich."""

    def stage(self, name: str, total: int | None = None) -> AbstractContextManager[StageProgress]: ...


class _NullStage:
    def advance(self, n: int = 1, note: str | None = None) -> None:
        return None


class NullProgress:
    """Reports nothing (library default)."""

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[StageProgress]:
        yield _NullStage()
