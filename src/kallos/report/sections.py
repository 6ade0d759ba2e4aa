"""Section builders for the run's statistics, universe, fallbacks and exploratory tests.

Each builder takes a :class:`~kallos.report.blocks.SectionContext` (the ``results`` document,
the daily frames and the display order of objectives and variants) and returns a
:class:`~kallos.report.blocks.Section` made of blocks (tables, figures, paragraphs) or ``None``
when its stage is absent from the run, in which case the section and its table-of-contents entry
are left out. The ordered registry that places them is :data:`kallos.report.html.SECTIONS`.

Statistics keys rendered here follow the results.json contract: ``tests`` (the exploratory
pairwise battery), ``effects``, ``sharpe`` / ``trials`` (PSR, DSR, minimum track record length),
``overfitting`` (PBO), ``regimes``, ``quarters`` and ``universe`` (point-in-time constituents).
The "net of X bps" table beside the metrics (:func:`net_compare_table`) reads
``strategies.*.metrics_net_compare``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

import kallos.report.charts as charts
from kallos.evaluation.battery import TEST_LABELS
from kallos.report.blocks import Block, Figure, Section, SectionContext, TableBlock, Text, records
from kallos.report.tables import (
    DASH,
    Cell,
    Group,
    Header,
    Row,
    Table,
    as_float,
    figure_html,
    fmt_float,
    fmt_int,
    fmt_p,
    fmt_pct,
    fmt_text,
    get,
    headers,
    n_text,
    num,
    period_text,
    record_row,
    split,
    swatch,
    txt,
)

__all__ = [
    "adjusted_key",
    "fallbacks_section",
    "is_significant",
    "net_compare_table",
    "quarters_section",
    "regimes_section",
    "sharpe_section",
    "tests_section",
    "universe_section",
]


def _key_rank(key: str, objectives: Sequence[str]) -> tuple[int, tuple[int, str]]:
    strategy, objective = split(key)
    group = objectives.index(objective) if objective in objectives else len(objectives)
    return group, charts.strategy_rank(strategy)


def _objective_of(record: Mapping[str, Any]) -> str:
    value = record.get("objective")
    if value in (None, ""):
        value = record.get("group")
    return "none" if value in (None, "") else str(value)


def _key_cell(value: Any) -> Any:
    return swatch(str(value)) if value not in (None, "") else DASH


# ----------------------------------------------------------------------------- universe (issue 3)


def universe_section(ctx: SectionContext) -> Section | None:
    uni = get(ctx.results, "universe")
    if not isinstance(uni, Mapping):
        return None
    cons = records(uni.get("constituents"))
    sources = get(uni, "mcap_sources", default={}) or {}
    months = sorted({str(c.get("month")) for c in cons})
    absent = sorted({str(c.get("coin_id")) for c in cons if c.get("in_coingecko") is False})
    intro = Markup("Universe method <strong>{}</strong>").format(fmt_text(uni.get("method")))
    if uni.get("top_n") is not None:
        intro += Markup(", top {} coins each month").format(fmt_int(uni.get("top_n")))
    intro += Markup(
        ", chosen point in time from market caps known at the selection date "
        "(the last close before the month)."
    )
    if absent:
        intro += Markup(" <strong>Not in CoinGecko:</strong> {} (market cap from another source).").format(
            ", ".join(absent)
        )
    blocks: list[Block] = [Text(intro)]
    nested = [{"month": m, "constituents": [c for c in cons if str(c.get("month")) == m]} for m in months]
    if cons:
        blocks.append(
            Figure(
                figure_html(charts.universe_heatmap_figure(nested), "universe-pit"),
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
            Row(
                [
                    Cell(coin, "mono"),
                    Cell(fmt_text(sources.get(coin)) if coin in sources else ", ".join(used) or DASH, "wrap"),
                    Cell(in_cg, "flag warn" if in_cg == "no" else "flag"),
                    Cell(f"{len(mine):,}", "num"),
                ],
                "warn" if in_cg == "no" else "",
                {"data-coin": coin},
            )
        )
    blocks.append(
        TableBlock(
            Table(
                "universe-sources-table",
                f"How each coin's market cap was obtained; {len(coins)} coins over "
                f"{len(months)} months (N = {len(cons):,} coin-months).",
                [
                    Header("coin"),
                    Header("market cap source"),
                    Header("in CoinGecko"),
                    Header("months", "num"),
                ],
                [Group(None, rows)],
            )
        )
    )
    cols = [
        txt("month", "month"),
        txt("selection_date", "selected on"),
        num("rank", "rank", fmt_int),
        txt("coin_id", "coin"),
        num("market_cap", "market cap (USD)", lambda v: fmt_float(v, 0)),
        txt("mcap_source", "source"),
        txt("in_coingecko", "in CoinGecko"),
        num("benchmark_weight", "benchmark weight", fmt_pct),
    ]
    ordered = sorted(cons, key=lambda c: (str(c.get("month")), as_float(c.get("rank")) or math.inf))
    blocks.append(
        TableBlock(
            Table(
                "universe-constituents-table",
                f"Constituents by month, {months[0] if months else DASH} – {months[-1] if months else DASH}; "
                f"N = {len(cons):,} coin-months.",
                headers(cols),
                [Group(None, [record_row(c, cols) for c in ordered])],
            ),
            "Constituents by month",
        )
    )
    flagged = records(get(uni, "reconciliation", "flagged"))
    threshold = get(uni, "reconciliation", "threshold")
    if flagged or threshold is not None:
        rcols = [
            txt("coin_id", "coin"),
            txt("month", "month"),
            num("mean_abs_divergence", "mean |Δ|", fmt_pct),
            num("max_abs_divergence", "max |Δ|", fmt_pct),
            num("n_days", "days", fmt_int),
        ]
        blocks.append(
            TableBlock(
                Table(
                    "universe-reconciliation-table",
                    f"Market-cap reconciliation between sources: coin-months whose relative divergence "
                    f"exceeds {fmt_pct(threshold)}; N = {len(flagged)} flagged.",
                    headers(rcols),
                    [Group(None, [record_row(r, rcols, cls="warn") for r in flagged])],
                ),
                "Flagged coin-months",
                10,
            )
        )
    check = get(uni, "cmc_check", default={}) or {}
    cases = records(check.get("cases"))
    if check:
        ccols = [
            txt("month", "month", lambda m: fmt_text(m)[:7]),
            txt("coin_id", "coin"),
            txt("snapshot_date", "CMC snapshot", lambda d: fmt_text(d)[:10]),
            num("market_cap", "panel market cap", lambda v: fmt_float(v, 0)),
            num("cmc_market_cap", "CMC market cap", lambda v: fmt_float(v, 0)),
            num("disagreement", "disagreement", fmt_pct),
            num("market_cap_used", "market cap used", lambda v: fmt_float(v, 0)),
            txt("action", "action"),
        ]
        blocks.append(
            TableBlock(
                Table(
                    "universe-cmc-check-table",
                    "Market caps cross-checked against CoinMarketCap (mode "
                    f"{fmt_text(check.get('mode'))}): eligible coins whose market cap on the snapshot date "
                    f"disagrees with CMC's by more than {fmt_pct(check.get('max_disagreement'), 0)}; "
                    f"N = {len(cases)} coin-months.",
                    headers(ccols),
                    [Group(None, [record_row(r, ccols, cls="warn") for r in cases])],
                ),
                "Market-cap disagreements with CoinMarketCap",
                10,
            )
        )
    return Section("universe", "Universe construction", blocks)


# ----------------------------------------------------------------------------- fallbacks (decision chain)


def fallbacks_section(ctx: SectionContext) -> Section | None:
    rows = []
    for key in ctx.variants:
        if key not in ctx.portfolios:
            continue
        fb = ctx.portfolios[key].fallbacks
        detail = "; ".join(f"{k}: {v}" for k, v in fb.by_reason.items()) or DASH
        rows.append(
            Row(
                [
                    Cell(swatch(key)),
                    Cell(fmt_int(fb.count), "num"),
                    Cell(fmt_int(fb.rebalances), "num"),
                    Cell(fmt_pct(fb.share if fb.rebalances else None), "num"),
                    Cell(detail, "wrap"),
                ],
                "warn" if fb.count else "",
                {"data-variant": key},
            )
        )
    if not rows:
        return None
    table = Table(
        "fallbacks-table",
        "Rebalances on which the optimiser's requested objective failed and the decision fell back along "
        f"the chain; N = {len(rows)} variants.",
        [
            Header("variant"),
            Header("fallbacks", "num"),
            Header("rebalances", "num"),
            Header("share", "num"),
            Header("reasons (count)"),
        ],
        [Group(None, rows)],
    )
    return Section("fallbacks", "Decision fallbacks", [TableBlock(table)])


# ----------------------------------------------------------------------------- PSR / DSR / PBO


def sharpe_section(ctx: SectionContext) -> Section | None:
    sharpe = get(ctx.results, "sharpe", default={}) or {}
    trials = get(ctx.results, "trials", default={}) or {}
    pbo = get(ctx.results, "overfitting", default={}) or {}
    if as_float(pbo.get("pbo")) is None:
        pbo = {}  # the stage ran without enough variants for CSCV
    if not sharpe and not pbo:
        return None
    blocks: list[Block] = []
    if trials:
        blocks.append(
            Text(
                Markup("The deflated Sharpe ratio accounts for <strong>{}</strong> trials: {}.").format(
                    fmt_int(trials.get("n_trials")), fmt_text(trials.get("source"))
                )
            )
        )
    if sharpe:
        cols = [
            num("sharpe", "Sharpe", fmt_float, "Annualised (365 days), net of costs"),
            num(
                "psr",
                "PSR",
                fmt_pct,
                "Probabilistic Sharpe ratio, P(true SR > 0) (Bailey & López de Prado 2012)",
            ),
            num(
                "dsr",
                "DSR",
                fmt_pct,
                "Deflated Sharpe ratio, PSR against the expected max of N trials (2014)",
            ),
            num("n_trials", "trials", fmt_int),
            num("min_track_record_days", "MinTRL (days)", fmt_int, "Minimum track record length at 95%"),
            num("skew", "skew", fmt_float),
            num("kurtosis", "kurtosis", fmt_float),
        ]
        rows = []
        for key in sorted(sharpe, key=lambda k: _key_rank(str(k), ctx.objectives)):
            rec = sharpe[key] if isinstance(sharpe[key], Mapping) else {}
            base = record_row(rec, cols)
            dsr = as_float(rec.get("dsr"))
            rows.append(
                Row(
                    [Cell(swatch(str(key))), *base.cells],
                    "sig" if dsr is not None and dsr > 0.95 else "",
                    {"data-variant": str(key)},
                )
            )
        blocks.append(
            TableBlock(
                Table(
                    "sharpe-table",
                    f"Sharpe ratio inference per variant; N = {len(rows)} variants. "
                    "Highlighted: DSR > 95% (skill unlikely to be luck after the trials).",
                    [Header("variant"), *headers(cols)],
                    [Group(None, rows)],
                )
            )
        )
    if pbo:
        value = as_float(pbo.get("pbo"))
        text = Markup(
            "Probability of backtest overfitting (CSCV over {} variants and {} splits): <strong>{}</strong>"
        ).format(fmt_int(pbo.get("n_variants")), fmt_int(pbo.get("n_splits")), fmt_pct(value))
        if value is not None:
            text += Markup(
                " — the in-sample best variant ranks below the out-of-sample median in {} of splits{}."
            ).format(fmt_pct(value, 0), "; a warning sign" if value > 0.5 else "")
        blocks.append(Text(text))
        logits = pbo.get("logits") or []
        if isinstance(logits, list) and logits:
            blocks.append(
                Figure(
                    figure_html(charts.pbo_logits_figure(logits), "pbo-logits"),
                    "Logits of the out-of-sample relative rank of the in-sample best variant; "
                    f"N = {len(logits):,} splits. PBO is the share at or below 0 "
                    "(Bailey, Borwein, López de Prado & Zhu 2017).",
                )
            )
    return Section("sharpe", "Sharpe inference and overfitting", blocks)


# ----------------------------------------------------------------------------- regimes and quarters


def _pairwise_table(table_id: str, caption: str, records: Sequence[Mapping[str, Any]], alpha: float) -> Table:
    cols = [
        txt("a", "A", _key_cell),
        txt("b", "B", _key_cell),
        txt("test", "test"),
        num("statistic", "statistic", lambda v: fmt_float(v, 3)),
        num("p_value", "p", fmt_p),
        num("p_holm", "p (Holm)", fmt_p),
        num("p_bh", "p (BH)", fmt_p),
    ]
    rows = []
    for r in records:
        holm, bh = as_float(r.get("p_holm")), as_float(r.get("p_bh"))
        sig = bool(r.get("significant")) if holm is None else holm < alpha
        cls = "sig" if sig else ("sig-bh" if bh is not None and bh < alpha else "")
        rows.append(
            record_row(r, cols, cls=cls, attrs={"data-a": str(r.get("a")), "data-b": str(r.get("b"))})
        )
    return Table(table_id, caption, headers(cols), [Group(None, rows)])


def regimes_section(ctx: SectionContext) -> Section | None:
    regimes = get(ctx.results, "regimes", default={}) or {}
    metrics = records(regimes.get("metrics"))
    if not metrics:
        return None
    days = get(regimes, "days", default={}) or {}
    intro = Markup("Regimes: {}.").format(fmt_text(regimes.get("definition")))
    if days:
        intro += Markup(" Days per regime: {}.").format(
            ", ".join(f"{k} {fmt_int(v)}" for k, v in days.items())
        )
    cols = [
        num("n_days", "N", fmt_int),
        num("cagr", "CAGR", fmt_pct),
        num("sharpe", "Sharpe", fmt_float),
        num("volatility", "Vol", fmt_pct),
        num("max_drawdown", "Max DD", fmt_pct),
    ]
    groups = []
    for regime in dict.fromkeys(str(m.get("regime")) for m in metrics):
        recs = sorted(
            (m for m in metrics if str(m.get("regime")) == regime),
            key=lambda m: _key_rank(str(m.get("key")), ctx.objectives),
        )
        groups.append(
            Group(regime, [Row([Cell(swatch(str(m.get("key")))), *record_row(m, cols).cells]) for m in recs])
        )
    blocks: list[Block] = [
        Text(intro),
        Figure(
            figure_html(charts.regime_sharpe_figure(metrics), "regimes"),
            "Annualised Sharpe ratio of daily net returns within each regime (365 days); "
            "hatched: second objective.",
        ),
        TableBlock(
            Table(
                "regimes-table",
                f"Performance by regime, net of costs; N = {len(metrics)} regime × variant cells.",
                [Header("variant"), *headers(cols)],
                groups,
            ),
            "Performance by regime",
        ),
    ]
    tests = records(regimes.get("tests"))
    if tests:
        alpha = as_float(get(ctx.results, "tests", "alpha")) or 0.05
        table = _pairwise_table(
            "regime-tests-table",
            f"Pairwise tests within each regime; N = {len(tests)} tests. "
            f"Highlighted: p (Holm) < α = {alpha:g}; light: p (BH) < α only.",
            sorted(tests, key=lambda r: str(r.get("regime"))),
            alpha,
        )
        regime_col = Header("regime")
        rows = [
            Row([Cell(fmt_text(r.get("regime"))), *row.cells], row.cls, row.attrs)
            for r, row in zip(
                sorted(tests, key=lambda r: str(r.get("regime"))), table.groups[0].rows, strict=True
            )
        ]
        blocks.append(
            TableBlock(
                Table(table.id, table.caption, [regime_col, *table.headers], [Group(None, rows)]),
                "Tests by regime",
            )
        )
    return Section("regimes", "Market regimes", blocks)


def quarters_section(ctx: SectionContext) -> Section | None:
    quarters = records(get(ctx.results, "quarters"))
    if not quarters:
        return None
    labels = sorted({str(q.get("quarter")) for q in quarters})
    cols = [
        txt("quarter", "quarter"),
        num("return", "return", fmt_pct),
        num("sharpe", "Sharpe", fmt_float),
        num("volatility", "Vol", fmt_pct),
    ]
    rows = [
        Row([Cell(swatch(str(q.get("key")))), *record_row(q, cols).cells])
        for q in sorted(
            quarters, key=lambda q: (_key_rank(str(q.get("key")), ctx.objectives), str(q.get("quarter")))
        )
    ]
    return Section(
        "quarters",
        "Quarterly breakdown",
        [
            Figure(
                figure_html(charts.quarters_heatmap_figure(quarters), "quarters"),
                f"Net return per calendar quarter, {labels[0]} – {labels[-1]}; N = {len(labels)} quarters. "
                "Red: loss; blue: gain.",
            ),
            TableBlock(
                Table(
                    "quarters-table",
                    f"Return, annualised Sharpe ratio and volatility per quarter; N = {len(quarters)} cells.",
                    [Header("variant"), *headers(cols)],
                    [Group(None, rows)],
                ),
                "Quarterly table",
            ),
        ],
    )


# ----------------------------------------------------------------------------- net at a comparison cost


def net_compare_table(
    results: Mapping[str, Any], objectives: Sequence[str], variants: Sequence[str]
) -> Table | None:
    """Every variant's net metrics at ``backtest.compare_cost_bps`` (``metrics_net_compare``), beside
    the net Sharpe ratio at the study's own cost; None when the run has no comparison cost."""
    strategies = get(results, "strategies", default={}) or {}
    keys = [k for k in variants if isinstance(get(strategies, k, "metrics_net_compare"), Mapping)]
    if not keys:
        return None
    cost = as_float(get(results, "config", "study", "backtest", "cost_bps"))
    compare = as_float(get(strategies, keys[0], "metrics_net_compare", "cost_bps"))
    at = f"{compare:g} bps" if compare is not None else DASH
    cols = [
        num("total_return", "Total", fmt_pct, f"Total return net of {at} per side"),
        num("cagr", "CAGR", fmt_pct, f"CAGR net of {at} per side"),
        num("sharpe", "Sharpe", fmt_float, f"Annualised Sharpe ratio net of {at} per side"),
        num("sortino", "Sortino", fmt_float),
        num("calmar", "Calmar", fmt_float),
        num("max_drawdown", "Max DD", fmt_pct),
        num("turnover_annual", "TO / yr", lambda v: fmt_pct(v, 0), "One-way turnover per year"),
    ]
    own = f"{cost:g} bps" if cost is not None else "the study's cost"
    groups = []
    for objective in [*objectives, None]:
        rows = []
        for key in (k for k in keys if split(k)[1] == objective):
            entry = get(strategies, key, default={})
            rec = get(entry, "metrics_net_compare", default={})
            sharpe = as_float(rec.get("sharpe"))
            base = as_float(get(entry, "metrics_net", "sharpe"))
            delta = sharpe - base if sharpe is not None and base is not None else None
            rows.append(
                Row(
                    [
                        Cell(swatch(key)),
                        *record_row(rec, cols).cells,
                        Cell(fmt_float(delta, 2, signed=True), "num"),
                    ],
                    attrs={"data-variant": key},
                )
            )
        if rows:
            groups.append(Group(objective or "benchmarks", rows))
    caption = (
        f"Net of {at} per side: the same target weights traded at backtest.compare_cost_bps instead of "
        f"backtest.cost_bps = {own}; N = {len(keys)} variants. ΔSharpe: this Sharpe ratio minus the one "
        f"net of {own}."
    )
    return Table(
        "metrics-compare-table",
        caption,
        [
            Header("variant"),
            *headers(cols),
            Header("ΔSharpe", "num", f"Sharpe net of {at} minus net of {own}"),
        ],
        groups,
    )


