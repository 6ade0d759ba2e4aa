"""Section builders of the comparison report: a registry of ``id -> (title, builder)``.

Each builder takes a :class:`SectionContext` (the ``results`` document, the daily frames and
the display order of objectives and variants) and returns a :class:`Section` made of blocks
(tables, figures, paragraphs) or ``None`` when its stage is absent from the run, in which case
the section and its table-of-contents entry are left out. The Jinja template renders every
block kind with one macro, so adding a section is adding a builder here.

Statistics keys rendered here follow the results.json contract: ``verdicts``, ``effects``,
``sharpe`` / ``trials`` (PSR, DSR, minimum track record length), ``overfitting`` (PBO),
``regimes``, ``quarters`` and ``universe`` (point-in-time constituents).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
from markupsafe import Markup

from kallos.report import charts
from kallos.report.tables import (
    DASH,
    _as_float,
    _Cell,
    _figure_html,
    _fmt_float,
    _fmt_int,
    _fmt_p,
    _fmt_pct,
    _fmt_text,
    _get,
    _Group,
    _Header,
    _headers,
    _num,
    _period_text,
    _record_row,
    _Row,
    _split,
    _swatch,
    _Table,
    _txt,
)

if TYPE_CHECKING:
    from kallos.report.html import ReportFrames

__all__ = ["SECTIONS", "Section", "SectionContext", "build_sections", "headline"]

ROLLING_WINDOW = 90
VERDICT_CLASS = {"a better": "v-a", "b better": "v-b", "no difference": "v-none", "inconclusive": "v-inc"}


# ----------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Figure:
    html: Markup
    caption: str
    kind: str = "figure"


@dataclass(frozen=True)
class Text:
    html: Markup
    kind: str = "text"


@dataclass(frozen=True)
class TableBlock:
    table: _Table
    collapse_label: str | None = None
    threshold: int = 0
    kind: str = "table"


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    blocks: Sequence[Figure | Text | TableBlock] = field(default_factory=tuple)


@dataclass(frozen=True)
class SectionContext:
    results: Mapping[str, Any]
    frames: ReportFrames
    objectives: Sequence[str]
    variants: Sequence[str]


Builder = Callable[[SectionContext], Section | None]


def _records(value: Any) -> list[Mapping[str, Any]]:
    return [r for r in value or [] if isinstance(r, Mapping)] if isinstance(value, list) else []


def _key_rank(key: str, objectives: Sequence[str]) -> tuple[int, tuple[int, str]]:
    strategy, objective = _split(key)
    group = objectives.index(objective) if objective in objectives else len(objectives)
    return group, charts.strategy_rank(strategy)


def _objective_of(record: Mapping[str, Any]) -> str:
    value = record.get("objective")
    if value in (None, ""):
        value = record.get("group")
    return "none" if value in (None, "") else str(value)


def _grouped(
    records: Sequence[Mapping[str, Any]], objectives: Sequence[str]
) -> list[tuple[str, list[Mapping[str, Any]]]]:
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        groups.setdefault(_objective_of(r), []).append(r)
    order = {o: i for i, o in enumerate(objectives)}
    return [(g, groups[g]) for g in sorted(groups, key=lambda g: (order.get(g, len(order)), g))]


def _ci(low: Any, high: Any, fmt: Callable[[Any], str]) -> str:
    if _as_float(low) is None and _as_float(high) is None:
        return DASH
    return f"[{fmt(low)}, {fmt(high)}]"


def _key_cell(value: Any) -> Any:
    return _swatch(str(value)) if value not in (None, "") else DASH


# ----------------------------------------------------------------------------- universe (issue 3)


def _universe(ctx: SectionContext) -> Section | None:
    uni = _get(ctx.results, "universe")
    if not isinstance(uni, Mapping):
        return None
    cons = _records(uni.get("constituents"))
    sources = _get(uni, "mcap_sources", default={}) or {}
    months = sorted({str(c.get("month")) for c in cons})
    absent = sorted({str(c.get("coin_id")) for c in cons if c.get("in_coingecko") is False})
    intro = Markup("Universe method <strong>{}</strong>").format(_fmt_text(uni.get("method")))
    if uni.get("top_n") is not None:
        intro += Markup(", top {} coins each month").format(_fmt_int(uni.get("top_n")))
    intro += Markup(
        ", chosen point in time from market caps known at the selection date "
        "(the last close before the month)."
    )
    if absent:
        intro += Markup(" <strong>Not in CoinGecko:</strong> {} (market cap from another source).").format(
            ", ".join(absent)
        )
    blocks: list[Figure | Text | TableBlock] = [Text(intro)]
    nested = [{"month": m, "constituents": [c for c in cons if str(c.get("month")) == m]} for m in months]
    if cons:
        blocks.append(
            Figure(
                _figure_html(charts.universe_heatmap_figure(nested), "universe-pit"),
                f"Point-in-time constituents, {months[0]} – {months[-1]}; N = {len(months)} months, "
                f"{len({c.get('coin_id') for c in cons})} coins. "
                "Colour: benchmark weight; blank: not selected.",
            )
        )
    coins = sorted({str(c.get("coin_id")) for c in cons} | set(map(str, sources)))
    rows = []
    for coin in coins:
        mine = [c for c in cons if str(c.get("coin_id")) == coin]
        flags = {c.get("in_coingecko") for c in mine}
        in_cg = "no" if False in flags else ("yes" if True in flags else DASH)
        used = sorted({str(c.get("mcap_source")) for c in mine if c.get("mcap_source")})
        rows.append(
            _Row(
                [
                    _Cell(coin, "mono"),
                    _Cell(
                        _fmt_text(sources.get(coin)) if coin in sources else ", ".join(used) or DASH, "wrap"
                    ),
                    _Cell(in_cg, "flag warn" if in_cg == "no" else "flag"),
                    _Cell(f"{len(mine):,}", "num"),
                ],
                "warn" if in_cg == "no" else "",
                {"data-coin": coin},
            )
        )
    blocks.append(
        TableBlock(
            _Table(
                "universe-sources-table",
                f"How each coin's market cap was obtained; {len(coins)} coins over "
                f"{len(months)} months (N = {len(cons):,} coin-months).",
                [
                    _Header("coin"),
                    _Header("market cap source"),
                    _Header("in CoinGecko"),
                    _Header("months", "num"),
                ],
                [_Group(None, rows)],
            )
        )
    )
    cols = [
        _txt("month", "month"),
        _txt("selection_date", "selected on"),
        _num("rank", "rank", _fmt_int),
        _txt("coin_id", "coin"),
        _num("market_cap", "market cap (USD)", lambda v: _fmt_float(v, 0)),
        _txt("mcap_source", "source"),
        _txt("in_coingecko", "in CoinGecko"),
        _num("benchmark_weight", "benchmark weight", _fmt_pct),
    ]
    ordered = sorted(cons, key=lambda c: (str(c.get("month")), _as_float(c.get("rank")) or math.inf))
    blocks.append(
        TableBlock(
            _Table(
                "universe-constituents-table",
                f"Constituents by month, {months[0] if months else DASH} – {months[-1] if months else DASH}; "
                f"N = {len(cons):,} coin-months.",
                _headers(cols),
                [_Group(None, [_record_row(c, cols) for c in ordered])],
            ),
            "Constituents by month",
        )
    )
    flagged = _records(_get(uni, "reconciliation", "flagged"))
    threshold = _get(uni, "reconciliation", "threshold")
    if flagged or threshold is not None:
        rcols = [
            _txt("coin_id", "coin"),
            _txt("month", "month"),
            _num("mean_abs_divergence", "mean |Δ|", _fmt_pct),
            _num("max_abs_divergence", "max |Δ|", _fmt_pct),
            _num("n_days", "days", _fmt_int),
        ]
        blocks.append(
            TableBlock(
                _Table(
                    "universe-reconciliation-table",
                    f"Market-cap reconciliation between sources: coin-months whose relative divergence "
                    f"exceeds {_fmt_pct(threshold)}; N = {len(flagged)} flagged.",
                    _headers(rcols),
                    [_Group(None, [_record_row(r, rcols, cls="warn") for r in flagged])],
                ),
                "Flagged coin-months",
                10,
            )
        )
    return Section("universe", "Universe construction", blocks)


# ----------------------------------------------------------------------------- performance charts


def _returns(ctx: SectionContext) -> pd.DataFrame:
    net = ctx.frames.returns_net
    return net.loc[:, [c for c in ctx.variants if c in net.columns]]


def _rolling(ctx: SectionContext) -> Section | None:
    returns = _returns(ctx)
    n = int(returns.notna().sum().max()) if returns.shape[1] else 0
    window = ROLLING_WINDOW if n >= 2 * ROLLING_WINDOW else max(10, n // 4)
    if returns.empty or n <= window:
        return None
    fig = charts.rolling_sharpe_figure(returns, ctx.objectives, window=window)
    valid = returns.dropna(how="all")
    caption = (
        f"Trailing {window}-day Sharpe ratio of daily net returns, annualised with 365 days (risk-free 0), "
        f"{_period_text(valid.index.min(), valid.index.max())}; first value after {window} days."
    )
    return Section("rolling", "Rolling Sharpe ratio", [Figure(_figure_html(fig, "rolling-sharpe"), caption)])


def _turnover(ctx: SectionContext) -> Section | None:
    turnover = ctx.frames.turnover
    cols = [c for c in ctx.variants if c in turnover.columns]
    if turnover.empty or not cols or not (turnover[cols].fillna(0.0) > 0).any().any():
        return None
    t = turnover.loc[:, cols]
    n = int((t.fillna(0.0) > 0).sum().max())
    caption = (
        "One-way turnover (fraction of capital traded) at each rebalance, "
        f"{_period_text(t.index.min(), t.index.max())}; up to N = {n:,} rebalances per variant. "
        "Costs are charged on this turnover."
    )
    return Section(
        "turnover",
        "Turnover",
        [Figure(_figure_html(charts.turnover_figure(t, ctx.objectives), "turnover"), caption)],
    )


# ----------------------------------------------------------------------------- fallbacks (decision chain)


def _fallbacks(ctx: SectionContext) -> Section | None:
    strategies = _get(ctx.results, "strategies", default={}) or {}
    rows = []
    for key in ctx.variants:
        fb = _get(strategies, key, "fallbacks")
        if not isinstance(fb, Mapping):
            continue
        count, rebalances = _as_float(fb.get("count")), _as_float(fb.get("rebalances"))
        share = count / rebalances if count is not None and rebalances else None
        reasons = _get(fb, "by_reason", default={}) or {}
        chain = fb.get("chain")
        detail = "; ".join(f"{k}: {v}" for k, v in reasons.items()) or DASH
        rows.append(
            _Row(
                [
                    _Cell(_swatch(key)),
                    _Cell(_fmt_int(count), "num"),
                    _Cell(_fmt_int(rebalances), "num"),
                    _Cell(_fmt_pct(share), "num"),
                    _Cell(detail, "wrap"),
                    _Cell(" → ".join(map(str, chain)) if isinstance(chain, list) and chain else DASH, "wrap"),
                ],
                "warn" if count else "",
                {"data-variant": key},
            )
        )
    if not rows:
        return None
    table = _Table(
        "fallbacks-table",
        "Rebalances on which the optimiser's requested objective failed and the decision fell back along "
        f"the chain; N = {len(rows)} variants.",
        [
            _Header("variant"),
            _Header("fallbacks", "num"),
            _Header("rebalances", "num"),
            _Header("share", "num"),
            _Header("reasons (count)"),
            _Header("chain"),
        ],
        [_Group(None, rows)],
    )
    return Section("fallbacks", "Decision fallbacks", [TableBlock(table)])


# ----------------------------------------------------------------------------- verdicts and effects


def _verdicts(ctx: SectionContext) -> Section | None:
    verdicts = _records(_get(ctx.results, "verdicts"))
    effects = {
        (_objective_of(e), str(e.get("a")), str(e.get("b"))): e
        for e in _records(_get(ctx.results, "effects"))
    }
    if not verdicts and not effects:
        return None
    if not verdicts:  # effects only: one row per effect, no verdict
        verdicts = [{"objective": o, "a": a, "b": b} for o, a, b in effects]
    headers = [
        _Header("A"),
        _Header("B"),
        _Header("verdict"),
        _Header("reason"),
        _Header("N", "num", "Daily observations"),
        _Header("MinTRL", "num", "Minimum track record length (days) for the Sharpe difference at α"),
        _Header("Cohen's d [95% CI]", "num", "Standardised mean difference of daily returns A − B"),
        _Header("ΔSharpe [95% CI]", "num", "Annualised Sharpe ratio of A minus that of B"),
    ]
    groups = []
    counts: dict[str, int] = {}
    for objective, recs in _grouped(verdicts, ctx.objectives):
        rows = []
        for v in recs:
            e = effects.get((objective, str(v.get("a")), str(v.get("b"))), {})
            verdict = str(v.get("verdict") or DASH)
            counts[verdict] = counts.get(verdict, 0) + 1
            rows.append(
                _Row(
                    [
                        _Cell(_key_cell(v.get("a"))),
                        _Cell(_key_cell(v.get("b"))),
                        _Cell(verdict, f"verdict {VERDICT_CLASS.get(verdict, '')}".strip()),
                        _Cell(_fmt_text(v.get("reason")), "wrap"),
                        _Cell(_fmt_int(v.get("n_days")), "num"),
                        _Cell(_fmt_int(v.get("min_track_record_days")), "num"),
                        _Cell(
                            f"{_fmt_float(e.get('cohens_d'), 3)} "
                            f"{_ci(e.get('d_ci_low'), e.get('d_ci_high'), lambda x: _fmt_float(x, 3))}"
                            if e
                            else DASH,
                            "num",
                        ),
                        _Cell(
                            f"{_fmt_float(e.get('sharpe_diff'))} "
                            f"{_ci(e.get('sharpe_diff_ci_low'), e.get('sharpe_diff_ci_high'), _fmt_float)}"
                            if e
                            else DASH,
                            "num",
                        ),
                    ],
                    VERDICT_CLASS.get(verdict, ""),
                    {"data-a": str(v.get("a")), "data-b": str(v.get("b"))},
                )
            )
        groups.append(_Group("benchmarks" if objective == "none" else objective, rows))
    tally = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    table = _Table(
        "verdicts-table",
        f"Verdict per pair, A vs B, from the corrected tests, effect sizes and track-record length; "
        f"N = {sum(counts.values())} pairs ({tally}).",
        headers,
        groups,
    )
    return Section("verdicts", "Verdicts and effect sizes", [TableBlock(table)])


# ----------------------------------------------------------------------------- PSR / DSR / PBO


def _sharpe_inference(ctx: SectionContext) -> Section | None:
    sharpe = _get(ctx.results, "sharpe", default={}) or {}
    trials = _get(ctx.results, "trials", default={}) or {}
    pbo = _get(ctx.results, "overfitting", default={}) or {}
    if _as_float(pbo.get("pbo")) is None:
        pbo = {}  # the stage ran without enough variants for CSCV
    if not sharpe and not pbo:
        return None
    blocks: list[Figure | Text | TableBlock] = []
    if trials:
        blocks.append(
            Text(
                Markup(
                    "The deflated Sharpe ratio accounts for <strong>{}</strong> trials ({} from tuning, {} "
                    "reported variants; source: {})."
                ).format(
                    _fmt_int(trials.get("n_trials")),
                    _fmt_int(trials.get("from_tuning")),
                    _fmt_int(trials.get("variants")),
                    _fmt_text(trials.get("source")),
                )
            )
        )
    if sharpe:
        cols = [
            _num("sharpe", "Sharpe", _fmt_float, "Annualised (365 days), net of costs"),
            _num(
                "psr",
                "PSR",
                _fmt_pct,
                "Probabilistic Sharpe ratio, P(true SR > 0) (Bailey & López de Prado 2012)",
            ),
            _num(
                "dsr",
                "DSR",
                _fmt_pct,
                "Deflated Sharpe ratio, PSR against the expected max of N trials (2014)",
            ),
            _num("n_trials", "trials", _fmt_int),
            _num("min_track_record_days", "MinTRL (days)", _fmt_int, "Minimum track record length at 95%"),
            _num("skew", "skew", _fmt_float),
            _num("kurtosis", "kurtosis", _fmt_float),
        ]
        rows = []
        for key in sorted(sharpe, key=lambda k: _key_rank(str(k), ctx.objectives)):
            rec = sharpe[key] if isinstance(sharpe[key], Mapping) else {}
            base = _record_row(rec, cols)
            dsr = _as_float(rec.get("dsr"))
            rows.append(
                _Row(
                    [_Cell(_swatch(str(key))), *base.cells],
                    "sig" if dsr is not None and dsr > 0.95 else "",
                    {"data-variant": str(key)},
                )
            )
        blocks.append(
            TableBlock(
                _Table(
                    "sharpe-table",
                    f"Sharpe ratio inference per variant; N = {len(rows)} variants. "
                    "Highlighted: DSR > 95% (skill unlikely to be luck after the trials).",
                    [_Header("variant"), *_headers(cols)],
                    [_Group(None, rows)],
                )
            )
        )
    if pbo:
        value = _as_float(pbo.get("pbo"))
        text = Markup(
            "Probability of backtest overfitting (CSCV over {} variants and {} splits): <strong>{}</strong>"
        ).format(_fmt_int(pbo.get("n_variants")), _fmt_int(pbo.get("n_splits")), _fmt_pct(value))
        if value is not None:
            text += Markup(
                " — the in-sample best variant ranks below the out-of-sample median in {} of splits{}."
            ).format(_fmt_pct(value, 0), "; a warning sign" if value > 0.5 else "")
        blocks.append(Text(text))
        logits = pbo.get("logits") or []
        if isinstance(logits, list) and logits:
            blocks.append(
                Figure(
                    _figure_html(charts.pbo_logits_figure(logits), "pbo-logits"),
                    "Logits of the out-of-sample relative rank of the in-sample best variant; "
                    f"N = {len(logits):,} splits. PBO is the share at or below 0 "
                    "(Bailey, Borwein, López de Prado & Zhu 2017).",
                )
            )
    return Section("sharpe", "Sharpe inference and overfitting", blocks)


# ----------------------------------------------------------------------------- regimes and quarters


def _pairwise_table(
    table_id: str, caption: str, records: Sequence[Mapping[str, Any]], alpha: float
) -> _Table:
    cols = [
        _txt("a", "A", _key_cell),
        _txt("b", "B", _key_cell),
        _txt("test", "test"),
        _num("statistic", "statistic", lambda v: _fmt_float(v, 3)),
        _num("p_value", "p", _fmt_p),
        _num("p_holm", "p (Holm)", _fmt_p),
        _num("p_bh", "p (BH)", _fmt_p),
    ]
    rows = []
    for r in records:
        holm, bh = _as_float(r.get("p_holm")), _as_float(r.get("p_bh"))
        sig = bool(r.get("significant")) if holm is None else holm < alpha
        cls = "sig" if sig else ("sig-bh" if bh is not None and bh < alpha else "")
        rows.append(
            _record_row(r, cols, cls=cls, attrs={"data-a": str(r.get("a")), "data-b": str(r.get("b"))})
        )
    return _Table(table_id, caption, _headers(cols), [_Group(None, rows)])


def _regimes(ctx: SectionContext) -> Section | None:
    regimes = _get(ctx.results, "regimes", default={}) or {}
    metrics = _records(regimes.get("metrics"))
    if not metrics:
        return None
    days = _get(regimes, "days", default={}) or {}
    intro = Markup("Regimes: {}.").format(_fmt_text(regimes.get("definition")))
    if days:
        intro += Markup(" Days per regime: {}.").format(
            ", ".join(f"{k} {_fmt_int(v)}" for k, v in days.items())
        )
    cols = [
        _num("n_days", "N", _fmt_int),
        _num("cagr", "CAGR", _fmt_pct),
        _num("sharpe", "Sharpe", _fmt_float),
        _num("volatility", "Vol", _fmt_pct),
        _num("max_drawdown", "Max DD", _fmt_pct),
    ]
    groups = []
    for regime in dict.fromkeys(str(m.get("regime")) for m in metrics):
        recs = sorted(
            (m for m in metrics if str(m.get("regime")) == regime),
            key=lambda m: _key_rank(str(m.get("key")), ctx.objectives),
        )
        groups.append(
            _Group(
                regime, [_Row([_Cell(_swatch(str(m.get("key")))), *_record_row(m, cols).cells]) for m in recs]
            )
        )
    blocks: list[Figure | Text | TableBlock] = [
        Text(intro),
        Figure(
            _figure_html(charts.regime_sharpe_figure(metrics), "regimes"),
            "Annualised Sharpe ratio of daily net returns within each regime (365 days); "
            "hatched: second objective.",
        ),
        TableBlock(
            _Table(
                "regimes-table",
                f"Performance by regime, net of costs; N = {len(metrics)} regime × variant cells.",
                [_Header("variant"), *_headers(cols)],
                groups,
            ),
            "Performance by regime",
        ),
    ]
    tests = _records(regimes.get("tests"))
    if tests:
        alpha = _as_float(_get(ctx.results, "tests", "alpha")) or 0.05
        table = _pairwise_table(
            "regime-tests-table",
            f"Pairwise tests within each regime; N = {len(tests)} tests. "
            f"Highlighted: p (Holm) < α = {alpha:g}; light: p (BH) < α only.",
            sorted(tests, key=lambda r: str(r.get("regime"))),
            alpha,
        )
        regime_col = _Header("regime")
        rows = [
            _Row([_Cell(_fmt_text(r.get("regime"))), *row.cells], row.cls, row.attrs)
            for r, row in zip(
                sorted(tests, key=lambda r: str(r.get("regime"))), table.groups[0].rows, strict=True
            )
        ]
        blocks.append(
            TableBlock(
                _Table(table.id, table.caption, [regime_col, *table.headers], [_Group(None, rows)]),
                "Tests by regime",
            )
        )
    return Section("regimes", "Market regimes", blocks)


def _quarters(ctx: SectionContext) -> Section | None:
    quarters = _records(_get(ctx.results, "quarters"))
    if not quarters:
        return None
    labels = sorted({str(q.get("quarter")) for q in quarters})
    cols = [
        _txt("quarter", "quarter"),
        _num("return", "return", _fmt_pct),
        _num("sharpe", "Sharpe", _fmt_float),
        _num("volatility", "Vol", _fmt_pct),
    ]
    rows = [
        _Row([_Cell(_swatch(str(q.get("key")))), *_record_row(q, cols).cells])
        for q in sorted(
            quarters, key=lambda q: (_key_rank(str(q.get("key")), ctx.objectives), str(q.get("quarter")))
        )
    ]
    return Section(
        "quarters",
        "Quarterly breakdown",
        [
            Figure(
                _figure_html(charts.quarters_heatmap_figure(quarters), "quarters"),
                f"Net return per calendar quarter, {labels[0]} – {labels[-1]}; N = {len(labels)} quarters. "
                "Red: loss; blue: gain.",
            ),
            TableBlock(
                _Table(
                    "quarters-table",
                    f"Return, annualised Sharpe ratio and volatility per quarter; N = {len(quarters)} cells.",
                    [_Header("variant"), *_headers(cols)],
                    [_Group(None, rows)],
                ),
                "Quarterly table",
            ),
        ],
    )


# ----------------------------------------------------------------------------- registry


SECTIONS: Mapping[str, tuple[str, Builder]] = {
    "universe": ("Universe construction", _universe),
    "rolling": ("Rolling Sharpe ratio", _rolling),
    "turnover": ("Turnover", _turnover),
    "fallbacks": ("Decision fallbacks", _fallbacks),
    "verdicts": ("Verdicts and effect sizes", _verdicts),
    "sharpe": ("Sharpe inference and overfitting", _sharpe_inference),
    "regimes": ("Market regimes", _regimes),
    "quarters": ("Quarterly breakdown", _quarters),
}
"""Section id -> (title, builder). The template places each id; a None result drops the section."""


def build_sections(ctx: SectionContext) -> dict[str, Section | None]:
    """Run every registered builder; ``None`` for sections whose stage is absent."""
    return {sid: build(ctx) for sid, (_, build) in SECTIONS.items()}


# ----------------------------------------------------------------------------- headline


def headline(results: Mapping[str, Any], objectives: Sequence[str]) -> list[Markup]:
    """Headline findings for a portfolio manager: verdicts per objective, DSR and PBO, one sentence each."""
    out: list[Markup] = []
    verdicts = _records(_get(results, "verdicts"))
    for objective, recs in _grouped(verdicts, objectives):
        decided = [v for v in recs if v.get("verdict") in ("a better", "b better")]
        label = Markup("<strong>{}</strong>").format(
            "benchmarks" if objective == "none" else objective.replace("_", " ")
        )
        if decided:
            wins = Markup("; ").join(
                Markup("<code>{}</code> beats <code>{}</code>").format(
                    *(
                        (v.get("a"), v.get("b"))
                        if v.get("verdict") == "a better"
                        else (v.get("b"), v.get("a"))
                    )
                )
                for v in decided
            )
            out.append(Markup("{}: {} (of {} pairs compared).").format(label, wins, len(recs)))
        else:
            kinds = sorted({str(v.get("verdict")) for v in recs})
            out.append(
                Markup("{}: no pair separates ({} pairs: {}).").format(label, len(recs), ", ".join(kinds))
            )
    sharpe = _get(results, "sharpe", default={}) or {}
    scored = [
        (k, d)
        for k, v in sharpe.items()
        if isinstance(v, Mapping) and (d := _as_float(v.get("dsr"))) is not None
    ]
    if scored:
        key, dsr = max(scored, key=lambda kd: kd[1])
        out.append(
            Markup("Highest deflated Sharpe ratio: <code>{}</code> at {} ({} trials){}.").format(
                key,
                _fmt_pct(dsr),
                _fmt_int(_get(results, "trials", "n_trials")),
                Markup(" — above 95%, unlikely to be luck")
                if dsr > 0.95
                else Markup(" — below 95%, not conclusive"),
            )
        )
    pbo = _as_float(_get(results, "overfitting", "pbo"))
    if pbo is not None:
        out.append(
            Markup("Probability of backtest overfitting: <strong>{}</strong>{}.").format(
                _fmt_pct(pbo), " (high)" if pbo > 0.5 else ""
            )
        )
    return out
