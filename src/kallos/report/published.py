"""The published results of the study Kallos reproduces, beside ours (``kallos run --preset original``).

Two published sources report on the study, and they disagree with each other: the project
write-up gives positive net Sharpe ratios over 2023-2024 (GRU 1.12, historical mean 1.08,
capped market-cap benchmark 1.21) and drawdowns of 32-39%, while the accompanying paper's
Table 2 (maximise expected returns, pre-cost, weekly, top 5, weights capped at 35%) gives negative
Sharpe ratios (-0.29, -0.51, -0.25) and drawdowns of 67-74%. Neither is picked here: both are
kept as data (:data:`WRITEUP`, :data:`PAPER`), and the side-by-side table flags every quantity on
which they disagree (:func:`disagreement`).

:func:`published_doc` builds the ``results["published"]`` block from a ``results.json`` document
whose ``config.study.preset`` is ``"original"``: our figures for the variants in :data:`VARIANTS`
(pre-cost from ``metrics_gross``, net from ``metrics_net_compare``), the p-values of the
Sharpe-ratio test :data:`SHARPE_TEST` from ``tests.pairwise``, the primary verdicts, both sources'
figures, and every design difference between our run and the published studies
(:func:`design_differences`, read from the run's own configuration). :func:`published_section`
renders it as the report section "Published results beside ours".

Conventions: drawdowns are negative fractions (-0.321 for a 32.1% peak-to-trough loss), as in
``results.json``; the write-up states them as magnitudes. Our Sharpe ratios are annualised with
365 days and a zero risk-free rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from markupsafe import Markup

from kallos.evaluation.battery import TEST_LABELS
from kallos.report.blocks import Section, SectionContext, TableBlock, Text, records
from kallos.report.tables import (
    DASH,
    Cell,
    Group,
    Header,
    Row,
    Table,
    as_float,
    fmt_float,
    fmt_p,
    fmt_pct,
    fmt_text,
    get,
)

__all__ = [
    "PAPER",
    "PRESET",
    "QUANTITIES",
    "SHARPE_TEST",
    "SOURCES",
    "VARIANTS",
    "WRITEUP",
    "Difference",
    "PublishedSource",
    "Quantity",
    "design_differences",
    "differences_table",
    "disagreement",
    "published_doc",
    "published_section",
    "published_table",
]

PRESET = "original"
"""``config.study.preset`` of the runs that get the comparison."""

VARIANTS: Mapping[str, str] = {
    "gru": "gru/max_return",
    "historical_mean": "historical_mean/max_return",
    "benchmark": "market_cap",
}
"""Role in the published tables -> our variant key (the paper's objective: maximise expected returns)."""

ROLE_LABELS: Mapping[str, str] = {
    "gru": "GRU",
    "historical_mean": "historical mean",
    "benchmark": "capped market-cap benchmark",
}

SHARPE_TEST = "ledoit_wolf_2008"
"""The pairwise test whose p-value stands beside the published ones: equal Sharpe ratios."""

SIGNIFICANCE = 0.05
"""Two p-values disagree when one is below this level and the other is not."""

RATIO = 1.5
"""Two published figures of one sign disagree when one's magnitude exceeds the other's this many times."""


@dataclass(frozen=True)
class Quantity:
    """One line of the side-by-side table.

    Attributes
    ----------
    id : key of the line (``"sharpe.gru"``, ``"p.gru_vs_historical_mean"``).
    label : display text.
    metric : ``sharpe``, ``max_drawdown``, ``calmar`` (from the variant's metrics), ``p_value``,
        ``cohens_d`` (from the pairwise :data:`SHARPE_TEST` row) or ``verdict`` (the primary family).
    a, b : roles in :data:`VARIANTS`; ``b`` only for a comparison of ``a`` against ``b``.
    """

    id: str
    label: str
    metric: str
    a: str
    b: str | None = None


QUANTITIES: tuple[Quantity, ...] = (
    *(Quantity(f"sharpe.{r}", f"Sharpe ratio, {ROLE_LABELS[r]}", "sharpe", r) for r in VARIANTS),
    *(Quantity(f"max_drawdown.{r}", f"Max drawdown, {ROLE_LABELS[r]}", "max_drawdown", r) for r in VARIANTS),
    *(Quantity(f"calmar.{r}", f"Calmar ratio, {ROLE_LABELS[r]}", "calmar", r) for r in VARIANTS),
    Quantity(
        "p.gru_vs_historical_mean", "p-value, GRU vs historical mean", "p_value", "gru", "historical_mean"
    ),
    Quantity(
        "cohens_d.gru_vs_historical_mean",
        "Cohen's d, GRU vs historical mean",
        "cohens_d",
        "gru",
        "historical_mean",
    ),
    Quantity("p.benchmark_vs_gru", "p-value, benchmark vs GRU", "p_value", "benchmark", "gru"),
    Quantity(
        "p.benchmark_vs_historical_mean",
        "p-value, benchmark vs historical mean",
        "p_value",
        "benchmark",
        "historical_mean",
    ),
    Quantity(
        "verdict.gru_vs_historical_mean",
        "primary verdict (StepM), GRU vs historical mean",
        "verdict",
        "gru",
        "historical_mean",
    ),
    Quantity(
        "verdict.gru_vs_benchmark", "primary verdict (StepM), GRU vs benchmark", "verdict", "gru", "benchmark"
    ),
)
"""The lines of the table, in order."""


@dataclass(frozen=True)
class PublishedSource:
    """One published account of the study and the figures it reports.

    Attributes
    ----------
    id : column key (``"writeup"``, ``"paper"``).
    name : column label.
    description : where the figures come from.
    period : test period the figures cover (None: not recorded with the figures).
    costs : how trading costs enter the figures.
    setting : the variant set-up the figures belong to.
    values : :attr:`Quantity.id` -> published value, in ``results.json`` units and signs.
    notes : :attr:`Quantity.id` -> how a value was read from the source.
    """

    id: str
    name: str
    description: str
    period: str | None
    costs: str
    setting: str
    values: Mapping[str, float]
    notes: Mapping[str, str] = field(default_factory=dict)


WRITEUP = PublishedSource(
    id="writeup",
    name="write-up (2023–2024, net)",
    description="the project write-up of the study",
    period="2023-01-01 – 2024-12-31",
    costs="net of trading costs; the cost level is not stated",
    setting="GRU and historical-mean forecasts, capped market-cap benchmark",
    values={
        "sharpe.gru": 1.12,
        "sharpe.historical_mean": 1.08,
        "sharpe.benchmark": 1.21,
        "max_drawdown.gru": -0.321,
        "max_drawdown.benchmark": -0.387,
        "calmar.gru": 0.88,
        "calmar.benchmark": 0.81,
        "p.gru_vs_historical_mean": 0.18,
        "cohens_d.gru_vs_historical_mean": 0.22,
        "p.benchmark_vs_gru": 0.007,
        "p.benchmark_vs_historical_mean": 0.007,
    },
    notes={
        "max_drawdown.gru": "stated as a magnitude, 32.1%",
        "max_drawdown.benchmark": "stated as a magnitude, 38.7%",
        "p.benchmark_vs_gru": "one p = 0.007 is stated for the benchmark against both",
        "p.benchmark_vs_historical_mean": "one p = 0.007 is stated for the benchmark against both",
    },
)
"""The project write-up: 2023-2024, net of costs."""

PAPER = PublishedSource(
    id="paper",
    name="paper, Table 2 (pre-cost)",
    description="the accompanying paper, Table 2",
    period=None,
    costs="pre-cost",
    setting="maximise expected returns, weekly rebalancing, top-5 universe, weights capped at 35%",
    values={
        "sharpe.gru": -0.29,
        "sharpe.historical_mean": -0.51,
        "sharpe.benchmark": -0.25,
        "max_drawdown.gru": -0.71,
        "max_drawdown.historical_mean": -0.74,
        "max_drawdown.benchmark": -0.67,
        "p.gru_vs_historical_mean": 0.148,
    },
)
"""The accompanying paper's Table 2: maximise expected returns, pre-cost, weekly, top 5, cap 35%."""

SOURCES: tuple[PublishedSource, ...] = (WRITEUP, PAPER)


@dataclass(frozen=True)
class Difference:
    """One way our run's design differs from (or is not known to match) the published studies."""

    topic: str
    ours: str
    published: str


# ----------------------------------------------------------------------------- comparison


def disagreement(metric: str, a: Any, b: Any) -> str | None:
    """Why two published values of one quantity disagree, or None when they agree (or one is missing).

    p-values disagree when exactly one is below :data:`SIGNIFICANCE`; other figures when their
    signs differ, or when one's magnitude is more than :data:`RATIO` times the other's.
    """
    x, y = as_float(a), as_float(b)
    if x is None or y is None:
        return None
    if metric == "p_value":
        if (x < SIGNIFICANCE) != (y < SIGNIFICANCE):
            return f"one significant at {SIGNIFICANCE:g}, the other not"
        return None
    if x * y < 0:
        return "opposite signs"
    small, large = sorted((abs(x), abs(y)))
    if large > RATIO * small:
        return f"{large / small:.1f}× apart" if small > 0 else "one is zero"
    return None


def _ours_blocks(results: Mapping[str, Any]) -> dict[str, Any]:
    """Which metrics block and cost feed our pre-cost and net columns, and at what cost the tests ran."""
    bt = get(results, "config", "study", "backtest", default={}) or {}
    cost = as_float(bt.get("cost_bps"))
    slippage = as_float(bt.get("slippage_bps")) or 0.0
    compare = as_float(bt.get("compare_cost_bps"))
    if compare is not None:
        net_block, net_cost = "metrics_net_compare", compare
    elif cost:
        net_block, net_cost = "metrics_net", cost
    else:
        net_block, net_cost = None, None
    # The statistics run on the daily net returns at backtest.cost_bps; slippage is charged on top
    # of both that cost and the net column's.
    tests_cost = (cost or 0.0) + slippage
    tests_column = "pre_cost" if tests_cost == 0 else ("net" if net_cost == (cost or 0.0) else None)
    return {
        "net_block": net_block,
        "net_cost_bps": net_cost,
        "tests_cost_bps": tests_cost,
        "tests_column": tests_column,
    }


def _pair_row(results: Mapping[str, Any], a: str, b: str) -> tuple[Mapping[str, Any] | None, int]:
    """The :data:`SHARPE_TEST` row of the pair (either order) and +1 / -1 for its orientation."""
    for row in records(get(results, "tests", "pairwise")):
        if row.get("test") != SHARPE_TEST:
            continue
        if (row.get("a"), row.get("b")) == (a, b):
            return row, 1
        if (row.get("a"), row.get("b")) == (b, a):
            return row, -1
    return None, 1


def _verdict(results: Mapping[str, Any], a: str, b: str) -> str | None:
    for v in records(get(results, "verdicts")):
        if (v.get("a"), v.get("b")) == (a, b):
            return str(v.get("verdict"))
        if (v.get("a"), v.get("b")) == (b, a):
            flipped = {"a better": "b better", "b better": "a better"}
            return flipped.get(str(v.get("verdict")), str(v.get("verdict")))
    return None


def _ours(results: Mapping[str, Any], q: Quantity, blocks: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"pre_cost": None, "net": None}
    key_a = VARIANTS[q.a]
    if q.b is None:
        entry = get(results, "strategies", key_a, default={}) or {}
        out["pre_cost"] = as_float(get(entry, "metrics_gross", q.metric))
        if blocks["net_block"] is not None:
            out["net"] = as_float(get(entry, blocks["net_block"], q.metric))
        return out
    column = blocks["tests_column"]
    if column is None:
        return out
    key_b = VARIANTS[q.b]
    if q.metric == "verdict":
        out[column] = _verdict(results, key_a, key_b)
        return out
    row, sign = _pair_row(results, key_a, key_b)
    if row is not None:
        value = as_float(row.get(q.metric))
        out[column] = None if value is None else (sign * value if q.metric == "cohens_d" else value)
    return out


def _summary(rows: Sequence[Mapping[str, Any]]) -> str:
    flagged = [r for r in rows if r["disagreement"]]
    if not flagged:
        return "The two published sources agree wherever both report a figure."
    items = "; ".join(
        f"{r['label']}: {_fmt(r['metric'], r['published'][WRITEUP.id])} in the write-up, "
        f"{_fmt(r['metric'], r['published'][PAPER.id])} in the paper ({r['disagreement']})"
        for r in flagged
    )
    return (
        f"The two published sources disagree with each other on {len(flagged)} of "
        f"{sum(r['sources_agree'] is not None for r in rows)} figures they share — {items}. "
        "The write-up's figures are net of costs it does not quantify and the paper's are pre-cost, but "
        "costs only lower returns: over one period they cannot turn a negative pre-cost Sharpe ratio "
        "into a positive net one. Neither source is picked here."
    )


def published_doc(results: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``results["published"]`` block, or None unless ``config.study.preset`` is :data:`PRESET`.

    Parameters
    ----------
    results : mapping
        A ``results.json`` document (``config``, ``strategies``, ``tests``, optionally ``verdicts``).

    Returns
    -------
    dict or None
        ``preset``; ``variants`` (role -> our key); ``test`` and ``test_label`` (the pairwise test
        behind our p-values and Cohen's d); ``net_cost_bps`` (cost per side of our net column, None
        without one); ``tests_cost_bps`` (the cost the tests' daily returns carry) and
        ``tests_column`` (``"pre_cost"``, ``"net"`` or None when neither column has that cost);
        ``sources`` (each :class:`PublishedSource` but its values); ``rows`` (one per
        :data:`QUANTITIES`: ``id, label, metric, a, b``, ``ours: {pre_cost, net}``,
        ``published: {source id: value}``, ``notes``, ``sources_agree`` (None unless both sources
        give it) and ``disagreement``); ``disagreement`` (a sentence on where the sources
        disagree); ``differences`` (each :class:`Difference`).
    """
    study = get(results, "config", "study", default={}) or {}
    if study.get("preset") != PRESET:
        return None
    blocks = _ours_blocks(results)
    rows = []
    for q in QUANTITIES:
        published = {s.id: s.values.get(q.id) for s in SOURCES}
        why = disagreement(q.metric, published[WRITEUP.id], published[PAPER.id])
        both = all(v is not None for v in published.values())
        rows.append(
            {
                "id": q.id,
                "label": q.label,
                "metric": q.metric,
                "a": VARIANTS[q.a],
                "b": VARIANTS[q.b] if q.b else None,
                "ours": _ours(results, q, blocks),
                "published": published,
                "notes": {s.id: s.notes[q.id] for s in SOURCES if q.id in s.notes},
                "sources_agree": (why is None) if both else None,
                "disagreement": why,
            }
        )
    sources = [{k: v for k, v in asdict(s).items() if k not in ("values", "notes")} for s in SOURCES]
    return {
        "preset": PRESET,
        "variants": dict(VARIANTS),
        "test": SHARPE_TEST,
        "test_label": TEST_LABELS.get(SHARPE_TEST, SHARPE_TEST),
        "net_cost_bps": blocks["net_cost_bps"],
        "tests_cost_bps": blocks["tests_cost_bps"],
        "tests_column": blocks["tests_column"],
        "sources": sources,
        "rows": rows,
        "disagreement": _summary(rows),
        "differences": [asdict(d) for d in design_differences(results)],
    }


# ----------------------------------------------------------------------------- design differences


def _days(n: Any) -> str:
    x = as_float(n)
    if x is None:
        return DASH
    weeks = f" ({x / 7:g} weeks)" if x % 7 == 0 else ""
    return f"{x:g} days{weeks}"


_WEEKDAYS = {"MON": "Monday", "TUE": "Tuesday", "WED": "Wednesday", "THU": "Thursday", "FRI": "Friday",
             "SAT": "Saturday", "SUN": "Sunday"}  # fmt: skip
_NOT_RECORDED = "not recorded with the published figures"


def design_differences(results: Mapping[str, Any]) -> list[Difference]:
    """Every design choice of our run that may set its figures apart from the published ones.

    Our side is read from the run's configuration (``config.study``) and data (``data.sources``);
    the published side says what the sources state, or that it is not recorded with their figures.
    """
    study = get(results, "config", "study", default={}) or {}
    u, f, p = study.get("universe") or {}, study.get("forecast") or {}, study.get("portfolio") or {}
    bt, q = study.get("backtest") or {}, study.get("quality") or {}
    tuning = f.get("tuning") or {}
    horizon, validation = as_float(f.get("horizon")), as_float(f.get("validation_days"))
    window = as_float(f.get("train_window_days"))
    if window is not None and horizon is not None and validation is not None:
        samples = window - 2 * horizon - validation
        ours_window = (
            f"rolling {window:g}-day window before each quarterly cutoff: {_days(samples)} of training "
            f"samples, a {horizon:g}-day purge, {_days(validation)} of validation and a {horizon:g}-day "
            "purge before the cutoff; retrained every quarter"
        )
    else:
        ours_window = (
            f"expanding window from {fmt_text(f.get('train_start'))}, the last {_days(validation)} for "
            "validation; retrained every quarter"
        )
    if tuning.get("enabled"):
        ours_model = (
            "GRU tuned with Optuna separately for every coin and quarterly fold, at most "
            f"{fmt_text(tuning.get('n_trials'))} trials per study; the chosen trial is the lowest "
            "validation RMSE among Pareto trials with directional accuracy ≥ 50% (else the lowest RMSE)"
        )
    else:
        ours_model = "GRU with fixed hyper-parameters: not tuned (forecast.tuning.enabled = false)"
    excluded = ", ".join(map(str, q.get("exclude_categories") or ())) or "none"
    sources = sorted({str(s.get("source")) for s in records(get(results, "data", "sources"))})
    cost, compare = as_float(bt.get("cost_bps")), as_float(bt.get("compare_cost_bps"))
    slippage = as_float(bt.get("slippage_bps")) or 0.0
    ours_costs = f"{fmt_float(cost, 0)} bps per side on traded notional"
    ours_costs += f" plus {slippage:g} bps slippage" if slippage else ""
    if compare is not None:
        ours_costs += f"; the net column trades the same weights at {compare:g} bps per side"
    day = _WEEKDAYS.get(str(bt.get("rebalance_day")), fmt_text(bt.get("rebalance_day")))
    rebalance = str(bt.get("rebalance") or DASH)
    ours_rebalance = (
        f"{rebalance}, at the {day} close (UTC), trades earn from the next day; also every month end, "
        "when the universe is re-selected"
        if rebalance == "weekly"
        else f"{rebalance}, at the month-end close (UTC); trades earn from the next day"
    )
    objectives = ", ".join(map(str, p.get("objectives") or ())) or DASH
    return [
        Difference(
            "test period",
            f"{fmt_text(bt.get('start'))} – {fmt_text(bt.get('end'))}",
            f"write-up: 2023–2024; paper Table 2: {_NOT_RECORDED}",
        ),
        Difference(
            "universe",
            f"point-in-time top {fmt_text(u.get('top_n'))} by market cap, re-selected every month from the "
            f"market caps known at the selection date (method {fmt_text(u.get('method'))}); excluded "
            f"categories: {excluded}",
            f"top 5 (paper Table 2); selection rule, timing and exclusions {_NOT_RECORDED}",
        ),
        Difference(
            "benchmark",
            f"market-cap weights of the universe capped at {fmt_pct(u.get('benchmark_max_weight'), 0)}, "
            "re-weighted monthly",
            "capped market-cap benchmark (cap 35% in the paper)",
        ),
        Difference(
            "forecast model and tuning", ours_model, f"GRU; tuning budget and selection rule {_NOT_RECORDED}"
        ),
        Difference("training window", ours_window, "rolling 52-week training window, 13 weeks of validation"),
        Difference(
            "forecast horizon",
            f"{fmt_text(f.get('horizon'))}-day forward log return",
            "30 days",
        ),
        Difference(
            "covariance",
            f"{fmt_text(p.get('covariance'))} covariance of the trailing {fmt_text(p.get('cov_lookback'))} "
            "daily returns",
            f"252-day window; estimator {_NOT_RECORDED}",
        ),
        Difference(
            "objective and constraints",
            f"objectives {objectives}; beside the published figures: max_return (expected return minus an "
            f"L2 penalty, γ = {fmt_text(p.get('l2_gamma'))}), weights ≤ {fmt_pct(p.get('max_weight'), 0)}, "
            f"at least {fmt_text(p.get('min_names'))} names, long only",
            "maximise expected returns, weights ≤ 35% (paper Table 2)",
        ),
        Difference("rebalancing", ours_rebalance, f"weekly; weekday and time {_NOT_RECORDED}"),
        Difference(
            "costs",
            ours_costs,
            "write-up: net of costs whose level it does not state; paper Table 2: pre-cost",
        ),
        Difference(
            "data",
            f"daily closes from {', '.join(sources) if sources else 'CoinGecko and Binance'} "
            "(CoinGecko and Binance closes reconciled, market caps cross-checked against CoinMarketCap "
            f"snapshots: {fmt_text(u.get('cmc_check'))}), cleaned by the quality rules",
            _NOT_RECORDED,
        ),
        Difference(
            "statistics",
            f"p-values: {TEST_LABELS.get(SHARPE_TEST, SHARPE_TEST)}, on daily returns; Cohen's d: mean "
            "over standard deviation of the daily return difference; Sharpe ratios annualised with 365 "
            "days, risk-free rate 0",
            f"tests, effect-size definition and annualisation {_NOT_RECORDED}",
        ),
    ]


# ----------------------------------------------------------------------------- report


def _fmt(metric: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if metric == "max_drawdown":
        return fmt_pct(value)
    if metric == "p_value":
        x = as_float(value)
        return DASH if x is None else (fmt_p(x) if x < 1e-3 else f"{x:.3f}")
    return fmt_float(value)


def published_table(doc: Mapping[str, Any]) -> Table:
    """Ours (pre-cost, net), the write-up and the paper's Table 2 side by side, one row per quantity.

    Rows on which the two published sources disagree get class ``warn`` and say why in the last
    column; the table note sums the disagreement up.
    """
    net = as_float(doc.get("net_cost_bps"))
    net_label = f"ours, net of {net:g} bps" if net is not None else "ours, net"
    names = {s.get("id"): s.get("name") for s in records(doc.get("sources"))}
    table_headers = [
        Header("quantity"),
        Header("ours, pre-cost", "num", "metrics_gross of our run"),
        Header(net_label, "num", "the same weights traded at this cost per side"),
        *(Header(str(names.get(s.id, s.name)), "num", s.description) for s in SOURCES),
        Header("write-up vs paper", "", "Do the two published sources agree on this figure?"),
    ]
    rows = []
    for r in records(doc.get("rows")):
        ours = r.get("ours") or {}
        published = r.get("published") or {}
        notes = r.get("notes") or {}
        agree = r.get("sources_agree")
        verdict = "agree" if agree else (f"disagree: {r.get('disagreement')}" if agree is False else DASH)
        rows.append(
            Row(
                [
                    Cell(fmt_text(r.get("label"))),
                    Cell(_fmt(str(r.get("metric")), ours.get("pre_cost")), "num"),
                    Cell(_fmt(str(r.get("metric")), ours.get("net")), "num"),
                    *(
                        Cell(_fmt(str(r.get("metric")), published.get(s.id)), "num", notes.get(s.id, ""))
                        for s in SOURCES
                    ),
                    Cell(verdict, "flag warn" if agree is False else "flag"),
                ],
                "warn" if agree is False else "",
                {"data-quantity": str(r.get("id"))},
            )
        )
    variants = doc.get("variants") or {}
    caption = (
        "Published results beside ours: "
        + ", ".join(f"{ROLE_LABELS.get(k, k)} = {v}" for k, v in variants.items())
        + f". Our p-values and Cohen's d: {fmt_text(doc.get('test_label'))}, on daily returns at "
        f"{fmt_float(doc.get('tests_cost_bps'), 0)} bps. Write-up: 2023–2024, net of unstated costs; "
        "paper Table 2: pre-cost. Highlighted: the two published sources disagree with each other."
    )
    return Table(
        "published-table",
        caption,
        table_headers,
        [Group(None, rows)],
        note=str(doc.get("disagreement") or ""),
    )


def differences_table(doc: Mapping[str, Any]) -> Table:
    """Each design difference between our run and the published studies (topic, ours, published)."""
    diffs = records(doc.get("differences"))
    rows = [
        Row(
            [
                Cell(fmt_text(d.get("topic"))),
                Cell(fmt_text(d.get("ours")), "wrap"),
                Cell(fmt_text(d.get("published")), "wrap"),
            ],
            attrs={"data-topic": str(d.get("topic"))},
        )
        for d in diffs
    ]
    return Table(
        "published-differences-table",
        f"How our run differs from the published studies; N = {len(rows)} design choices, ours read "
        "from this run's configuration.",
        [Header("topic"), Header("ours"), Header("published")],
        [Group(None, rows)],
    )


def published_section(ctx: SectionContext) -> Section | None:
    """ "Published results beside ours": the side-by-side table and the design differences.

    From ``results["published"]``, or built from the document when it lacks one but follows the
    preset; None for any other run.
    """
    doc = get(ctx.results, "published")
    if not isinstance(doc, Mapping):
        doc = published_doc(ctx.results)
    if doc is None:
        return None
    intro = Markup(
        "This run follows the preset <code>{}</code>, the study Kallos reproduces. Two published "
        "accounts of that study report figures for it: {}. They do not agree with each other, so both "
        "stand beside ours; a highlighted row is a figure on which they disagree."
    ).format(
        doc.get("preset"),
        "; ".join(
            f"{s.get('description')} ({s.get('costs')}, period {s.get('period') or 'not recorded'})"
            for s in records(doc.get("sources"))
        ),
    )
    if doc.get("tests_column") is None:
        intro += Markup(
            " Our tests ran on returns at {} bps, a cost neither of our columns uses, so no p-value is shown."
        ).format(fmt_float(doc.get("tests_cost_bps"), 0))
    return Section(
        "published",
        "Published results beside ours",
        [
            Text(intro),
            TableBlock(published_table(doc)),
            Text(
                Markup("<strong>Design differences.</strong> {}").format(
                    "Each choice below may move our figures away from the published ones."
                )
            ),
            TableBlock(differences_table(doc)),
        ],
    )
