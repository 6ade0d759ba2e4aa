"""``kallos data check``: data-quality findings over the raw rows of every source.

Each rule of :data:`CHECKS` looks at one coin's rows from one source and returns
:class:`Finding` records naming the coin, the source and the date(s):

``gap``
    missing calendar days inside a coin's span (:func:`kallos.data.quality.fill_gaps`).
``stale_run``
    ``quality.stale_run_days`` or more identical closes in a row
    (:func:`kallos.data.quality.detect_stale_runs`).
``return_cap``
    a daily simple return beyond the panel's caps, +``quality.max_daily_return`` or the
    symmetric log move below (:func:`kallos.data.quality.cap_returns`).
``robust_zscore``
    a daily log return whose robust z-score ``|r - median| / (1.4826 · MAD)`` over the
    coin's history exceeds ``z_threshold`` (default 10; the 1.4826 factor makes the MAD a
    consistent estimate of a normal standard deviation, Rousseeuw & Croux 1993).
``missing_market_cap``
    runs of days a market-cap source (CoinGecko) has a row but no market cap (zero in the
    export, stored as unknown).
``implausible_value``
    runs of days with a non-finite value, or one beyond :data:`PLAUSIBLE_MAX` (a price of
    1e300 USD): the importers refuse non-finite numbers, so these come from elsewhere (an
    older import, a hand-edited database) and would otherwise rank a coin first.
``source_divergence``
    coin-months whose mean ``|cg/bn - 1|`` exceeds ``divergence_threshold``
    (:func:`kallos.data.reconcile.price_divergence`).

Coverage per coin and source (first, last, rows, missing days) is reported beside them.
Thresholds: ``max_findings`` maps a rule to the number of findings it may have; more is a
failure (the CLI exits 1). :data:`DEFAULT_MAX_FINDINGS` leaves every rule unlimited except
``return_cap``, ``implausible_value`` and ``source_divergence`` (see there); override per rule with
``--max-findings RULE=N`` (``N = -1`` for unlimited).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from kallos.config import QualityConfig
from kallos.data.quality import QualityEvent, cap_returns, detect_stale_runs, fill_gaps
from kallos.data.reconcile import DEFAULT_DIVERGENCE_THRESHOLD, divergence_from_market
from kallos.exceptions import DataValidationError

__all__ = [
    "CHECKS",
    "DEFAULT_MAX_FINDINGS",
    "FINDING_COLUMNS",
    "CheckReport",
    "CheckSettings",
    "Finding",
    "coverage",
    "parse_max_findings",
    "run_checks",
]

FINDING_COLUMNS = ["rule", "coin_id", "source", "start", "end", "n_days", "detail"]
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Finding:
    """One thing a check found: the rule, coin, source and the first/last date concerned."""

    rule: str
    coin_id: str
    source: str
    start: pd.Timestamp
    end: pd.Timestamp
    n_days: int
    detail: str


@dataclass(frozen=True)
class CheckSettings:
    """Thresholds of the checks.

    Attributes
    ----------
    quality : ``stale_run_days`` and ``max_daily_return`` come from here (as in the panel).
    z_threshold : robust z-score above which a daily log return is an outlier.
    divergence_threshold : mean |cg/bn - 1| per coin-month above which it is flagged (fraction).
    max_findings : rule -> allowed number of findings (None = unlimited).
    """

    quality: QualityConfig = field(default_factory=QualityConfig)
    z_threshold: float = 10.0
    divergence_threshold: float = DEFAULT_DIVERGENCE_THRESHOLD
    max_findings: dict[str, int | None] = field(default_factory=lambda: dict(DEFAULT_MAX_FINDINGS))


def _from_events(events: Iterable[QualityEvent], source: str) -> list[Finding]:
    return [Finding(e.rule, e.coin_id, source, e.start, e.end, int(e.n_rows), e.detail) for e in events]


def _gaps(close: pd.Series, coin: str, source: str, s: CheckSettings) -> list[Finding]:
    return _from_events(fill_gaps(close, coin, 0)[2], source)


def _stale(close: pd.Series, coin: str, source: str, s: CheckSettings) -> list[Finding]:
    return _from_events(detect_stale_runs(close, coin, s.quality.stale_run_days), source)


def _return_cap(close: pd.Series, coin: str, source: str, s: CheckSettings) -> list[Finding]:
    full = close.reindex(pd.date_range(close.index[0], close.index[-1], freq="D"))
    return _from_events(cap_returns(full, coin, s.quality.max_daily_return)[3], source)


def _zscore(close: pd.Series, coin: str, source: str, s: CheckSettings) -> list[Finding]:
    full = close.reindex(pd.date_range(close.index[0], close.index[-1], freq="D"))
    r = np.log(full).diff().dropna()
    if len(r) < 30:
        return []
    mad = float((r - r.median()).abs().median())
    if mad <= 0:
        return []
    z = (r - r.median()) / (MAD_TO_SIGMA * mad)
    hits = z[z.abs() > s.z_threshold]
    return [
        Finding(
            "robust_zscore",
            coin,
            source,
            day,
            day,
            1,
            f"daily log return {r[day]:+.3f} has robust z-score {z[day]:+.1f} (> {s.z_threshold:g})",
        )
        for day in hits.index
    ]


def _runs(mask: pd.Series) -> list[tuple[pd.Timestamp, pd.Timestamp, int]]:
    """(first, last, length) of each run of True in a date-indexed boolean series."""
    if not mask.any():
        return []
    run_id = (mask != mask.shift()).cumsum()
    return [(g.index[0], g.index[-1], len(g)) for _, g in mask[mask].groupby(run_id[mask])]


def _missing_market_cap(rows: pd.DataFrame, coin: str, source: str, s: CheckSettings) -> list[Finding]:
    caps = rows.set_index("date")["market_cap"]
    return [
        Finding(
            "missing_market_cap",
            coin,
            source,
            a,
            b,
            n,
            f"{n} day(s) with a close but a zero or missing market cap",
        )
        for a, b, n in _runs(caps.isna() | (caps <= 0))
    ]


#: Largest plausible value per column (USD): 80× Bitcoin's highest price, 25× the whole market's
#: capitalisation, 100× the largest daily volume in the shipped data.
PLAUSIBLE_MAX: dict[str, float] = {
    "open": 1e7,
    "high": 1e7,
    "low": 1e7,
    "close": 1e7,
    "market_cap": 1e14,
    "volume": 1e14,
}


def _implausible(rows: pd.DataFrame, coin: str, source: str, s: CheckSettings) -> list[Finding]:
    out = []
    for column, limit in PLAUSIBLE_MAX.items():
        if column not in rows:
            continue
        values = rows.set_index("date")[column].astype(float)
        bad = values.notna() & ~(values.abs() <= limit)  # inf and -inf included
        for a, b, n in _runs(bad):
            first = values[a]
            why = "is not finite" if not np.isfinite(first) else f"exceeds {limit:g} USD"
            out.append(
                Finding(
                    "implausible_value",
                    coin,
                    source,
                    a,
                    b,
                    n,
                    f"{column} {first:.3g} on {a:%Y-%m-%d} {why} ({n} day(s)); fix or re-import the source",
                )
            )
    return out


SeriesCheck = Callable[[pd.Series, str, str, CheckSettings], list[Finding]]
# Rules over one coin's close from one source (registry; order = report order).
SERIES_CHECKS: dict[str, SeriesCheck] = {
    "gap": _gaps,
    "stale_run": _stale,
    "return_cap": _return_cap,
    "robust_zscore": _zscore,
}
# Sources whose rows are expected to carry a market cap.
MARKET_CAP_SOURCES = ("coingecko",)
CHECKS: tuple[str, ...] = (*SERIES_CHECKS, "missing_market_cap", "implausible_value", "source_divergence")

# return_cap: 2 beyond-cap days are known in the shipped data (BNB's CoinGecko launch
# artefact 2017-10-29 and one more; see `kallos data check` output); more means new bad data.
# source_divergence: the 2017-2018 coin-months flagged in the shipped data (18) are tolerated.
# implausible_value: none is tolerated.
DEFAULT_MAX_FINDINGS: dict[str, int | None] = {rule: None for rule in CHECKS} | {
    "return_cap": 2,
    "implausible_value": 0,
    "source_divergence": 18,
}


def parse_max_findings(items: Iterable[str]) -> dict[str, int | None]:
    """``["gap=0", "stale_run=-1"]`` -> ``{"gap": 0, "stale_run": None}`` (-1 = unlimited).

    Raises
    ------
    DataValidationError
        For an unknown rule or a value that is not an integer >= -1 (naming the item).
    """
    out: dict[str, int | None] = {}
    for item in items:
        rule, sep, raw = item.partition("=")
        rule = rule.strip()
        if not sep or rule not in CHECKS:
            raise DataValidationError(
                f"--max-findings {item!r}: expected RULE=N with RULE one of {list(CHECKS)}"
            )
        try:
            n = int(raw)
        except ValueError:
            n = -2
        if n < -1:
            raise DataValidationError(
                f"--max-findings {item!r}: N must be an integer >= 0 (or -1 = unlimited)"
            )
        out[rule] = None if n == -1 else n
    return out


def coverage(market: pd.DataFrame) -> pd.DataFrame:
    """Per coin and source: first and last date, rows, and missing calendar days between them."""
    g = market.groupby(["coin_id", "source"])["date"]
    out = g.agg(first="min", last="max", rows="size").reset_index()
    out["missing_days"] = ((out["last"] - out["first"]).dt.days + 1 - out["rows"]).astype(int)
    return out


@dataclass(frozen=True)
class CheckReport:
    """Findings, coverage and the verdict of :func:`run_checks`."""

    findings: pd.DataFrame
    coverage: pd.DataFrame
    settings: CheckSettings

    @property
    def counts(self) -> dict[str, int]:
        c = self.findings.groupby("rule").size() if len(self.findings) else pd.Series(dtype=int)
        return {rule: int(c.get(rule, 0)) for rule in CHECKS}

    @property
    def exceeded(self) -> dict[str, tuple[int, int]]:
        """Rule -> (findings, allowed) for every rule over its limit."""
        limits = self.settings.max_findings
        return {
            rule: (n, limits[rule])
            for rule, n in self.counts.items()
            if limits.get(rule) is not None and n > limits[rule]
        }

    @property
    def ok(self) -> bool:
        return not self.exceeded

    def to_dict(self) -> dict:
        """JSON-ready document: ok, counts, limits, exceeded, settings, coverage, findings."""

        def day(v):
            return None if pd.isna(v) else pd.Timestamp(v).date().isoformat()

        findings = self.findings.assign(
            start=self.findings["start"].map(day), end=self.findings["end"].map(day)
        )
        cov = self.coverage.assign(first=self.coverage["first"].map(day), last=self.coverage["last"].map(day))
        s = self.settings
        return {
            "ok": self.ok,
            "counts": self.counts,
            "max_findings": {k: s.max_findings.get(k) for k in CHECKS},
            "exceeded": {k: {"findings": n, "allowed": a} for k, (n, a) in self.exceeded.items()},
            "settings": {
                "stale_run_days": s.quality.stale_run_days,
                "max_daily_return": s.quality.max_daily_return,
                "z_threshold": s.z_threshold,
                "divergence_threshold": s.divergence_threshold,
            },
            "coverage": cov.to_dict(orient="records"),
            "findings": findings.to_dict(orient="records"),
        }


def run_checks(market: pd.DataFrame, settings: CheckSettings | None = None) -> CheckReport:
    """Run every rule of :data:`CHECKS` on long ``daily_market_data`` rows (pure; no I/O).

    Parameters
    ----------
    market : rows with ``coin_id, date, source, close, market_cap`` (dates = UTC close days).
    settings : thresholds; default :class:`CheckSettings`.

    Raises
    ------
    DataValidationError
        If ``market`` is empty or lacks a column.
    """
    settings = settings or CheckSettings()
    missing = [c for c in ("coin_id", "date", "source", "close", "market_cap") if c not in market.columns]
    if missing:
        raise DataValidationError(f"market rows lack column(s) {missing}")
    if market.empty:
        raise DataValidationError("no market data to check: import some with `kallos ingest`")
    market = market.assign(date=pd.to_datetime(market["date"])).sort_values(["coin_id", "source", "date"])
    findings: list[Finding] = []
    for (coin, source), rows in market.groupby(["coin_id", "source"], sort=True):
        findings.extend(_implausible(rows, coin, source, settings))
        close = rows.set_index("date")["close"].astype(float)
        close = close[(close > 0) & np.isfinite(close)]
        if close.empty:
            continue
        for check in SERIES_CHECKS.values():
            findings.extend(check(close, coin, source, settings))
        if source in MARKET_CAP_SOURCES:
            findings.extend(_missing_market_cap(rows, coin, source, settings))
    recon = divergence_from_market(market, settings.divergence_threshold)
    for r in recon[recon["flagged"]].itertuples(index=False):
        start = pd.Timestamp(f"{r.month}-01")
        findings.append(
            Finding(
                "source_divergence",
                r.coin_id,
                "coingecko/binance",
                start,
                start + pd.offsets.MonthEnd(0),
                int(r.n_days),
                f"{r.month}: mean |cg/bn - 1| {r.mean_abs_divergence:.2%} "
                f"(max {r.max_abs_divergence:.2%}) over {r.n_days} day(s) "
                f"> {settings.divergence_threshold:.2%}",
            )
        )
    frame = pd.DataFrame([asdict(f) for f in findings], columns=FINDING_COLUMNS)
    order = {rule: i for i, rule in enumerate(CHECKS)}
    if len(frame):
        frame = frame.sort_values(
            ["rule", "coin_id", "source", "start"], key=lambda c: c.map(order) if c.name == "rule" else c
        ).reset_index(drop=True)
    return CheckReport(findings=frame, coverage=coverage(market), settings=settings)
