"""Atomic file writes for every output the report stage produces."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from kallos.exceptions import OutputError

__all__ = ["atomic_write", "check_writable"]


def check_writable(directory: str | Path) -> Path:
    """Create ``directory`` (and its parents) and prove a file can be written in it.

    Called before long work, so an unwritable output location fails at once rather than
    after a study has run. The probe file is removed again.

    Raises
    ------
    OutputError
        Naming the directory and the reason (read-only file system, permission denied, a file
        where a directory should be).
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".kallos-write-probe.", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        blocker = next((p for p in (directory, *directory.parents) if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is a file, not a directory" if blocker else (err.strerror or str(err))
        raise OutputError(
            f"cannot write to the output directory {directory}: {why}; choose a writable --out"
        ) from None
    return directory


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write ``path`` through ``write(tmp)`` on a temporary file beside it, then one ``os.replace``.

    A reader never sees a half-written file, and a failure (any exception, including
    KeyboardInterrupt) removes the temporary file and leaves ``path`` as it was. Parent folders
    are created; the file is flushed to disk before the rename and readable by all (0o644).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path
