"""Point-in-time monthly universe and the capped market-cap benchmark weights.

The universe held during month ``m+1`` is chosen at the close of the last day of month
``m`` (the selection date) from what was known then. A coin is eligible when it is in the
cleaned panel (non-crypto categories are already excluded), has a known close and market
cap on the selection date, and has at least ``min_history_days`` days of known closes up
to it. Two selection methods (:data:`UNIVERSE_METHODS`, picked by ``universe.method``):

``market_cap_daily``
    the top ``top_n`` eligible coins by the panel's market cap on the selection date
    (per-field source precedence: :data:`kallos.data.panel.FIELD_PRECEDENCE`).
``cmc_snapshots``
    survivorship-free: walk the latest CoinMarketCap top-200 snapshot dated at or before
    the selection date (at most :data:`~kallos.data.panel.SNAPSHOT_MAX_AGE_DAYS` old) in
    CMC rank order and keep the first ``top_n`` eligible coins. Coins that later left the
    top 50 (MATIC, ATOM, ETC, ...) are members in the months they ranked, provided the
    panel holds their prices (Binance); coins without Kallos prices (e.g. LUNA) and
    excluded categories (stablecoins, ...) are passed over. Later snapshots are never read.

Both return :data:`UNIVERSE_COLUMNS`; ``rank`` is the rank within the universe (1 = largest),
``mcap_source`` says how the market cap was obtained and ``in_coingecko`` whether the
coin is in the CoinGecko file at all (False = it enters through CMC and Binance only).

**Market caps are cross-checked against CoinMarketCap** (:func:`cmc_market_cap_check`,
``universe.cmc_check``): on each selection date, every eligible coin's market cap on the date of
the latest CMC snapshot is compared with the snapshot's. Where they disagree by more than
``universe.cmc_max_disagreement`` (``max(a/b, b/a) - 1``, 50% by default), the coin is ranked
and weighted by ``close × CMC circulating supply`` instead (``"replace"``), or only reported
(``"flag"``). CoinGecko's OKB market cap before April 2023, about 4× CoinMarketCap's, is such a
case. Both caps are known at the selection date: the snapshot is never later than it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from kallos.config import UniverseConfig
from kallos.data.panel import SNAPSHOT_MAX_AGE_DAYS, MarketPanel, snapshot_on
from kallos.exceptions import DataValidationError

__all__ = [
    "CMC_CHECK_COLUMNS",
    "UNIVERSE_COLUMNS",
    "UNIVERSE_METHODS",
    "build_universe",
    "capped_weights",
    "cmc_market_cap_check",
    "cmc_snapshot_universe",
    "month_starts",
    "monthly_universe",
    "universe_on",
    "universe_summary",
]

UNIVERSE_COLUMNS = [
    "month",
    "selection_date",
    "coin_id",
    "rank",
    "market_cap",
    "mcap_source",
    "in_coingecko",
    "cmc_rank",
    "snapshot_date",
]


def month_starts(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """First day of every month that intersects ``[start, end]``."""
    first = pd.Timestamp(start).to_period("M").to_timestamp()
    return pd.date_range(first, pd.Timestamp(end), freq="MS")


def _selection_date(panel: MarketPanel, month: pd.Timestamp) -> pd.Timestamp:
    sel = pd.Timestamp(month) - pd.Timedelta(days=1)
    if sel not in panel.close.index:
        raise DataValidationError(
            f"universe for {month:%Y-%m} needs data on {sel.date()}, outside the panel "
            f"{panel.dates[0].date()}..{panel.dates[-1].date()}"
        )
    return sel


def _eligible(
    panel: MarketPanel, history: pd.DataFrame, sel: pd.Timestamp, min_history_days: int
) -> pd.Series:
    """Coins with a known close and positive market cap on ``sel`` and enough history."""
    mcap = panel.market_cap.loc[sel]
    ok = mcap.notna() & (mcap > 0) & panel.close.loc[sel].notna()
    return ok & (history.loc[sel] >= min_history_days)


CMC_CHECK_COLUMNS = [
    "month",
    "selection_date",
    "coin_id",
    "snapshot_date",
    "market_cap",
    "cmc_market_cap",
    "disagreement",
    "market_cap_used",
    "action",
]
"""Rows of :func:`cmc_market_cap_check`: one per (month, eligible coin) whose market cap disagrees."""


def cmc_market_cap_check(panel: MarketPanel, months: pd.DatetimeIndex, cfg: UniverseConfig) -> pd.DataFrame:
    """Eligible coins whose market cap disagrees with CoinMarketCap's, per selection date.

    For the selection date of each month, the latest CMC snapshot at or before it is found; each
    eligible coin's panel market cap on the snapshot date is compared with the snapshot's, and a
    coin whose disagreement ``max(a/b, b/a) - 1`` exceeds ``cfg.cmc_max_disagreement`` is listed.
    ``market_cap_used`` is what the universe ranks and weights it by: ``close × CMC circulating
    supply`` on the selection date when ``cfg.cmc_check == "replace"``, else the panel's cap.

    Returns
    -------
    DataFrame with :data:`CMC_CHECK_COLUMNS` (empty when the check is off or no snapshot is loaded).
    """
    snaps = panel.snapshots
    if cfg.cmc_check == "off" or snaps is None or snaps.empty:
        return pd.DataFrame(columns=CMC_CHECK_COLUMNS)
    history = panel.history_days()
    by_date = {d: g.set_index("coin_id") for d, g in snaps[snaps["coin_id"].notna()].groupby("snapshot_date")}
    rows = []
    for month in months:
        sel = _selection_date(panel, month)
        snap = snapshot_on(snaps, sel)
        if snap is None or snap not in by_date or snap not in panel.market_cap.index:
            continue
        listed = by_date[snap]
        eligible = _eligible(panel, history, sel, cfg.min_history_days)
        for coin in eligible.index[eligible.to_numpy()]:
            if coin not in listed.index:
                continue
            ours = float(panel.market_cap.at[snap, coin])
            theirs = float(listed.at[coin, "market_cap"])
            if not (ours > 0 and theirs > 0):
                continue
            disagreement = max(ours / theirs, theirs / ours) - 1.0
            if disagreement <= cfg.cmc_max_disagreement:
                continue
            supply = float(listed.at[coin, "circulating_supply"])
            replace = cfg.cmc_check == "replace" and supply > 0
            used = (
                float(panel.close.at[sel, coin]) * supply
                if replace
                else float(panel.market_cap.at[sel, coin])
            )
            action = (
                f"ranked by close × CMC circulating supply (snapshot {snap.date()})"
                if replace
                else "flagged only (universe.cmc_check = 'flag')"
            )
            rows.append((pd.Timestamp(month), sel, coin, snap, ours, theirs, disagreement, used, action))
    return pd.DataFrame(rows, columns=CMC_CHECK_COLUMNS)


def _corrected_caps(checks: pd.DataFrame, month: pd.Timestamp) -> dict[str, tuple[float, str]]:
    """coin -> (market cap to use, source text) for the replaced coins of ``month``."""
    hit = checks[(checks["month"] == month) & checks["action"].str.startswith("ranked")]
    return {
        r.coin_id: (
            float(r.market_cap_used),
            f"close × cmc circulating_supply (snapshot {pd.Timestamp(r.snapshot_date).date()}; "
            f"panel market_cap disagreed by {r.disagreement:.0%})",
        )
        for r in hit.itertuples(index=False)
    }


def _row(panel: MarketPanel, month, sel, coin, rank, cmc_rank=np.nan, snap=pd.NaT, corrected=None) -> tuple:
    cap, source = (corrected or {}).get(
        coin, (float(panel.market_cap.at[sel, coin]), panel.market_cap_origin(coin, sel))
    )
    return (
        pd.Timestamp(month),
        sel,
        coin,
        rank,
        cap,
        source,
        panel.in_source(coin, "coingecko"),
        cmc_rank,
        snap,
    )


def monthly_universe(
    panel: MarketPanel,
    months: pd.DatetimeIndex,
    top_n: int,
    min_history_days: int,
    checks: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``market_cap_daily``: top-``top_n`` eligible coins by market cap, selected the day before each month.

    Parameters
    ----------
    panel : cleaned panel.
    months : first day of each month to select for.
    top_n : number of coins per month.
    min_history_days : days of known closes a coin needs at the selection date.
    checks : :func:`cmc_market_cap_check` rows; replaced market caps rank and weight those coins.

    Returns
    -------
    DataFrame with :data:`UNIVERSE_COLUMNS`, one row per month and coin, ``rank`` 1 = largest
    (``cmc_rank`` and ``snapshot_date`` empty).

    Raises
    ------
    DataValidationError
        If a selection date lies outside the panel or no coin is eligible.
    """
    history = panel.history_days()
    rows = []
    for month in months:
        sel = _selection_date(panel, month)
        corrected = _corrected_caps(checks, month) if checks is not None and len(checks) else {}
        mcap = panel.market_cap.loc[sel].copy()
        for coin, (cap, _) in corrected.items():
            mcap[coin] = cap
        ranked = mcap[_eligible(panel, history, sel, min_history_days)]
        ranked = ranked.sort_values(ascending=False, kind="stable").head(top_n)
        if ranked.empty:
            raise DataValidationError(f"no eligible coin for {month:%Y-%m} (selection {sel.date()})")
        rows.extend(
            _row(panel, month, sel, coin, rank, corrected=corrected)
            for rank, coin in enumerate(ranked.index, start=1)
        )
    return pd.DataFrame(rows, columns=UNIVERSE_COLUMNS)


