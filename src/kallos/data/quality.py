"""Data-quality rules. Each rule returns what it changed as :class:`QualityEvent` records.

Rules, in the order :func:`clean_close` applies them to one coin's daily close:

1. ``launch_artefact``: a jump beyond the return cap within the first
   ``launch_artefact_days`` of a coin's history marks the rows before it as
   implausible pre-listing prices (e.g. BNB in CoinGecko before 2017-10-30 trades at
   0.04-0.24 USD on a few USD of volume, then jumps +2,530%). Those rows are dropped.
2. ``gap``: missing calendar days. Gaps of up to ``max_ffill_days`` are filled forward
   (a zero return); longer gaps fill their first ``max_ffill_days`` days and leave the
   rest unknown. The fill of day ``t`` depends only on days before ``t``.
3. ``stale_run``: ``stale_run_days`` or more identical observed closes in a row are
   reported (not changed).
4. ``return_cap``: daily simple returns above ``max_daily_return`` (+500%) or below the
   symmetric log move ``1/(1+cap) - 1`` (-83.3%) are capped, and the close from that day
   on is rescaled so prices and returns stay consistent.

Rows-level rules applied before the series are assembled: ``category`` (stablecoins,
gold tokens, tokenised funds are excluded) and ``known_bad_window`` (configured stretches).

Every rule except ``launch_artefact`` is causal: its effect on day ``t`` depends only on
data up to ``t``. ``launch_artefact`` looks ``launch_artefact_days`` ahead of a coin's
first row, so it can only affect a coin's first months.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import pandas as pd

from kallos.config import BadWindow, QualityConfig
from kallos.data.categories import resolve_category

__all__ = [
    "CleanSeries",
    "QualityEvent",
    "cap_returns",
    "clean_close",
    "detect_stale_runs",
    "drop_known_bad_windows",
    "drop_launch_artefact",
    "events_frame",
    "exclude_categories",
    "fill_gaps",
]

EVENT_COLUMNS = ["rule", "coin_id", "start", "end", "n_rows", "action", "detail"]


@dataclass(frozen=True)
class QualityEvent:
    """One thing a rule found or changed."""

    rule: str
    coin_id: str
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    n_rows: int
    action: str  # dropped | filled | capped | flagged | excluded
    detail: str


def events_frame(events: Iterable[QualityEvent]) -> pd.DataFrame:
    rows = [asdict(e) for e in events]
    return pd.DataFrame(rows, columns=EVENT_COLUMNS)


@dataclass(frozen=True)
class CleanSeries:
    """A coin's cleaned daily close.

    Attributes
    ----------
    close : daily close on a complete calendar index, NaN where unknown.
    returns : daily simple returns after capping (NaN across unfilled gaps).
    adjustment : factor applied to raw prices by return capping (1 where untouched).
    events : what was changed.
    """

    close: pd.Series
    returns: pd.Series
    adjustment: pd.Series
    events: tuple[QualityEvent, ...]


def _d(ts) -> str:
    return pd.Timestamp(ts).date().isoformat()


def exclude_categories(
    market: pd.DataFrame, categories: pd.Series, excluded: Iterable[str]
) -> tuple[pd.DataFrame, list[QualityEvent]]:
    """Drop every row of coins whose category is in ``excluded``.

    Parameters
    ----------
    market : long rows with ``coin_id`` and ``date``.
    categories : category per ``coin_id``; coins absent from it count as ``crypto``. A coin stored
        as ``crypto`` whose id is a known wrapped, staking, stable or gold token
        (:func:`kallos.data.categories.resolve_category`) takes that category.
    """
    excluded = set(excluded)
    stored = categories.to_dict()
    effective = {
        coin: resolve_category(coin, text if isinstance(text := stored.get(coin), str) else None)
        for coin in market["coin_id"].unique()
    }
    cat = market["coin_id"].map(effective)
    mask = cat.isin(excluded)
    events = [
        QualityEvent(
            "category",
            coin,
            g["date"].min(),
            g["date"].max(),
            len(g),
            "excluded",
            f"category {cat[g.index[0]]!r} is not a risky crypto asset",
        )
        for coin, g in market[mask].groupby("coin_id")
    ]
    return market[~mask], events


def drop_known_bad_windows(
    market: pd.DataFrame, windows: Iterable[BadWindow]
) -> tuple[pd.DataFrame, list[QualityEvent]]:
    """Drop rows inside configured known-bad windows (inclusive dates)."""
    events = []
    keep = pd.Series(True, index=market.index)
    for w in windows:
        m = market["coin_id"].eq(w.coin_id) & market["date"].le(pd.Timestamp(w.end))
        if w.start is not None:
            m &= market["date"].ge(pd.Timestamp(w.start))
        if w.source is not None:
            m &= market["source"].eq(w.source)
        if m.any():
            rows = market[m]
            events.append(
                QualityEvent(
                    "known_bad_window",
                    w.coin_id,
                    rows["date"].min(),
                    rows["date"].max(),
                    int(m.sum()),
                    "dropped",
                    w.reason,
                )
            )
        keep &= ~m
    return market[keep], events


def _caps(max_daily_return: float) -> tuple[float, float]:
    return 1.0 / (1.0 + max_daily_return) - 1.0, max_daily_return


def drop_launch_artefact(
    close: pd.Series, coin_id: str, max_daily_return: float, window_days: int
) -> tuple[pd.Series, list[QualityEvent]]:
    """Drop the rows before a beyond-cap jump in the first ``window_days`` of history.

    ``close`` is the observed close (sorted dates, no NaN). Returns the trimmed series.
    """
    if window_days <= 0 or len(close) < 2:
        return close, []
    lo, hi = _caps(max_daily_return)
    r = close.pct_change()
    early = r.index <= close.index[0] + pd.Timedelta(days=window_days)
    jumps = r[early & ((r > hi) | (r < lo))]
    if jumps.empty:
        return close, []
    jump_day = jumps.index[-1]
    dropped = close[close.index < jump_day]
    event = QualityEvent(
        "launch_artefact",
        coin_id,
        dropped.index[0],
        dropped.index[-1],
        len(dropped),
        "dropped",
        f"implausible prices before a {jumps.iloc[-1]:+.0%} jump on {_d(jump_day)} "
        f"(within {window_days} days of the first row)",
    )
    return close[close.index >= jump_day], [event]


def fill_gaps(
    series: pd.Series, coin_id: str, max_ffill_days: int, end: pd.Timestamp | None = None
) -> tuple[pd.Series, pd.Series, list[QualityEvent]]:
    """Reindex to every calendar day up to ``end`` and fill short gaps forward.

    ``end`` (default: the last observation) is the calendar's last day: a trailing gap is
    filled like any other, so whether day ``t`` is filled never depends on a later row.

    Returns the filled series, a boolean Series marking filled days, and events: one
    per gap, ``filled`` when fully filled, ``partly_filled`` otherwise.
    """
    last = series.index[-1] if end is None else max(pd.Timestamp(end), series.index[-1])
    full = pd.date_range(series.index[0], last, freq="D")
    s = series.reindex(full)
    missing = s.isna()
    filled = s.ffill(limit=max_ffill_days) if max_ffill_days else s
    was_filled = missing & filled.notna()
    events = []
    if missing.any():
        run_id = (missing != missing.shift()).cumsum()
        for _, run in missing[missing].groupby(run_id[missing]):
            n = len(run)
            n_filled = int(was_filled[run.index].sum())
            action = "filled" if n_filled == n else ("partly_filled" if n_filled else "flagged")
            events.append(
                QualityEvent(
                    "gap",
                    coin_id,
                    run.index[0],
                    run.index[-1],
                    n,
                    action,
                    f"{n} missing day(s); {n_filled} filled forward (limit {max_ffill_days}), "
                    f"{n - n_filled} left unknown",
                )
            )
    return filled, was_filled, events


def detect_stale_runs(observed: pd.Series, coin_id: str, min_run: int) -> list[QualityEvent]:
    """Report runs of ``min_run`` or more identical observed closes (nothing changes)."""
    s = observed.dropna()
    if len(s) < min_run:
        return []
    same = s.eq(s.shift())
    run_id = (~same).cumsum()
    sizes = run_id.map(run_id.value_counts())
    events = []
    for _, run in s[sizes >= min_run].groupby(run_id[sizes >= min_run]):
        events.append(
            QualityEvent(
                "stale_run",
                coin_id,
                run.index[0],
                run.index[-1],
                len(run),
                "flagged",
                f"{len(run)} identical closes in a row ({run.iloc[0]:.6g})",
            )
        )
    return events


def cap_returns(
    close: pd.Series, coin_id: str, max_daily_return: float
) -> tuple[pd.Series, pd.Series, pd.Series, list[QualityEvent]]:
    """Cap daily simple returns and rescale the close from each capped day on.

    Returns ``(close_adjusted, returns_capped, adjustment_factor, events)``.
    """
    lo, hi = _caps(max_daily_return)
    r = close.pct_change(fill_method=None)
    capped = r.clip(lower=lo, upper=hi)
    hit = (r != capped) & r.notna()
    events = [
        QualityEvent(
            "return_cap",
            coin_id,
            day,
            day,
            1,
            "capped",
            f"daily return {r[day]:+.1%} capped to {capped[day]:+.1%}",
        )
        for day in r.index[hit]
    ]
    step = pd.Series(1.0, index=close.index)
    step[hit] = (1 + capped[hit]) / (1 + r[hit])
    adjustment = step.cumprod()
    return close * adjustment, capped, adjustment, events


def clean_close(
    observed: pd.Series, coin_id: str, cfg: QualityConfig, end: pd.Timestamp | None = None
) -> CleanSeries:
    """Apply the series rules to one coin's observed close (see the module docstring).

    Parameters
    ----------
    observed : positive closes indexed by date (sorted, unique), no NaN.
    end : last day of the calendar (the panel's last day); default the last observation.
    """
    observed = observed.dropna().sort_index()
    trimmed, events = drop_launch_artefact(observed, coin_id, cfg.max_daily_return, cfg.launch_artefact_days)
    events += detect_stale_runs(trimmed, coin_id, cfg.stale_run_days)
    filled, _, gap_events = fill_gaps(trimmed, coin_id, cfg.max_ffill_days, end)
    events += gap_events
    close, returns, adjustment, cap_events = cap_returns(filled, coin_id, cfg.max_daily_return)
    events += cap_events
    returns = returns.where(close.notna() & close.shift().notna())
    return CleanSeries(
        close=close, returns=returns, adjustment=adjustment.where(close.notna()), events=tuple(events)
    )


def describe(events: pd.DataFrame) -> dict[str, int]:
    """Number of events per rule."""
    if events.empty:
        return {}
    return {str(k): int(v) for k, v in events.groupby("rule").size().items()}
