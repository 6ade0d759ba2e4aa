"""``kallos ingest``: bring market data into the store (provider CSV exports or live APIs)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated

import typer

from kallos.cli.common import DbOpt, OutOpt, console, fail, no_leftovers
from kallos.cli.progress import RichProgress
from kallos.data import DATA_DIR_ENV, Store, default_database_url, ingest, ingest_data_dir, resolve_data_dir
from kallos.data.sources import IMPORTERS
from kallos.exceptions import KallosError

LIVE_HELP = "coingecko and binance fetch missing days from the live API unless --path is given"


def register(app: typer.Typer) -> None:
    """Add the ``ingest`` command to ``app``."""
    app.command("ingest")(ingest_cmd)


def _parse_coins(value: str | None) -> tuple[list[str], dict[str, str]]:
    """``"btc,eth,foo=foo-api-id"`` -> (["btc", "eth", "foo"], {"foo": "foo-api-id"})."""
    coins, api_ids = [], {}
    for item in (value or "").split(","):
        item = item.strip().lower()
        if not item:
            continue
        coin, _, api_id = item.partition("=")
        coins.append(coin.strip())
        if api_id.strip():
            api_ids[coin.strip()] = api_id.strip()
    return coins, api_ids


def _parse_day(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise KallosError(f"{option} {value!r}: expected a date YYYY-MM-DD") from None


def ingest_cmd(
    source: Annotated[
        str,
        typer.Option(help=f"csv/all (a data directory), one of {sorted(IMPORTERS)}; {LIVE_HELP}."),
    ] = "all",
    path: Annotated[
        Path | None,
        typer.Option(
            help=f"File or directory of the source's exports (default: ${DATA_DIR_ENV} for csv/all)."
        ),
    ] = None,
    coins: Annotated[
        str | None,
        typer.Option(
            help="Live: comma-separated coin ids (coin=api-id for an unknown CoinGecko id) "
            "(default: coins already stored for the source, else btc,eth)."
        ),
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="Live: first close date (YYYY-MM-DD) for coins the store lacks.")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Live: last close date (default and maximum: yesterday, UTC).")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="Live: override the API base URL (e.g. a stub).")
    ] = None,
    calls_per_minute: Annotated[float, typer.Option(help="Live: client-side rate limit.")] = 30.0,
    timeout: Annotated[float, typer.Option(help="Live: per-request timeout, seconds.")] = 30.0,
    max_attempts: Annotated[int, typer.Option(help="Live: attempts per request.")] = 6,
    page_limit: Annotated[int, typer.Option(help="Live Binance: klines per page.")] = 1000,
    window_days: Annotated[int, typer.Option(help="Live CoinGecko: days per request.")] = 365,
    lock_timeout: Annotated[
        float | None,
        typer.Option(help="Seconds to wait for a concurrent ingest of the same source (default: forever)."),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="CSV: allow a file to change most of a coin's stored closes (refused otherwise: "
            "a mislabelled file, e.g. another coin's export).",
        ),
    ] = False,
    out: OutOpt = Path("out"),
    database_url: DbOpt = None,
) -> None:
    """Import provider exports, or fetch missing days from a live API (idempotent upserts).

    Every ingest holds a per-source lock (--lock-timeout). CSV imports are one transaction,
    validated first; live ingests write one transaction per fetched chunk, so an interrupted
    run leaves whole chunks and the next run completes it. A failed ingest into a new database
    leaves no database file behind.
    """
    url = database_url or default_database_url(out)
    live = source in ("coingecko", "binance") and path is None
    try:
        first, last = _parse_day(start, "--start"), _parse_day(end, "--end")
        if first and last and last < first:
            raise KallosError(f"--end {last} is before --start {first}; swap them")
        if source not in ("all", "csv", *IMPORTERS):
            raise KallosError(f"--source {source!r}: choose csv/all or one of {sorted(IMPORTERS)}")
        if not live and source not in ("all", "csv") and path is None:
            raise KallosError(f"--path is required with --source {source}")
        if source in ("all", "csv") and path is None and not os.environ.get(DATA_DIR_ENV):
            raise KallosError(
                f"--source {source} reads a data directory: pass --path DIR or set ${DATA_DIR_ENV}; "
                "without exports, `kallos ingest --source binance` fetches daily klines (no API key needed)"
            )
        with no_leftovers(database_url=url, keep_data=live):  # a live ingest keeps its whole chunks
            store = Store(url, migrate=False)  # the schema is made only once the input is valid
            if live:
                _live(store, source, coins, first, last, base_url, calls_per_minute, timeout, max_attempts,
                      page_limit, window_days, lock_timeout)  # fmt: skip
                return
            with RichProgress(console).stage(f"Importing {source}", total=None):
                if source in ("all", "csv"):
                    report = ingest_data_dir(
                        store, resolve_data_dir(path), replace=replace, lock_timeout=lock_timeout
                    )
                else:
                    report = ingest(store, source, path, replace=replace, lock_timeout=lock_timeout)
    except KallosError as err:
        raise fail(err) from None
    for table, n in report.rows.items():
        typer.echo(f"{table}: {n} rows upserted")
    typer.echo(f"{len(report.files)} file(s) read; {len(report.notes)} note(s)")
    for note in report.notes:
        typer.echo(f"  note: {note}")


def _live(
    store: Store,
    source: str,
    coins_opt: str | None,
    start: dt.date | None,
    end: dt.date | None,
    base_url: str | None,
    calls_per_minute: float,
    timeout: float,
    max_attempts: int,
    page_limit: int,
    window_days: int,
    lock_timeout: float | None,
) -> None:
    from kallos.data.live import (
        COINGECKO_IDS,
        DEFAULT_COINS,
        RetryPolicy,
        ingest_live,
        make_client,
        stored_coins,
    )

    coins, api_ids = _parse_coins(coins_opt)
    coins = (
        coins or (stored_coins(store, source) if not store.is_empty() else []) or list(DEFAULT_COINS[source])
    )
    policy = RetryPolicy(calls_per_minute=calls_per_minute, timeout_s=timeout, max_attempts=max_attempts)
    extra = (
        {"window_days": window_days, "coin_ids": {**COINGECKO_IDS, **api_ids}}
        if source == "coingecko"
        else {"page_limit": page_limit}
    )
    client = make_client(source, base_url=base_url, policy=policy, **extra)
    try:
        with RichProgress(console).stage(f"Fetching {source}", total=None):
            report = ingest_live(
                store,
                client,
                coins,
                start=start,
                end=end,
                lock_timeout=lock_timeout,
            )
    finally:
        client.close()
    for coin, (lo, hi) in report.ranges.items():
        typer.echo(f"{source} {coin}: {report.rows[coin]} rows upserted for {lo}..{hi}")
    typer.echo(f"daily_market_data: {report.total_rows} rows upserted in {report.chunks} chunk(s)")
    for note in report.notes:
        typer.echo(f"  note: {note}")


if __name__ == "__main__":  # ``python -m kallos.cli.ingest_cmd ...`` (light entry point for scripts)
    typer.run(ingest_cmd)