def cmc_snapshot_universe(
    panel: MarketPanel,
    months: pd.DatetimeIndex,
    top_n: int,
    min_history_days: int,
    checks: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``cmc_snapshots``: true historical top-``top_n`` membership from CoinMarketCap snapshots.

    For month ``m+1`` the selection date is the last day of month ``m``; the snapshot used
    is the latest one dated at or before it (see the module docstring). ``market_cap`` is
    the panel's market cap on the selection date (CoinGecko's, else Binance close × the
    snapshot's circulating supply; replaced by ``checks``, see :func:`cmc_market_cap_check`),
    ``cmc_rank`` the coin's rank in the snapshot.

    Raises
    ------
    DataValidationError
        If the panel holds no snapshots, no snapshot is recent enough for a month, a
        selection date lies outside the panel, or no coin is eligible.
    """
    snaps = panel.snapshots
    if snaps is None or snaps.empty:
        raise DataValidationError(
            "universe.method = 'cmc_snapshots' needs CoinMarketCap snapshots in the store: "
            "import them with `kallos ingest --source cmc --path <cmc_monthly_top200>`"
        )
    history = panel.history_days()
    by_date = {d: g for d, g in snaps.groupby("snapshot_date")}
    rows = []
    for month in months:
        sel = _selection_date(panel, month)
        snap = snapshot_on(snaps, sel)
        if snap is None:
            raise DataValidationError(
                f"universe for {month:%Y-%m}: no CoinMarketCap snapshot within the "
                f"{SNAPSHOT_MAX_AGE_DAYS} days up to {sel.date()} (snapshots cover "
                f"{snaps['snapshot_date'].min().date()}..{snaps['snapshot_date'].max().date()})"
            )
        eligible = _eligible(panel, history, sel, min_history_days)
        listed = by_date[snap].sort_values("rank")
        picked = [
            (coin, int(cmc_rank))
            for coin, cmc_rank in zip(listed["coin_id"], listed["rank"], strict=True)
            if coin is not None and coin in eligible.index and bool(eligible[coin])
        ][:top_n]
        if not picked:
            raise DataValidationError(
                f"no eligible coin for {month:%Y-%m} (selection {sel.date()}, snapshot {snap.date()})"
            )
        corrected = _corrected_caps(checks, month) if checks is not None and len(checks) else {}
        rows.extend(
            _row(panel, month, sel, coin, rank, cmc_rank, snap, corrected)
            for rank, (coin, cmc_rank) in enumerate(picked, start=1)
        )
    return pd.DataFrame(rows, columns=UNIVERSE_COLUMNS)


UniverseMethod = Callable[[MarketPanel, pd.DatetimeIndex, int, int, pd.DataFrame | None], pd.DataFrame]
UNIVERSE_METHODS: dict[str, UniverseMethod] = {
    "market_cap_daily": monthly_universe,
    "cmc_snapshots": cmc_snapshot_universe,
}


def build_universe(
    panel: MarketPanel,
    months: pd.DatetimeIndex,
    cfg: UniverseConfig,
    checks: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The monthly universe by ``cfg.method`` (a key of :data:`UNIVERSE_METHODS`).

    ``checks`` are the :func:`cmc_market_cap_check` rows for ``months`` (computed here when None).

    Raises
    ------
    DataValidationError
        As the chosen method does.
    """
    if checks is None:
        checks = cmc_market_cap_check(panel, months, cfg)
    return UNIVERSE_METHODS[cfg.method](panel, months, cfg.top_n, cfg.min_history_days, checks)


def universe_summary(
    universe: pd.DataFrame, method: str, top_n: int, reconciliation: pd.DataFrame, threshold: float
) -> dict:
    """The ``results["universe"]`` document (plain Python values; dates as Timestamps).

    Parameters
    ----------
    universe : :data:`UNIVERSE_COLUMNS` plus ``benchmark_weight``.
    reconciliation : :func:`kallos.data.reconcile.price_divergence` output.
    threshold : the divergence above which a coin-month is flagged.

    Returns
    -------
    ``{"method", "top_n", "mcap_sources": {coin_id: str}, "constituents": [...],
    "reconciliation": {"threshold", "flagged": [...]}}``; ``mcap_sources`` names each coin's
    market-cap sources across its months (snapshot dates dropped), joined by "; ".
    """
    base = universe["mcap_source"].str.replace(r" \(snapshot [0-9-]+\)$", "", regex=True)
    sources = {
        coin: "; ".join(dict.fromkeys(g.tolist())) for coin, g in base.groupby(universe["coin_id"], sort=True)
    }
    cols = ["month", "selection_date", "coin_id", "rank", "market_cap", "mcap_source", "in_coingecko"]
    cols += ["cmc_rank", "snapshot_date", "benchmark_weight"]
    frame = universe.reindex(columns=cols).sort_values(["month", "rank"])
    constituents = []
    for rec in frame.to_dict(orient="records"):
        rec["month"] = pd.Timestamp(rec["month"]).strftime("%Y-%m")
        rec["in_coingecko"] = bool(rec["in_coingecko"])
        rec["rank"] = int(rec["rank"])
        constituents.append(rec)
    flagged = reconciliation[reconciliation["flagged"]] if len(reconciliation) else reconciliation
    keep = ["coin_id", "month", "mean_abs_divergence", "max_abs_divergence", "n_days"]
    return {
        "method": method,
        "top_n": int(top_n),
        "mcap_sources": sources,
        "constituents": constituents,
        "reconciliation": {
            "threshold": float(threshold),
            "flagged": flagged.reindex(columns=keep).to_dict(orient="records"),
        },
    }


def universe_on(universe: pd.DataFrame, decision_date: pd.Timestamp) -> list[str]:
    """Coins investable by a decision at the close of ``decision_date``.

    The trade goes into ``decision_date + 1``, so it uses the universe of that day's month.
    """
    month = (pd.Timestamp(decision_date) + pd.Timedelta(days=1)).to_period("M").to_timestamp()
    coins = universe.loc[universe["month"] == month].sort_values("rank")["coin_id"]
    return list(coins)


def capped_weights(values: pd.Series, cap: float, tol: float = 1e-12) -> pd.Series:
    """Weights proportional to ``values`` with no weight above ``cap``.

    The excess over the cap is redistributed iteratively to the uncapped names in
    proportion to their values, until no weight exceeds the cap (as in capped index
    methodologies such as the MSCI Capped Indexes).

    Parameters
    ----------
    values : positive numbers (e.g. market caps), indexed by coin.
    cap : maximum weight, with ``cap * len(values) >= 1``.

    Raises
    ------
    ValueError
        If the cap cannot be met (``cap * n < 1``) or a value is not positive.
    """
    v = values.astype(float)
    if (v <= 0).any() or v.isna().any():
        raise ValueError(f"weights need positive values, got {v[(v <= 0) | v.isna()].to_dict()}")
    n = len(v)
    if cap * n < 1 - tol:
        raise ValueError(f"cap {cap} x {n} names < 1: the weights cannot sum to 1")
    w = v / v.sum()
    capped = pd.Series(False, index=v.index)
    for _ in range(n):
        over = (w > cap + tol) & ~capped
        if not over.any():
            break
        capped |= over
        free = ~capped
        remaining = 1.0 - cap * capped.sum()
        w = pd.Series(np.where(capped, cap, 0.0), index=v.index)
        if free.any():
            w[free] = remaining * v[free] / v[free].sum()
    return w