# ----------------------------------------------------------------------------- exploratory battery


def adjusted_key(tests: Mapping[str, Any]) -> str:
    """The p-value key of the battery's correction: ``"p_holm"`` or ``"p_bh"``."""
    correction = str(tests.get("correction") or "holm").lower()
    return {"holm": "p_holm", "bh": "p_bh", "fdr_bh": "p_bh", "benjamini-hochberg": "p_bh"}.get(
        correction, "p_holm"
    )


def _p_label(adj_key: str) -> str:
    return {"p_holm": "p (Holm)", "p_bh": "p (BH)"}.get(adj_key, adj_key)


def is_significant(row: Mapping[str, Any], adj_key: str, alpha: float) -> bool:
    """Whether a pairwise test row passes at ``alpha`` on ``adj_key`` (else its ``significant`` flag)."""
    p = as_float(row.get(adj_key))
    if p is None:
        return bool(row.get("significant"))
    return p < alpha


def _tests_table(
    results: Mapping[str, Any], objectives: Sequence[str], *, only_significant: bool = False
) -> Table:
    """Pairwise tests grouped by objective.

    Rows significant after Holm get class ``sig``; rows significant only after BH get ``sig-bh``.
    """
    tests = get(results, "tests", default={})
    alpha = as_float(tests.get("alpha")) or 0.05
    adj_key = adjusted_key(tests)
    rows = [r for r in get(tests, "pairwise", default=[]) if isinstance(r, Mapping)]
    columns = [
        txt("a", "A", lambda v: swatch(str(v)) if v is not None else DASH),
        txt("b", "B", lambda v: swatch(str(v)) if v is not None else DASH),
        txt("test", "test", lambda v: TEST_LABELS.get(str(v), fmt_text(v))),
        num("statistic", "statistic", lambda v: fmt_float(v, 3)),
        num("p_value", "p", fmt_p, "Unadjusted p-value"),
        num("p_holm", "p (Holm)", fmt_p, "Holm-adjusted p-value (family-wise error)"),
        num("p_bh", "p (BH)", fmt_p, "Benjamini-Hochberg adjusted p-value (false discovery rate)"),
        num(
            "cohens_d",
            "Cohen's d",
            lambda v: fmt_float(v, 3),
            "Standardised mean difference of daily returns",
        ),
        num("mean_diff_annual", "Δ mean / yr", lambda v: fmt_pct(v, 2, signed=True), "Annualised A − B"),
        num("n", "N", fmt_int, "Daily observations"),
    ]
    table_headers = [
        *headers(columns),
        Header(
            "effect [95% CI]", "num", "The test's own effect size and confidence interval (name on hover)"
        ),
        Header("BH", "", f"p (BH) < α = {alpha:g} (false discovery rate)"),
        Header("significant", "", f"{_p_label(adj_key)} < α = {alpha:g}"),
    ]
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        grouped.setdefault(_objective_of(r), []).append(r)
    order = {o: i for i, o in enumerate(objectives)}
    groups = []
    n_shown = 0
    for group in sorted(grouped, key=lambda g: (order.get(g, len(order)), g)):
        out = []
        for r in grouped[group]:
            sig = is_significant(r, adj_key, alpha)
            bh = as_float(r.get("p_bh"))
            sig_bh = bh is not None and bh < alpha
            if only_significant and not (sig or sig_bh):
                continue
            base = record_row(r, columns)
            effect = as_float(r.get("effect"))
            effect_text = (
                DASH
                if effect is None
                else f"{fmt_float(effect, 3)} "
                f"[{fmt_float(r.get('ci_low'), 3)}, {fmt_float(r.get('ci_high'), 3)}]"
            )
            cells = [
                *base.cells,
                Cell(effect_text, "num", fmt_text(r.get("effect_name")) if r.get("effect_name") else ""),
                Cell("yes" if sig_bh else "no", "flag"),
                Cell("yes" if sig else "no", "flag"),
            ]
            cls = "sig" if sig else ("sig-bh" if sig_bh else "")
            out.append(
                Row(
                    cells,
                    cls,
                    {"data-a": str(r.get("a")), "data-b": str(r.get("b")), "data-test": str(r.get("test"))},
                )
            )
        n_shown += len(out)
        if out:
            groups.append(Group(group, out))
    period = get(tests, "period", default={})
    n_values = [period.get("n_days")] if period.get("n_days") is not None else [r.get("n") for r in rows]
    family = tests.get("family_size") or len(rows)
    caption = (
        ("Significant pairwise tests" if only_significant else "Pairwise tests")
        + " of daily net returns, A vs B, "
        f"{period_text(period.get('start'), period.get('end'))}; "
        f"{n_text(n_values, 'daily observations')}; family of {family} tests. "
        f"Correction: {tests.get('correction') or 'holm'}, "
        f"α = {alpha:g}; highlighted rows have {_p_label(adj_key)} < α, lightly highlighted only p (BH) < α."
    )
    return Table(
        "tests-significant-table" if only_significant else "tests-table", caption, table_headers, groups
    )


def tests_section(ctx: SectionContext) -> Section:
    """Every battery test on every pair; the significant ones first when the table is long."""
    everything = _tests_table(ctx.results, ctx.objectives)
    blocks: list[Block] = [
        Text(
            Markup(
                "Every battery test on every pair, corrected over the whole exploratory family; "
                "descriptive, not used for the verdicts."
            ),
            "note",
        )
    ]
    if everything.n_rows > 40:
        blocks += [
            TableBlock(_tests_table(ctx.results, ctx.objectives, only_significant=True)),
            TableBlock(everything, "All pairwise tests", 40),
        ]
    else:
        blocks.append(TableBlock(everything))
    return Section("tests", "Exploratory pairwise tests", blocks)
