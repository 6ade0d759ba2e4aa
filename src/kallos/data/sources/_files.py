"""Shared helpers for file importers: listing inputs and reading CSV with context."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from kallos.exceptions import ImportFormatError

CSV_SUFFIXES = (".csv", ".csv.gz")


def list_csv_files(path: Path, patterns: Iterable[str]) -> list[Path]:
    """``path`` itself if it is a file, else files in the directory matching ``patterns``.

    Raises
    ------
    ImportFormatError
        If ``path`` does not exist or holds no matching file.
    """
    if not path.exists():
        raise ImportFormatError(f"{path}: no such file or directory")
    if path.is_file():
        return [path]
    files = sorted({f for pat in patterns for f in path.glob(pat) if f.is_file()})
    if not files:
        raise ImportFormatError(f"{path}: no files matching {list(patterns)}")
    return files


def strip_suffix(name: str) -> str:
    for suffix in (".csv.gz", ".csv"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def read_csv(path: Path, required: Iterable[str], **kwargs) -> pd.DataFrame:
    """Read a CSV (gzip allowed) and check ``required`` columns are present.

    Raises
    ------
    ImportFormatError
        Naming the file if it cannot be parsed or lacks a column.
    """
    try:
        frame = pd.read_csv(path, **kwargs)
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        OSError,
        EOFError,
        zlib.error,
        gzip.BadGzipFile,
    ) as err:
        raise ImportFormatError(f"{path}: cannot be read as CSV: {err}") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ImportFormatError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    return frame


def numeric(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """Column as float; a non-numeric cell is an error naming file, row and column.

    Row numbers are 1-based file lines (the header is line 1).
    """
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna() & (frame[column].astype(str).str.strip() != "")
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise ImportFormatError(
            f"{path}, row {i + 2}: column {column!r} is not a number: {frame[column].iloc[i]!r}"
        )
    return values.astype(float)


def fail_rows(path: Path, mask: pd.Series, message: str, frame: pd.DataFrame) -> None:
    """Raise for the first row where ``mask`` holds (row = 1-based file line)."""
    if mask.any():
        i = int(mask.to_numpy().nonzero()[0][0])
        n = int(mask.sum())
        more = f" ({n - 1} more row(s) like it)" if n > 1 else ""
        raise ImportFormatError(f"{path}, row {i + 2}: {message}: {frame.iloc[i].to_dict()}{more}")


def check_duplicate_dates(path: Path, dates: pd.Series, frame: pd.DataFrame) -> None:
    dup = dates.duplicated(keep="first")
    fail_rows(path, dup, "duplicated date " + (str(dates[dup].iloc[0].date()) if dup.any() else ""), frame)
