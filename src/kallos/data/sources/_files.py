"""Shared helpers for file importers: listing inputs, reading CSV with context, checking rows.

Every check names the file and the 1-based file line (the header is line 1) of the first
offending row, and says what is expected.
"""

from __future__ import annotations

import datetime as dt
import gzip
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from kallos.exceptions import ImportFormatError

CSV_SUFFIXES = (".csv", ".csv.gz")
ISO_EXAMPLE = "ISO 8601, e.g. 2020-04-11 or 2020-04-11T00:00:00Z"


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
    except UnicodeDecodeError:
        raise ImportFormatError(_not_utf8(path)) from None
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
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


def _not_utf8(path: Path) -> str:
    """The message for a file that is not UTF-8 text: the first such row and byte, and the fix."""
    opener = gzip.open if str(path).lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            for line_no, line in enumerate(fh, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as err:
                    byte = line[err.start : err.start + 1].hex()
                    return (
                        f"{path}, row {line_no}: not UTF-8 text (byte 0x{byte} at column {err.start + 1}); "
                        "save the file as UTF-8 and import it again"
                    )
    except (OSError, EOFError, zlib.error):
        pass
    return f"{path}: not UTF-8 text; save the file as UTF-8 and import it again"


def numeric(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """Column as float; a non-numeric or non-finite cell is an error naming file, row and column.

    ``inf``, ``-inf`` and numbers beyond the float range (``1e400``) are refused: no provider
    exports them, and one infinite market cap would rank its coin first. Row numbers are
    1-based file lines (the header is line 1).
    """
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna() & (frame[column].astype(str).str.strip() != "")
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise ImportFormatError(
            f"{path}, row {i + 2}: column {column!r} is not a number: {frame[column].iloc[i]!r}"
        )
    values = values.astype(float)
    infinite = np.isinf(values.to_numpy())
    if infinite.any():
        i = int(infinite.nonzero()[0][0])
        n = int(infinite.sum())
        more = f" ({n - 1} more row(s) like it)" if n > 1 else ""
        raise ImportFormatError(
            f"{path}, row {i + 2}: column {column!r} is not a finite number: "
            f"{frame[column].iloc[i]!r}{more}; fix or remove the row"
        )
    return values


def utc_today() -> dt.date:
    """Today's calendar date in UTC (the newest day an import may hold)."""
    return dt.datetime.now(dt.UTC).date()


def parse_iso_dates(values: pd.Series) -> pd.Series:
    """Strings in ISO 8601 (date, or date and time with an optional offset) as UTC timestamps.

    Anything else (``11/04/2020``, ``April 11``) becomes NaT: day-first and month-first dates
    are ambiguous, so they are never guessed.
    """
    return pd.to_datetime(values.astype(str).str.strip(), utc=True, errors="coerce", format="ISO8601")


def check_dates(
    path: Path, stamps: pd.Series, frame: pd.DataFrame, column: str, expected: str, today: dt.date
) -> None:
    """Refuse unparsed (NaT) and future dates, naming the row, the value and the layout expected.

    ``stamps`` are tz-aware UTC timestamps parsed from ``frame[column]``; a date after
    ``today`` (UTC) cannot be real data.
    """
    if stamps.isna().any():
        i = int(stamps.isna().to_numpy().nonzero()[0][0])
        raise ImportFormatError(
            f"{path}, row {i + 2}: {column} {frame[column].iloc[i]!r} is not a date in the expected "
            f"layout {expected}; convert the column and import again"
        )
    future = (stamps.dt.tz_convert("UTC").dt.date > today).to_numpy()
    if future.any():
        i = int(future.nonzero()[0][0])
        raise ImportFormatError(
            f"{path}, row {i + 2}: {column} {frame[column].iloc[i]!r} is after today ({today}, UTC); "
            "a date in the future cannot be market data: fix or remove the row"
        )


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
