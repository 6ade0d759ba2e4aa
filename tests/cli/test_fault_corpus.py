"""The fault corpus: bad input and faults against the command line, as a new user meets them.

Every case runs a real ``kallos`` command (in-process, through Typer's runner) and states what a
user must see: exit code 2 (or 0 where the input is acceptable), one line naming the file, row,
key or database and what to do, no traceback, and nothing half-written: the store unchanged and
no new file, directory or table left behind by a failed command. Cases that involve a store run
on SQLite and on PostgreSQL (a fresh schema per case, selected through the URL's search_path).

The kill cases SIGKILL a process at many points inside the first migration of a new database
and check that the schema is either untouched or complete, and that the next command works.

Set ``KALLOS_CORPUS_RECORD=<file>`` to append one JSON line per case (exit code, first message
line or traceback, failed expectations); issue 10's before/after table was made that way, by
running this file against the landed code and against the fixed one.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import multiprocessing as mp
import os
import re
import signal
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from kallos.cli.app import app
from kallos.data import Store, ingest
from kallos.data import schema as s

PG_BASE = os.environ.get("KALLOS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
CG_HEADER = "snapped_at,price,market_cap,total_volume\n"
KL_HEADER = "timestamp,open,high,low,close,volume\n"
CMC_HEADER = "Rank,Name,Symbol,Market Cap,Price,Circulating Supply,Volume (24h),snapshot_date\n"
KALLOS_TABLES = set(s.metadata.tables) | {"daily_technical_indicators", "model_registry"}
runner = CliRunner()


# ------------------------------------------------------------------ the case context
@dataclass
class Ctx:
    """One case on one backend: a temporary directory, a database URL and the expectations."""

    tmp: Path
    backend: str
    url: str | None
    schema: str | None
    case: str
    data_dir: Path | None = None  # the real datasets (../shared/data)
    failures: list[str] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)

    # ---- commands
    def kallos(self, *args: str, db: bool = True, env: dict | None = None):
        argv = [str(a) for a in args]
        if db and self.url and "--database-url" not in argv:
            argv += ["--database-url", self.url]
        res = runner.invoke(app, argv, env={"COLUMNS": "400", **(env or {})})
        self.outcomes.append(_outcome(res))
        return res

    # ---- expectations (collected, so that a run on old code records every one)
    def expect(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)

    def expect_error(self, res, *patterns: str) -> None:
        """Exit 2, no traceback, one error line matching every pattern (regular expressions)."""
        self.expect(res.exception is None or isinstance(res.exception, SystemExit), "no traceback")
        self.expect(res.exit_code == 2, f"exit 2 (got {res.exit_code})")
        line = _error_line(res.output)
        for p in patterns:
            self.expect(re.search(p, line) is not None, f"message matches {p!r}")
        self.expect("Traceback" not in res.output and "[SQL:" not in res.output, "no traceback or SQL text")

    def expect_ok(self, res, *patterns: str) -> None:
        self.expect(res.exit_code == 0, f"exit 0 (got {res.exit_code})")
        for p in patterns:
            self.expect(re.search(p, res.output) is not None, f"output matches {p!r}")

    # ---- the store
    def market(self) -> pd.DataFrame:
        store = Store(self.url, migrate=False)
        try:
            return store.read_market_data().drop(columns="ingested_at")
        finally:
            store.dispose()

    def tables(self) -> set[str]:
        engine = sa.create_engine(_sqlalchemy(self.url))
        try:
            if self.backend == "sqlite" and not Path(self.url.removeprefix("sqlite:///")).exists():
                return set()
            with engine.connect() as conn:
                return set(sa.inspect(conn).get_table_names(schema=self.schema))
        finally:
            engine.dispose()

    def db_path(self) -> Path | None:
        return Path(self.url.removeprefix("sqlite:///")) if self.backend == "sqlite" else None

    def expect_no_new_database(self) -> None:
        """Nothing of a database the failed command was the first to open is left."""
        if self.backend == "sqlite":
            left = sorted(p.name for p in self.db_path().parent.glob(self.db_path().name + "*"))
            self.expect(left == [], f"no database file left (found {left})")
        elif self.backend == "postgresql":
            left = sorted(self.tables())
            self.expect(left == [], f"no table left (found {left[:4]}...)")

    def seed(self, coin: str = "aaa", days: int = 30) -> pd.DataFrame:
        """A valid small CoinGecko import; returns the stored rows."""
        store = Store(self.url)
        ingest(store, "coingecko", write_cg(self.tmp / "seed" / f"{coin}-usd-max.csv", days=days))
        store.dispose()
        return self.market()

    def expect_market_unchanged(self, before: pd.DataFrame) -> None:
        after = self.market()
        self.expect(after.equals(before), "stored rows unchanged")


def _sqlalchemy(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1] if url.startswith("postgresql://") else url


def _error_line(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    return " ".join(lines[lines.index(errors[0]) :]) if errors else (" ".join(lines) if lines else "")


def _outcome(res) -> str:
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        return f"exit {res.exit_code}: traceback {type(res.exception).__name__}: {str(res.exception)[:160]}"
    line = _error_line(res.output) if res.exit_code else (res.output.strip().splitlines() or [""])[-1]
    return f"exit {res.exit_code}: {line[:220]}"


# ------------------------------------------------------------------ files
def write(path: Path, text: str | bytes, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def cg_rows(days: int = 30, start: str = "2021-01-02", seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=days, freq="D")
    price = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, days)))
    return "".join(
        f"{d:%Y-%m-%d} 00:00:00 UTC,{p:.6f},{p * 1e7:.2f},{p * 1e5:.2f}\n"
        for d, p in zip(dates, price, strict=True)
    )


def write_cg(path: Path, days: int = 30, extra: str = "", start: str = "2021-01-02", seed: int = 0) -> Path:
    return write(path, CG_HEADER + cg_rows(days, start, seed) + extra)


def mini_data_dir(root: Path, days: int = 900) -> Path:
    """Four synthetic coins in the CoinGecko layout of a data directory (2021-01-01 onwards)."""
    for i, coin in enumerate(("aaa", "bbb", "ccc", "ddd")):
        write_cg(root / "coingecko_daily_top50" / "original" / f"{coin}-usd-max.csv", days=days, seed=i)
    return root


MINI_STUDY = """
n_jobs = 1
[universe]
top_n = 3
[forecast]
forecasters = ["historical_mean", "naive_persistence"]
train_start = 2021-06-01
[portfolio]
objectives = ["min_volatility"]
[backtest]
start = 2023-03-01
end = 2023-04-30
"""


@contextlib.contextmanager
def read_only(directory: Path):
    """``directory`` unwritable even for root (immutable attribute), restored afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode != 0:
        pytest.skip("cannot make a directory read-only here (chattr +i refused)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=False)


# ------------------------------------------------------------------ the registry of cases
CASES: dict[str, tuple[Callable[[Ctx], None], tuple[str, ...]]] = {}
BOTH = ("sqlite", "postgresql")


def case(name: str, backends: tuple[str, ...] = BOTH):
    def register(fn: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
        CASES[name] = (fn, backends)
        return fn

    return register


def ingest_file_case(name: str, filename: str, body: str | bytes, *patterns: str, source: str = "coingecko"):
    """A malformed file imported into a store that already holds rows: refused, store unchanged."""

    @case(name)
    def run(ctx: Ctx) -> None:
        before = ctx.seed()
        f = write(ctx.tmp / "in" / filename, body)
        res = ctx.kallos("ingest", "--source", source, "--path", f)
        ctx.expect_error(res, re.escape(str(f)), *patterns)
        ctx.expect_market_unchanged(before)

    return run


# ---- CoinGecko exports
GOOD = "2020-04-10 00:00:00 UTC,1,5,5\n"
for _name, _stamp in (
    ("cg_day_first_date_11_04", "11/04/2020"),
    ("cg_day_first_date_13_04", "13/04/2020"),
    ("cg_month_first_date", "04/13/2020"),
    ("cg_dotted_date", "11.04.2020"),
    ("cg_text_date", "yesterday"),
):
    ingest_file_case(
        _name, "abc-usd-max.csv", CG_HEADER + GOOD + f"{_stamp},2,5,5\n", r"row 3", "snapped_at", "ISO 8601"
    )
for _name, _row, _col in (
    ("cg_price_inf", "2020-04-11 00:00:00 UTC,inf,5,5", "price"),
    ("cg_price_1e400", "2020-04-11 00:00:00 UTC,1e400,5,5", "price"),
    ("cg_market_cap_inf", "2020-04-11 00:00:00 UTC,1,inf,5", "market_cap"),
    ("cg_volume_minus_inf", "2020-04-11 00:00:00 UTC,1,5,-inf", "total_volume"),
):
    ingest_file_case(_name, "abc-usd-max.csv", CG_HEADER + GOOD + _row + "\n", r"row 3", _col, "finite")
ingest_file_case(
    "cg_future_date",
    "abc-usd-max.csv",
    CG_HEADER + GOOD + "2099-01-01 00:00:00 UTC,2,5,5\n",
    r"row 3",
    "after today",
)
ingest_file_case(
    "cg_latin1_file",
    "abc-usd-max.csv",
    (CG_HEADER + GOOD).encode() + "2020-04-11 00:00:00 UTC,2,5,5 caf\xe9\n".encode("latin-1"),
    r"row 3",
    "UTF-8",
)
ingest_file_case(
    "cg_zero_price", "abc-usd-max.csv", CG_HEADER + "2020-04-10 00:00:00 UTC,0,5,5\n", "row 2", "non-positive"
)
ingest_file_case(
    "cg_negative_price", "abc-usd-max.csv", CG_HEADER + "2020-04-10 00:00:00 UTC,-1,5,5\n", "row 2"
)
ingest_file_case(
    "cg_text_price",
    "abc-usd-max.csv",
    CG_HEADER + "2020-04-10 00:00:00 UTC,abc,5,5\n",
    "row 2",
    "not a number",
)
ingest_file_case(
    "cg_negative_market_cap", "abc-usd-max.csv", CG_HEADER + "2020-04-10 00:00:00 UTC,1,-5,5\n", "row 2"
)
ingest_file_case(
    "cg_missing_column", "abc-usd-max.csv", "snapped_at,price,total_volume\n2020-04-10,1,5\n", "market_cap"
)
ingest_file_case("cg_header_only", "abc-usd-max.csv", CG_HEADER, "no rows")
ingest_file_case("cg_zero_bytes", "abc-usd-max.csv", b"", "cannot be read")
ingest_file_case("cg_duplicated_date", "abc-usd-max.csv", CG_HEADER + GOOD + GOOD, "row 3", "duplicated date")
ingest_file_case("cg_corrupt_gzip", "abc-usd-max.csv.gz", b"\x1f\x8b\x08garbage", "cannot be read")
ingest_file_case(
    "cg_ragged_row",
    "abc-usd-max.csv",
    CG_HEADER + GOOD + "2020-04-11 00:00:00 UTC,1,5,5,9,9\n",
    "cannot be read",
)

# ---- Binance klines
KL_GOOD = "2020-01-01,10,11,8,10,1\n"
for _name, _row, _pattern in (
    ("bn_day_first_date", "11/04/2020,10,11,8,10,1", "timestamp"),
    ("bn_high_inf", "2020-01-02,10,inf,8,10,1", "finite"),
    ("bn_close_1e400", "2020-01-02,10,11,8,1e400,1", "finite"),
    ("bn_future_date", "2099-01-02,10,11,8,10,1", "after today"),
    ("bn_high_below_close", "2020-01-02,10,9,8,9.5,1", "high below"),
    ("bn_not_midnight", "2020-01-02 13:00,10,11,8,10,1", "00:00 UTC"),
):
    ingest_file_case(
        _name,
        "XRPUSDT_1d.csv",
        KL_HEADER + KL_GOOD + _row + "\n" + KL_GOOD.replace("01,", "03,", 1),
        "row 3",
        _pattern,
        source="binance",
    )
ingest_file_case(
    "bn_missing_column",
    "XRPUSDT_1d.csv",
    "timestamp,open,high,low,close\n2020-01-01,1,1,1,1\n",
    "volume",
    source="binance",
)
ingest_file_case(
    "bn_non_usd_pair", "ETHBTC_1d.csv", KL_HEADER + KL_GOOD, "not quoted in USD", source="binance"
)
ingest_file_case(
    "bn_unreadable_file_name", "klines.csv", KL_HEADER + KL_GOOD, "pair from the file name", source="binance"
)

# ---- CoinMarketCap snapshots
CMC_GOOD = "1,Bitcoin,BTC,1e12,50000,19000000,1e10,20240101\n"
for _name, _row, _pattern in (
    ("cmc_bad_date", "2,Ether,ETH,1e11,3000,1e8,1e9,2024-01-01", "YYYYMMDD"),
    ("cmc_market_cap_inf", "2,Ether,ETH,inf,3000,1e8,1e9,20240101", "finite"),
    ("cmc_negative_price", "2,Ether,ETH,1e11,-3000,1e8,1e9,20240101", "negative Price"),
    ("cmc_future_snapshot", "2,Ether,ETH,1e11,3000,1e8,1e9,20990101", "after today"),
):
    ingest_file_case(
        _name, "snapshots.csv", CMC_HEADER + CMC_GOOD + _row + "\n", "row 3", _pattern, source="cmc"
    )
ingest_file_case(
    "cmc_missing_column", "snapshots.csv", "Rank,Name,Symbol\n1,Bitcoin,BTC\n", "missing column", source="cmc"
)


@case("cg_iso_8601_dates_accepted")
def _(ctx: Ctx) -> None:
    f = write(ctx.tmp / "abc-usd-max.csv", CG_HEADER + "2020-04-11,1,5,5\n2020-04-12T00:00:00Z,2,5,5\n")
    res = ctx.kallos("ingest", "--source", "coingecko", "--path", f)
    ctx.expect_ok(res, "daily_market_data: 2 rows upserted")
    ctx.expect(ctx.market()["date"].dt.strftime("%m-%d").tolist() == ["04-10", "04-11"], "close-of-day dates")


@case("cg_two_files_for_one_coin")
def _(ctx: Ctx) -> None:
    write_cg(ctx.tmp / "in" / "abc-usd-max.csv")
    write(ctx.tmp / "in" / "ABC-usd-max.csv.gz", CG_HEADER + cg_rows(), gz=True)
    res = ctx.kallos("ingest", "--source", "coingecko", "--path", ctx.tmp / "in")
    ctx.expect_error(res, "several files map to coin id")
    ctx.expect_no_new_database()


# ---- overwrites
def _mislabelled(ctx: Ctx, replace: bool) -> None:
    data_dir = ctx.data_dir
    btc = data_dir / "coingecko_daily_top50/original/btc-usd-max.csv.gz"
    eth = data_dir / "coingecko_daily_top50/original/eth-usd-max.csv.gz"
    store = Store(ctx.url)
    ingest(store, "coingecko", btc)
    store.dispose()
    before = ctx.market()
    wrong = write(ctx.tmp / "in" / "btc-usd-max.csv.gz", eth.read_bytes())
    res = ctx.kallos("ingest", "--source", "coingecko", "--path", wrong, *(["--replace"] if replace else []))
    if replace:
        ctx.expect_ok(res, r"3848 of 3848 stored row\(s\) overwritten \(--replace\)")
    else:
        ctx.expect_error(res, "would change the stored coingecko close of btc on 3848", "--replace")
        ctx.expect_market_unchanged(before)


@case("cg_mislabelled_export_refused")
def _(ctx: Ctx) -> None:
    _mislabelled(ctx, replace=False)


@case("cg_mislabelled_export_with_replace")
def _(ctx: Ctx) -> None:
    _mislabelled(ctx, replace=True)


@case("cg_revised_rows_reported")
def _(ctx: Ctx) -> None:
    ctx.seed(days=30)
    body = cg_rows(30).splitlines()
    last = body[-1].split(",")
    body[-1] = ",".join([last[0], f"{float(last[1]) * 1.03:.6f}", *last[2:]])
    f = write(ctx.tmp / "in" / "aaa-usd-max.csv", CG_HEADER + "\n".join(body) + "\n")
    res = ctx.kallos("ingest", "--source", "coingecko", "--path", f)
    ctx.expect_ok(res, r"aaa \(coingecko\): 1 of 30 stored row\(s\) changed")


@case("cg_same_file_twice_changes_nothing")
def _(ctx: Ctx) -> None:
    before = ctx.seed(days=30)
    res = ctx.kallos("ingest", "--source", "coingecko", "--path", ctx.tmp / "seed" / "aaa-usd-max.csv")
    ctx.expect_ok(res, "30 rows upserted")
    ctx.expect(not re.search("stored row", res.output), "no change reported")
    ctx.expect_market_unchanged(before)


# ---- paths, sources and directories
@case("ingest_missing_path")
def _(ctx: Ctx) -> None:
    res = ctx.kallos("ingest", "--source", "coingecko", "--path", ctx.tmp / "nowhere.csv")
    ctx.expect_error(res, "no such file or directory")
    ctx.expect_no_new_database()


@case("ingest_missing_data_directory")
def _(ctx: Ctx) -> None:
    res = ctx.kallos("ingest", "--source", "csv", "--path", ctx.tmp / "no_such_dir")
    ctx.expect_error(res, "no_such_dir", "does not exist")
    ctx.expect_no_new_database()


@case("ingest_directory_without_datasets")
def _(ctx: Ctx) -> None:
    (ctx.tmp / "empty_dir").mkdir()
    res = ctx.kallos("ingest", "--source", "csv", "--path", ctx.tmp / "empty_dir")
    ctx.expect_error(res, "holds none of")
    ctx.expect_no_new_database()


@case("ingest_unknown_source")
def _(ctx: Ctx) -> None:
    res = ctx.kallos("ingest", "--source", "kraken", "--path", ctx.tmp)
    ctx.expect_error(res, "kraken")
    ctx.expect_no_new_database()


@case("ingest_csv_without_path_or_env")
def _(ctx: Ctx) -> None:
    res = ctx.kallos("ingest", "--source", "csv", env={"KALLOS_DATA_DIR": ""})
    ctx.expect_error(res, "--path|KALLOS_DATA_DIR")
    ctx.expect_no_new_database()


# ---- live ingests (no network is reached: the stub URL is a closed port)
DEAD = "http://127.0.0.1:9"


def live(ctx: Ctx, *extra: str):
    """``kallos ingest --source binance --coins btc`` against a closed port, plus ``extra``."""
    base = ("ingest", "--source", "binance", "--coins", "btc", "--base-url", DEAD, "--max-attempts", "1")
    return ctx.kallos(*base, "--timeout", "1", *extra)


@case("live_end_before_start")
def _(ctx: Ctx) -> None:
    res = live(ctx, "--start", "2021-02-01", "--end", "2021-01-01")
    ctx.expect_error(res, "2021-01-01", "before", "2021-02-01")
    ctx.expect_no_new_database()


@case("live_start_in_the_future")
def _(ctx: Ctx) -> None:
    res = live(ctx, "--start", "2099-01-01")
    ctx.expect_error(res, "2099-01-01", "after")
    ctx.expect_no_new_database()


@case("live_bad_date_format")
def _(ctx: Ctx) -> None:
    res = live(ctx, "--start", "01/02/2021")
    ctx.expect_error(res, "--start", "YYYY-MM-DD")
    ctx.expect_no_new_database()


@case("live_unreachable_api")
def _(ctx: Ctx) -> None:
    res = live(ctx, "--start", "2021-01-01", "--end", "2021-01-05")
    ctx.expect_error(res, "binance")


@case("live_api_failing_midway_keeps_the_whole_chunks")
def _(ctx: Ctx) -> None:
    from kallos.testing import MarketStub

    bn = pd.read_parquet(ctx.data_dir / "binance_spot_daily" / "long.parquet")
    bn = bn[(bn["coin_id"] == "btc") & (bn["date"] >= "2020-12-25") & (bn["date"] <= "2021-01-25")]
    frame = bn[["date", "open", "high", "low", "close", "volume"]].reset_index(drop=True)
    with MarketStub(binance={"BTCUSDT": frame}, faults={"bn_klines": {2: "500"}}) as stub:
        res = ctx.kallos("ingest", "--source", "binance", "--coins", "btc", "--start", "2021-01-01",
                         "--end", "2021-01-20", "--base-url", stub.url, "--page-limit", "5",
                         "--max-attempts", "1")  # fmt: skip
    ctx.expect_error(res, "binance")
    days = ctx.market()["date"].dt.strftime("%Y-%m-%d").tolist() if ctx.tables() else []
    ctx.expect(
        days == [f"2021-01-{d:02d}" for d in range(1, 11)], f"two whole pages kept (got {len(days)} rows)"
    )


# ---- locks
@contextlib.contextmanager
def holding_ingest_lock(ctx: Ctx, source: str):
    from kallos.data.locks import ingest_lock

    store = Store(ctx.url)
    try:
        with ingest_lock(store, source):
            yield
    finally:
        store.dispose()


@case("csv_import_while_another_ingest_holds_the_lock")
def _(ctx: Ctx) -> None:
    before = ctx.seed()
    f = write_cg(ctx.tmp / "in" / "bbb-usd-max.csv")
    with holding_ingest_lock(ctx, "coingecko"):
        res = ctx.kallos("ingest", "--source", "coingecko", "--path", f, "--lock-timeout", "0.5")
    ctx.expect_error(res, "another ingest of 'coingecko' holds", "waited 0.5 s")
    ctx.expect_market_unchanged(before)


@case("live_ingest_while_another_ingest_holds_the_lock")
def _(ctx: Ctx) -> None:
    ctx.seed()
    with holding_ingest_lock(ctx, "binance"):
        res = live(ctx, "--start", "2021-01-01", "--end", "2021-01-03", "--lock-timeout", "0.5")
    ctx.expect_error(res, "another ingest of 'binance' holds")


@case("sqlite_exclusively_locked_by_another_process", backends=("sqlite",))
def _(ctx: Ctx) -> None:
    before = ctx.seed()
    holder = sqlite3.connect(ctx.db_path(), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        res = ctx.kallos(
            "ingest", "--source", "coingecko", "--path", write_cg(ctx.tmp / "in" / "bbb-usd-max.csv")
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    ctx.expect_error(res, re.escape(str(ctx.db_path())), "locked", "wait for it to finish")
    ctx.expect_market_unchanged(before)


# ---- database URLs and files
def url_case(name: str, url: str, *patterns: str):
    @case(name, backends=("none",))
    def run(ctx: Ctx) -> None:
        res = ctx.kallos("db", "current", "--database-url", url)
        ctx.expect_error(res, *patterns)
        ctx.expect(not any(ctx.tmp.iterdir()), "nothing created")

    return run


url_case("url_not_a_url", "not-a-url", "not a URL", "sqlite:///")
url_case("url_mysql", "mysql://user@localhost/kallos", "mysql is not supported", "PostgreSQL")
url_case("url_sqlite_two_slashes", "sqlite://relative.db", "sqlite:///relative.db")
url_case("url_missing_driver", "postgresql+psycopg2://postgres@127.0.0.1/test", "psycopg2", "not available")
url_case(
    "url_postgresql_unreachable", "postgresql://postgres@127.0.0.1:1/test", "127.0.0.1:1", "pg_ctlcluster"
)
url_case(
    "url_postgresql_missing_database",
    PG_BASE.rsplit("/", 1)[0] + "/kallos_no_such_db",
    "kallos_no_such_db",
    "does not exist",
    "createdb",
)
url_case(
    "url_postgresql_unknown_role",
    "postgresql://no_such_role@127.0.0.1:5432/test",
    "no_such_role",
    "user name",
)
url_case("url_password_never_shown", "postgresql://postgres:s3cr3t@127.0.0.1:1/test", r"\*\*\*")


@case("url_password_never_shown_anywhere", backends=("none",))
def _(ctx: Ctx) -> None:
    res = ctx.kallos("db", "current", "--database-url", "postgresql://postgres:s3cr3t@127.0.0.1:1/test")
    ctx.expect("s3cr3t" not in res.output, "password not printed")


@case("sqlite_parent_is_a_file", backends=("none",))
def _(ctx: Ctx) -> None:
    write(ctx.tmp / "plain", "x")
    res = ctx.kallos(
        "ingest",
        "--source",
        "coingecko",
        "--path",
        write_cg(ctx.tmp / "in" / "abc-usd-max.csv"),
        "--database-url",
        f"sqlite:///{ctx.tmp / 'plain' / 'k.db'}",
    )
    ctx.expect_error(res, "plain is a file, not a directory")


@case("sqlite_path_is_a_directory", backends=("none",))
def _(ctx: Ctx) -> None:
    (ctx.tmp / "k.db").mkdir()
    res = ctx.kallos("db", "upgrade", "--database-url", f"sqlite:///{ctx.tmp / 'k.db'}")
    ctx.expect_error(res, "k.db", "directory")


@case("sqlite_file_is_not_a_database", backends=("none",))
def _(ctx: Ctx) -> None:
    write(ctx.tmp / "k.db", b"this is not a database, it is a shopping list\n" * 100)
    res = ctx.kallos("db", "upgrade", "--database-url", f"sqlite:///{ctx.tmp / 'k.db'}")
    ctx.expect_error(res, "k.db", "not a database")


@case("db_upgrade_unknown_revision")
def _(ctx: Ctx) -> None:
    res = ctx.kallos("db", "upgrade", "--revision", "9999")
    ctx.expect_error(res, "9999")
    ctx.expect_no_new_database()


@case("db_downgrade_unknown_revision")
def _(ctx: Ctx) -> None:
    ctx.seed()
    res = ctx.kallos("db", "downgrade", "9999")
    ctx.expect_error(res, "9999")


@case("db_unversioned_unknown_layout")
def _(ctx: Ctx) -> None:
    before = ctx.seed()
    store = Store(ctx.url)
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE kallos_alembic_version"))
    store.dispose()
    res = ctx.kallos("db", "upgrade")
    ctx.expect_error(res, "no revision describes", "new database")
    ctx.expect(ctx.tables() >= {"daily_market_data"} and len(ctx.market()) == len(before), "nothing dropped")


@case("db_current_creates_nothing")
def _(ctx: Ctx) -> None:
    res = ctx.kallos("db", "current")
    ctx.expect_ok(res, "empty")
    ctx.expect_no_new_database()


@case("models_list_creates_nothing")
def _(ctx: Ctx) -> None:
    res = ctx.kallos("models", "list", "--out", ctx.tmp / "out")
    ctx.expect_ok(res, "0 models")
    ctx.expect_no_new_database()


# ---- study configuration (no store is reached)
def config_case(name: str, toml: str | bytes | None, *patterns: str, args: tuple[str, ...] = ()):
    @case(name, backends=("none",))
    def run(ctx: Ctx) -> None:
        argv = ["run", "--out", str(ctx.tmp / "out"), *args]
        if toml is not None:
            argv += ["--config", str(write(ctx.tmp / "study.toml", toml))]
        res = ctx.kallos(*argv)
        ctx.expect_error(res, *patterns)
        ctx.expect(not (ctx.tmp / "out").exists(), "no output directory")

    return run


config_case(
    "config_unknown_key", "[backtest]\ncosts_bps = 5\n", "backtest.costs_bps: unknown key", "study.toml"
)
config_case("config_invalid_toml", "[universe\ntop_n = 3\n", "not valid TOML", "study.toml")
config_case("config_not_utf8", "seed = 7\n# caf\xe9\n".encode("latin-1"), "study.toml", "line 2", "UTF-8")
config_case("config_wrong_type", '[universe]\ntop_n = "five"\n', "universe.top_n")
config_case("config_out_of_range", "[backtest]\ncost_bps = -1\n", "backtest.cost_bps")
config_case(
    "config_end_before_start",
    "[backtest]\nstart = 2023-01-01\nend = 2022-01-01\n",
    "backtest.end .* must be after",
)
config_case("config_unknown_objective", '[portfolio]\nobjectives = ["max_sharp"]\n', "max_sharp")
config_case(
    "config_unknown_forecaster",
    '[forecast]\nforecasters = ["tft"]\n',
    r"forecast\.forecasters: unknown \[.tft.\]; choose from",
)


@case("config_cross_field_without_root_prefix", backends=("none",))
def _(ctx: Ctx) -> None:
    res = ctx.kallos("run", "--out", ctx.tmp / "out", "--set", "portfolio.max_weight=0.1")
    ctx.expect_error(res, r"portfolio\.max_weight=0\.1 x universe\.top_n=5 < 1: no fully invested portfolio")
    ctx.expect(
        "<root>" not in res.output and "Value error" not in res.output, "no '<root>: Value error,' prefix"
    )


config_case(
    "set_below_a_value",
    None,
    r"backtest\.cost_bps is a value, not a table",
    args=("--set", "backtest.cost_bps.x=1"),
)
config_case("set_without_equals", None, "expected KEY=VALUE", args=("--set", "seed"))
config_case("export_unknown_format", None, "--export", "pdf", args=("--export", "pdf"))
config_case(
    "config_file_missing", None, "config file not found", args=("--config", "/nonexistent/study.toml")
)


# ---- outputs and the study's own failures
@case("run_out_is_read_only")
def _(ctx: Ctx) -> None:
    store = Store(ctx.url)
    from kallos.data import ingest_data_dir

    ingest_data_dir(store, mini_data_dir(ctx.tmp / "data"))
    store.dispose()
    out = ctx.tmp / "ro_out"
    cfg = write(ctx.tmp / "study.toml", MINI_STUDY)
    with read_only(out):
        res = ctx.kallos("run", "--config", cfg, "--out", out)
    ctx.expect_error(res, "ro_out", "choose a writable --out")
    ctx.expect(
        "Optimising" not in res.output and "Backtesting" not in res.output, "failed before the first stage"
    )


@case("run_out_is_a_file")
def _(ctx: Ctx) -> None:
    out = write(ctx.tmp / "out_file", "x")
    res = ctx.kallos(
        "run",
        "--config",
        write(ctx.tmp / "study.toml", MINI_STUDY),
        "--out",
        out,
        "--data-dir",
        mini_data_dir(ctx.tmp / "data"),
    )
    ctx.expect_error(res, "out_file", "not a directory")
    ctx.expect_no_new_database()


@case("run_missing_data_directory")
def _(ctx: Ctx) -> None:
    res = ctx.kallos("run", "--out", ctx.tmp / "out", "--data-dir", ctx.tmp / "no_data")
    ctx.expect_error(res, "no_data", "does not exist")
    ctx.expect(not (ctx.tmp / "out").exists(), "no output directory")
    ctx.expect_no_new_database()


@case("run_empty_store_without_data_directory")
def _(ctx: Ctx) -> None:
    res = ctx.kallos("run", "--out", ctx.tmp / "out", env={"KALLOS_DATA_DIR": ""})
    ctx.expect_error(res, "kallos ingest --source binance", "no API key", "--data-dir")
    ctx.expect("../shared/data" not in res.output, "no development path in the message")
    ctx.expect(not (ctx.tmp / "out").exists(), "no output directory")
    ctx.expect_no_new_database()


@case("run_malformed_file_in_the_data_directory")
def _(ctx: Ctx) -> None:
    data = mini_data_dir(ctx.tmp / "data", days=60)
    write(data / "coingecko_daily_top50" / "original" / "zzz-usd-max.csv", CG_HEADER + "11/04/2020,1,5,5\n")
    res = ctx.kallos("run", "--out", ctx.tmp / "out", "--data-dir", data)
    ctx.expect_error(res, "zzz-usd-max.csv", "row 2")
    ctx.expect(not (ctx.tmp / "out").exists(), "no output directory")
    ctx.expect_no_new_database()


@case("run_data_end_before_the_test_period")
def _(ctx: Ctx) -> None:
    ctx.seed(days=60)
    before, optuna_before = ctx.tables(), _optuna_tables(ctx)
    res = ctx.kallos("run", "--config", write(ctx.tmp / "study.toml", MINI_STUDY), "--out", ctx.tmp / "out")
    ctx.expect_error(res, "data end", "before")
    ctx.expect(ctx.tables() == before, f"no new table (new: {sorted(ctx.tables() - before)[:3]})")
    ctx.expect(_optuna_tables(ctx) == optuna_before, "no Optuna table created")


def _optuna_tables(ctx: Ctx) -> set[str]:
    """Optuna's tables where Kallos would put them: the SQLite file, or PostgreSQL's schema ``optuna``."""
    if ctx.backend == "sqlite":
        return {t for t in ctx.tables() if t in ("studies", "trials", "version_info")}
    engine = sa.create_engine(_sqlalchemy(PG_BASE))
    try:
        with engine.connect() as conn:
            return (
                set(sa.inspect(conn).get_table_names(schema="optuna"))
                if sa.inspect(conn).has_schema("optuna")
                else set()
            )
    finally:
        engine.dispose()


@case("data_check_empty_store")
def _(ctx: Ctx) -> None:
    res = ctx.kallos("data", "check", "--out", ctx.tmp / "out", env={"KALLOS_DATA_DIR": ""})
    ctx.expect_error(res, "no market data", "kallos ingest")
    ctx.expect_no_new_database()


@case("data_check_flags_an_absurd_price")
def _(ctx: Ctx) -> None:
    ctx.seed(days=40)
    store = Store(ctx.url)
    rows = pd.DataFrame(
        {
            "coin_id": ["aaa"],
            "date": [pd.Timestamp("2021-01-10")],
            "source": ["coingecko"],
            "close": [1e300],
            "market_cap": [np.inf],
        }
    )
    store.upsert(s.daily_market_data, rows)  # stored behind the importers' back (an older import)
    store.dispose()
    res = ctx.kallos("data", "check", "--out", ctx.tmp / "out")
    ctx.expect(res.exit_code == 1, f"exit 1: a rule over its limit (got {res.exit_code})")
    ctx.expect("implausible_value" in res.output and "EXCEEDED" in res.output, "implausible value flagged")


@case("data_check_json_location_unwritable")
def _(ctx: Ctx) -> None:
    ctx.seed(days=40)
    write(ctx.tmp / "blocker", "x")
    res = ctx.kallos("data", "check", "--json", ctx.tmp / "blocker" / "check.json")
    ctx.expect_error(res, "blocker")


@case("data_check_bad_limit")
def _(ctx: Ctx) -> None:
    res = ctx.kallos("data", "check", "--max-findings", "gaps=1")
    ctx.expect_error(res, "expected RULE=N")
    ctx.expect_no_new_database()


@case("tune_on_an_empty_store")
def _(ctx: Ctx) -> None:
    res = ctx.kallos("tune", "--coin", "btc", "--fold", "2023Q1", "--out", ctx.tmp / "out")
    ctx.expect_error(res, "no market data", "kallos ingest")
    ctx.expect_no_new_database()


# ---- kill -9 during the first migration of a new database
KILL_POINTS = (0.0, 0.08, 0.16, 0.25, 0.33, 0.42, 0.5, 0.58, 0.67, 0.75, 0.85, 0.95)
_STATEMENTS: dict[str, int] = {}


def _migrate_and_die(url: str, schema: str | None, kill_after: int, counter) -> None:
    """Child process: migrate a new database, SIGKILL itself right after statement ``kill_after``."""
    store = Store(url, schema, migrate=False)

    @sa.event.listens_for(store.engine, "after_cursor_execute")
    def _count(*args) -> None:
        counter.value += 1
        if counter.value == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    store.migrate()
    os._exit(0)


def _run_child(ctx: Ctx, kill_after: int) -> tuple[int, int]:
    fork = mp.get_context("fork")
    counter = fork.Value("i", 0)
    url = ctx.url if ctx.backend == "sqlite" else PG_BASE
    child = fork.Process(target=_migrate_and_die, args=(url, ctx.schema, kill_after, counter))
    child.start()
    child.join(60)
    return child.exitcode, counter.value


def _statements(ctx: Ctx) -> int:
    """How many statements a whole first migration executes on this backend (measured once)."""
    if ctx.backend not in _STATEMENTS:
        probe = Ctx(ctx.tmp / "probe", ctx.backend, None, None, "probe")
        probe.tmp.mkdir()
        if ctx.backend == "sqlite":
            probe.url = f"sqlite:///{probe.tmp / 'k.db'}"
        else:
            probe.schema = f"t_{uuid4().hex[:8]}"
        try:
            _STATEMENTS[ctx.backend] = _run_child(probe, 10**9)[1]
        finally:
            if probe.schema:
                _drop_pg_schema(probe.schema)
    return _STATEMENTS[ctx.backend]


def kill_case(fraction: float):
    @case(f"kill_9_in_first_migration_at_{round(fraction * 100):02d}pct")
    def run(ctx: Ctx) -> None:
        n = _statements(ctx)
        k = max(1, round(fraction * n))
        code, done = _run_child(ctx, k)
        ctx.expect(code == -signal.SIGKILL and done == k, f"child killed after statement {k} of {n}")
        left = ctx.tables() & (KALLOS_TABLES | {"kallos_alembic_version"})
        whole = KALLOS_TABLES | {"kallos_alembic_version"}
        ctx.expect(
            left in (set(), whole), f"schema untouched or complete after the kill ({len(left)} tables)"
        )
        schema_args = ("--schema", ctx.schema) if ctx.schema else ()
        res = ctx.kallos("db", "upgrade", *schema_args, db=False, env={"KALLOS_DATABASE_URL": _kill_url(ctx)})
        ctx.expect(res.exit_code == 0, f"db upgrade after the kill exits 0 (got {res.exit_code})")
        ctx.expect(ctx.tables() >= whole, "every table exists afterwards")
        f = write_cg(ctx.tmp / "in" / "abc-usd-max.csv")
        res = ctx.kallos(
            "ingest",
            "--source",
            "coingecko",
            "--path",
            f,
            db=False,
            env={"KALLOS_DATABASE_URL": _kill_url(ctx, search_path=True)},
        )
        ctx.expect(res.exit_code == 0, f"an import afterwards exits 0 (got {res.exit_code})")

    return run


def _kill_url(ctx: Ctx, search_path: bool = False) -> str:
    if ctx.backend == "sqlite":
        return ctx.url
    return ctx.url if search_path else PG_BASE


for _fraction in KILL_POINTS:
    kill_case(_fraction)


# ------------------------------------------------------------------ the test
def _drop_pg_schema(name: str) -> None:
    engine = sa.create_engine(_sqlalchemy(PG_BASE))
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}_optuna" CASCADE'))
    engine.dispose()


def _params():
    for name, (_, backends) in CASES.items():
        for backend in backends:
            marks = [pytest.mark.postgres] if backend == "postgresql" else []
            label = f"{name}[{backend}]" if backend != "none" else name
            yield pytest.param((name, backend), id=label, marks=marks)


@pytest.fixture
def ctx(request, tmp_path, monkeypatch, data_dir):
    name, backend = request.param
    monkeypatch.delenv("KALLOS_DATABASE_URL", raising=False)
    monkeypatch.delenv("KALLOS_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'db' / 'k.db'}"
    elif backend == "postgresql":
        schema = f"t_{uuid4().hex[:8]}"
        engine = sa.create_engine(_sqlalchemy(PG_BASE))
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
        url = f"{PG_BASE}?options=-csearch_path%3D{schema}"
    else:
        url = None
    work = tmp_path / "case"
    work.mkdir()
    yield Ctx(work, backend, url, schema, name, data_dir)
    if schema:
        _drop_pg_schema(schema)


@pytest.mark.parametrize("ctx", list(_params()), indirect=True)
def test_fault(ctx: Ctx) -> None:
    fn, _ = CASES[ctx.case]
    try:
        fn(ctx)
    except Exception as err:  # a case that crashes (old code) is recorded, then fails
        ctx.failures.append(f"case raised {type(err).__name__}: {str(err)[:200]}")
    finally:
        record = os.environ.get("KALLOS_CORPUS_RECORD")
        if record:
            with open(record, "a") as fh:
                fh.write(
                    json.dumps(
                        {
                            "case": ctx.case,
                            "backend": ctx.backend,
                            "outcomes": ctx.outcomes,
                            "failures": ctx.failures,
                        }
                    )
                    + "\n"
                )
    assert not ctx.failures, f"{ctx.case}: {ctx.failures}; outcomes: {ctx.outcomes}"


def test_the_corpus_is_large_and_covers_both_backends() -> None:
    params = list(_params())
    assert len(CASES) >= 60 and len(params) >= 120
    assert sum(1 for p in params if p.values[0][1] == "postgresql") >= 50
