"""Incremental, idempotent, concurrency-safe ingestion from a live source.

For each coin the store's last close date for that source is read *inside* the ingest lock
(:func:`kallos.data.locks.ingest_lock`), and only the days after it up to ``end`` (at most
yesterday's close, UTC) are fetched. Every chunk the client yields (a CoinGecko window, a Binance
page) is written in its own transaction through :meth:`Store.upsert_many`, stamped with
``ingested_at``; a process killed mid-ingest therefore leaves whole chunks only, and the next run
resumes after the last stored day. Upserts are last-write-wins on (coin_id, date, source), so
overlaps never duplicate rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import pandas as pd
from sqlalchemy import func, select

from kallos.data import schema
from kallos.data.categories import default_category
from kallos.data.ingest import merge_coins
from kallos.data.live.errors import LiveSourceError
from kallos.data.locks import ingest_lock
from kallos.data.sources.base import COIN_COLUMNS
from kallos.data.store import Store
from kallos.exceptions import ConfigError

__all__ = ["LiveIngestReport", "LiveSource", "ingest_live", "last_dates", "stored_coins"]


class LiveSource(Protocol):
    """A live client: yields chunks of ``MARKET_COLUMNS`` rows for close dates in [start, end]."""

    source: ClassVar[str]

    def fetch_daily(self, coin_id: str, start: dt.date, end: dt.date) -> Iterator[pd.DataFrame]: ...

    def default_start(self, end: dt.date) -> dt.date: ...

    def latest_close(self, now: dt.datetime) -> dt.date: ...

    def close(self) -> None: ...


@dataclass
class LiveIngestReport:
    """What one live ingest did.

    Attributes
    ----------
    source : the live source.
    end : last close date asked for.
    ranges : coin -> (first, last) close date fetched; coins already up to date are absent.
    rows : coin -> rows upserted.
    chunks : transactions written.
    notes : one line per coin skipped or up to date.
    """

    source: str
    end: dt.date
    ranges: dict[str, tuple[dt.date, dt.date]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def last_dates(store: Store, source: str, coins: Sequence[str] | None = None) -> dict[str, dt.date]:
    """Last stored close date per coin for ``source`` (coins without rows are absent)."""
    t = schema.daily_market_data
    stmt = select(t.c.coin_id, func.max(t.c.date)).where(t.c.source == source).group_by(t.c.coin_id)
    if coins:
        stmt = stmt.where(t.c.coin_id.in_(list(coins)))
    with store.engine.connect() as conn:
        return {coin: _as_date(day) for coin, day in conn.execute(stmt).fetchall()}


def _as_date(value: object) -> dt.date:
    return (
        value
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime)
        else pd.Timestamp(value).date()
    )


def stored_coins(store: Store, source: str) -> list[str]:
    """Coins with at least one row from ``source``, sorted."""
    return sorted(last_dates(store, source))


def ingest_live(
    store: Store,
    client: LiveSource,
    coins: Sequence[str],
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    lock_timeout: float | None = None,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> LiveIngestReport:
    """Fetch the missing days of ``coins`` from ``client`` and upsert them chunk by chunk.

    Parameters
    ----------
    coins : Kallos coin ids.
    start : first close date for a coin the store has no rows of (default: the client's
        ``default_start``); for a coin with rows, fetching starts the day after its last row, or at
        ``start`` if that is later.
    end : last close date (default and maximum: the client's ``latest_close`` at ``clock()``, at most
        yesterday, UTC; the open day is never fetched).
    lock_timeout : seconds to wait for a concurrent ingest of the same source (None = forever).
    clock : current UTC time (injectable for tests).

    Raises
    ------
    LiveSourceError
        If the provider refuses or keeps failing; chunks already written stay (they are whole).
    StoreError
        If the lock times out or a write fails (that chunk is not stored).
    ConfigError
        If ``end`` is before ``start``, or ``start`` is after the last closed day.
    """
    if not coins:
        raise LiveSourceError(f"{client.source}: no coins to ingest; pass --coins")
    if start is not None and end is not None and end < start:
        raise ConfigError(f"{client.source}: end {end} is before start {start} (--end, --start); swap them")
    limit = client.latest_close(clock())
    end = min(end or limit, limit)
    if start is not None and start > end:
        raise ConfigError(
            f"{client.source}: start {start} (--start) is after {end}, the last closed UTC day; "
            "no such close exists yet"
        )
    report = LiveIngestReport(source=client.source, end=end)
    store.create_schema()
    with ingest_lock(store, client.source, timeout=lock_timeout):
        last = last_dates(store, client.source, coins)
        for coin in coins:
            first = last[coin] + dt.timedelta(days=1) if coin in last else client.default_start(end)
            if start is not None and (coin not in last or start > first):
                first = start
            if first > end:
                report.notes.append(f"{coin}: up to date (last {last.get(coin)})")
                continue
            report.ranges[coin] = (first, end)
            report.rows[coin] = 0
            coin_row = pd.DataFrame(
                [[coin, coin.upper(), None, default_category(coin), client.source]], columns=COIN_COLUMNS
            )
            for chunk in client.fetch_daily(coin, first, end):
                frames = {schema.daily_market_data: chunk.assign(ingested_at=clock())}
                if coin_row is not None:
                    frames[schema.coins] = merge_coins(store, coin_row)
                    coin_row = None
                report.rows[coin] += store.upsert_many(frames)[schema.daily_market_data.name]
                report.chunks += 1
            if report.rows[coin] == 0:
                report.notes.append(f"{coin}: {client.source} returned no rows for {first}..{end}")
    return report
