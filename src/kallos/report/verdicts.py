"""Report sections that answer the study's question: the primary family and its calibration.

The first screen's answer drawn from them is written by :func:`kallos.report.summary.summary_section`.

* :func:`primary_section` shows the declared family: one verdict per comparison with its Sharpe
  gap, simultaneous StepM interval and minimum detectable gap, the SPA and MCS, and the
  fallback robustness check.
* :func:`calibration_section` shows the measured size and power of those tests.

Everything is read from the ``results.json`` document (``primary``, ``calibration``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from markupsafe import Markup

from kallos.report.blocks import Figure, Section, SectionContext, TableBlock, Text, records
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
    num,
    record_row,
    split,
    swatch,
    txt,
)

__all__ = [
    "VERDICT_CLASS",
    "calibration_section",
    "level_text",
    "primary_section",
    "variant_label",
]

VERDICT_CLASS = {
    "a better": "v-a",
    "b better": "v-b",
    "no detectable difference": "v-none",
    "no difference": "v-none",
    "undetermined": "v-inc",
}
MIN_VARIANCE_NOTE = "minimum variance"
"""The zero forecaster's portfolio: with zero expected returns every objective is minimum variance."""


def variant_label(key: str) -> Markup:
    """A variant's swatch and key; the zero forecaster's is labelled as the minimum-variance portfolio."""
    label = swatch(key)
    if split(key)[0] == "zero":
        label += Markup(' <span class="note">({})</span>').format(MIN_VARIANCE_NOTE)
    return label


def level_text(primary: Mapping[str, Any]) -> str:
    """'nominal level 3%, calibrated for a 5% familywise false-positive rate' (or 'familywise α = 5%')."""
    alpha, target = as_float(primary.get("alpha")), as_float(primary.get("target_alpha"))
    if target is None or alpha is None or abs(alpha - target) < 1e-12:
        return f"familywise α = {fmt_pct(alpha, 0)}"
    return (
        f"nominal level {fmt_pct(alpha, 1)}, calibrated for a {fmt_pct(target, 0)} familywise "
        "false-positive rate on fat-tailed returns"
    )


def _code(key: Any) -> Markup:
    return Markup("<code>{}</code>").format(key)


# ----------------------------------------------------------------------------- primary section


def _interval_figure(verdicts: Sequence[Mapping[str, Any]], objectives: Sequence[str]) -> go.Figure:
    """Each comparison's annual Sharpe gap with its simultaneous StepM interval and detectable gap."""
    rows = sorted(
        verdicts,
        key=lambda v: objectives.index(str(v.get("objective"))) if v.get("objective") in objectives else 99,
    )
    labels = [f"{v.get('a')} − {v.get('b')}" for v in rows]
    diff = [as_float(v.get("sharpe_diff")) for v in rows]
    half = [
        (as_float(v.get("critical_value")) or math.nan) * (as_float(v.get("se")) or math.nan) for v in rows
    ]
    colour = [
        "#1e6b34"
        if v.get("verdict") == "a better"
        else "#a61b1b"
        if v.get("verdict") == "b better"
        else "#5b6470"
        for v in rows
    ]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=diff,
            y=labels,
            mode="markers",
            marker={"color": colour, "size": 9},
            error_x={"type": "data", "array": half, "visible": True, "color": "#9aa1a9"},
            name="ΔSharpe ± StepM critical value × SE",
            hovertemplate="%{y}: %{x:.2f}<extra></extra>",
        )
    )
    mde = [as_float(v.get("min_detectable_gap")) for v in rows]
    fig.add_trace(
        go.Scatter(
            x=mde,
            y=labels,
            mode="markers",
            marker={"symbol": "line-ns-open", "size": 14, "color": "#e4572e"},
            name="minimum detectable gap (80% power)",
        )
    )
    fig.add_vline(x=0.0, line_color="grey")
    fig.update_layout(
        template="plotly_white",
        height=max(260, 34 * len(rows) + 120),
        margin={"l": 300, "r": 20, "t": 40, "b": 40},
        xaxis_title="annual Sharpe ratio of A minus B (net of costs)",
        legend={"orientation": "h", "y": 1.08},
        font={"size": 12},
    )
    fig.update_yaxes(autorange="reversed")
    return fig


def primary_section(ctx: SectionContext) -> Section | None:
    """The declared primary family: verdicts, intervals, SPA, MCS, fallback robustness."""
    primary = get(ctx.results, "primary")
    if not isinstance(primary, Mapping):
        return None
    verdicts = records(primary.get("verdicts"))
    boot = primary.get("bootstrap") or {}
    stepm = primary.get("stepm") or {}
    crit = get(stepm, "critical_values_t", default={}) or {}
    blocks: list[Figure | Text | TableBlock] = [
        Text(
            Markup(
                "Each learned variant is compared with every baseline and the market-cap benchmark under "
                "the same objective, on the Sharpe ratio of daily net returns. The comparisons enter "
                "<code>arch</code>'s StepM (Romano and Wolf 2005) as studentised Sharpe-ratio differentials "
                "(the delta-method influence functions), both directions of every pair at once; StepM "
                "controls the familywise error ({}) and accounts for the dependence between the "
                "comparisons. Stationary bootstrap: {} resamples, expected block length {} days. "
                'First-step critical value on the t scale: {}. A verdict other than "a better" or '
                '"b better" states the smallest gap the sample would detect with {} power.'
            ).format(
                level_text(primary),
                fmt_int(boot.get("reps")),
                fmt_float(boot.get("block_size"), 1),
                fmt_float(crit.get("consistent")),
                fmt_pct(primary.get("power"), 0),
            )
        )
    ]
    if verdicts:
        blocks.append(
            Figure(
                figure_html(_interval_figure(verdicts, ctx.objectives), "primary-intervals"),
                f"Annual Sharpe gap of each declared comparison with its simultaneous StepM interval "
                f"(green: A better, red: B better, grey: no detectable difference) and the gap detectable "
                f"with 80% power (orange tick); N = {len(verdicts)} comparisons, "
                f"{fmt_int(primary.get('n_days'))} days each.",
            )
        )
        table_headers = [
            Header("A"),
            Header("B"),
            Header("verdict"),
            Header("Sharpe A", "num"),
            Header("Sharpe B", "num"),
            Header("ΔSharpe", "num", "Annual Sharpe ratio of A minus B (ddof 1, 365 days)"),
            Header("SE", "num", "Standard error of ΔSharpe (stationary-bootstrap long-run variance)"),
            Header("t", "num"),
            Header("min. detectable gap", "num", "Smallest true gap detected with the stated power"),
            Header("mean return", "num", "Secondary primary result: StepM on mean returns"),
            Header("reason"),
        ]
        groups = []
        counts: dict[str, int] = {}
        for objective in dict.fromkeys(str(v.get("objective")) for v in verdicts):
            rows = []
            for v in (v for v in verdicts if str(v.get("objective")) == objective):
                verdict = str(v.get("verdict") or DASH)
                counts[verdict] = counts.get(verdict, 0) + 1
                cls = VERDICT_CLASS.get(verdict, "")
                rows.append(
                    Row(
                        [
                            Cell(variant_label(str(v.get("a")))),
                            Cell(variant_label(str(v.get("b")))),
                            Cell(verdict, f"verdict {cls}".strip()),
                            Cell(fmt_float(v.get("sharpe_a")), "num"),
                            Cell(fmt_float(v.get("sharpe_b")), "num"),
                            Cell(fmt_float(v.get("sharpe_diff"), signed=True), "num"),
                            Cell(fmt_float(v.get("se")), "num"),
                            Cell(fmt_float(v.get("t_stat")), "num"),
                            Cell(fmt_float(v.get("min_detectable_gap")), "num"),
                            Cell(
                                f"{fmt_pct(v.get('mean_diff_annual'), 1, signed=True)} "
                                f"({fmt_text(v.get('mean_verdict'))})",
                                "num",
                            ),
                            Cell(fmt_text(v.get("reason")), "wrap"),
                        ],
                        cls,
                        {"data-a": str(v.get("a")), "data-b": str(v.get("b"))},
                    )
                )
            groups.append(Group(objective, rows))
        tally = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        blocks.append(
            TableBlock(
                Table(
                    "verdicts-table",
                    f"Primary verdicts, A (learned) vs B (comparator); N = {len(verdicts)} "
                    f"comparisons ({tally}).",
                    table_headers,
                    groups,
                )
            )
        )
    spa = records(primary.get("spa"))
    if spa:
        cols = [
            txt("objective", "objective"),
            txt("benchmark", "best comparator", lambda k: variant_label(str(k)) if k else DASH),
            txt("models", "learned variants", lambda m: ", ".join(map(str, m or [])) or DASH),
            num("p_consistent", "p (consistent)", fmt_p),
            num("p_lower", "p (lower)", fmt_p),
            num("p_upper", "p (upper)", fmt_p),
        ]
        blocks.append(
            TableBlock(
                Table(
                    "spa-table",
                    "Hansen (2005) SPA test per objective, H0: no learned variant beats the best comparator "
                    "(chosen ex post by its Sharpe ratio, which makes the test harder to pass); "
                    f"N = {len(spa)} objectives.",
                    headers(cols),
                    [Group(None, [record_row(r, cols, cls="sig" if r.get("rejected") else "") for r in spa])],
                )
            )
        )
    mcs = records(get(primary, "mcs", "variants"))
    if mcs:
        ordered = sorted(mcs, key=lambda r: -(as_float(r.get("p_value")) or 0.0))
        cols = [
            txt("variant", "variant", lambda k: variant_label(str(k))),
            num("p_value", "MCS p-value", fmt_p),
            txt("included", "in the set", lambda b: "yes" if b else "no"),
        ]
        blocks.append(
            TableBlock(
                Table(
                    "mcs-table",
                    "Model confidence set (Hansen, Lunde and Nason 2011, R method, loss = −Sharpe "
                    "performance series) at "
                    f"{fmt_pct(1 - (as_float(primary.get('alpha')) or 0.05), 0)}: the "
                    f"variants not significantly worse than the best; N = {len(mcs)} variants.",
                    headers(cols),
                    [
                        Group(
                            None,
                            [record_row(r, cols, cls="sig" if r.get("included") else "") for r in ordered],
                        )
                    ],
                )
            )
        )
    fallback = records(primary.get("fallback_robustness"))
    if fallback:
        cols = [
            txt("objective", "objective"),
            txt("a", "A", lambda k: variant_label(str(k))),
            txt("b", "B", lambda k: variant_label(str(k))),
            num("fallback_share", "rebalances with a fallback", fmt_pct),
            num("n_days_clean", "days without", fmt_int),
            num("sharpe_diff_clean", "ΔSharpe on those days", lambda x: fmt_float(x, signed=True)),
            num("p_value_clean", "p", fmt_p),
            num("p_holm_clean", "p (Holm)", fmt_p),
        ]
        blocks.append(
            TableBlock(
                Table(
                    "fallback-robustness-table",
                    "Fallbacks do not blur comparisons: the share of rebalances where either side's "
                    "optimiser "
                    "fell back (e.g. max_sharpe to minimum volatility), and the Sharpe comparison "
                    "restricted to "
                    "the days whose holdings came from no fallback (a robustness check, not a verdict; Holm "
                    f"across comparisons); N = {len(fallback)} comparisons.",
                    headers(cols),
                    [Group(None, [record_row(r, cols) for r in fallback])],
                ),
                "Fallback robustness",
            )
        )
    return Section("verdicts", "Primary comparisons and verdicts", blocks)


# ----------------------------------------------------------------------------- calibration


def _power_figure(power: Sequence[Mapping[str, Any]]) -> go.Figure:
    fig = go.Figure()
    styles = {"mean_shift": "solid", "vol_reduction": "dash"}
    series = (
        ("verdict_all", "Kallos verdict (all comparisons)", "#e4572e"),
        ("verdict_min_pair", "Kallos verdict (hardest comparison)", "#f29e4c"),
        ("oracle_family", "oracle, family critical value", "#2b2d42"),
        ("predicted", "predicted from the study's SE", "#8d99ae"),
    )
    for form in dict.fromkeys(str(r.get("form")) for r in power):
        rows = sorted(
            (r for r in power if str(r.get("form")) == form), key=lambda r: as_float(r.get("gap")) or 0
        )
        gaps = [as_float(r.get("gap")) for r in rows]
        for key, name, colour in series:
            fig.add_trace(
                go.Scatter(
                    x=gaps,
                    y=[as_float(r.get(key)) for r in rows],
                    mode="lines+markers",
                    name=f"{name}, {form.replace('_', ' ')}",
                    line={"color": colour, "dash": styles.get(form, "dot")},
                )
            )
    fig.add_hline(y=0.95, line_dash="dot", line_color="#1e6b34")
    fig.update_layout(
        template="plotly_white",
        height=420,
        margin={"l": 60, "r": 20, "t": 30, "b": 50},
        xaxis_title="planted annual Sharpe gap",
        yaxis_title="share of replications",
        yaxis_tickformat=".0%",
        font={"size": 12},
    )
    return fig


def calibration_section(ctx: SectionContext) -> Section | None:
    """Size and power of the primary tests, measured on the study's own returns."""
    cal = get(ctx.results, "calibration")
    if not isinstance(cal, Mapping):
        return None
    settings = cal.get("settings") or {}
    band = cal.get("size_band") or [0.03, 0.07]
    blocks: list[Figure | Text | TableBlock] = [
        Text(
            Markup(
                "A test is only as good as its false-positive rate and its power. The study's own daily net "
                "returns are resampled with a stationary bootstrap (expected block {} days), after "
                "recentring "
                "every variant to a common Sharpe ratio of {} (or to a common mean), so the null holds "
                "exactly while the fat tails and cross-correlation stay real; then an annual Sharpe gap is "
                "planted on {} as a mean shift or as a volatility reduction at equal mean. {} replications "
                "per null, {} per planted edge, {} bootstrap resamples per test. Run "
                "<code>python benchmarks/calibration.py</code> for the full-size version."
            ).format(
                fmt_float(cal.get("block_size"), 1),
                fmt_float(cal.get("null_sharpe")),
                _code(cal.get("planted")),
                fmt_int(settings.get("size_reps")),
                fmt_int(settings.get("power_reps")),
                fmt_int(settings.get("inner_reps")),
            )
        )
    ]
    size = records(cal.get("size"))
    if size:
        cols = [
            txt("null", "null simulated"),
            txt("test", "test"),
            txt("applies", "its H0 holds", lambda b: "yes" if b else "no (info)"),
            num("rejection_rate", "rejection rate", fmt_pct),
            txt("ci", "95% interval", lambda x: x or DASH),
            num("n_reps", "replications", fmt_int),
        ]
        rows = []
        for r in size:
            rec = {**r, "ci": f"[{fmt_pct(r.get('ci_low'))}, {fmt_pct(r.get('ci_high'))}]"}
            ok = r.get("within_band")
            rows.append(record_row(rec, cols, cls="" if not r.get("applies") else ("sig" if ok else "warn")))
        blocks.append(
            TableBlock(
                Table(
                    "calibration-size-table",
                    f"Size at α = {fmt_text(settings.get('alpha'))}: the share of replications "
                    "rejecting under a "
                    f"true null (target band {fmt_pct(band[0], 0)}–{fmt_pct(band[1], 0)} where the "
                    "test's own H0 is "
                    "the simulated one).",
                    headers(cols),
                    [Group(None, rows)],
                )
            )
        )
    power = records(cal.get("power"))
    if power:
        if len({r.get("gap") for r in power}) > 1:
            blocks.append(
                Figure(
                    figure_html(_power_figure(power), "calibration-power"),
                    "Power of the verdict rule against planted Sharpe gaps, beside an oracle that "
                    "knows the true "
                    "standard deviation of the gap and the power the study's standard error predicts; dotted "
                    "line at 95%.",
                )
            )
        cols = [
            txt("form", "edge", lambda f: fmt_text(f).replace("_", " ")),
            num("gap", "gap", fmt_float),
            num("verdict_all", "called better than all", fmt_pct),
            num("verdict_min_pair", "hardest comparison", fmt_pct),
            num("false_verdicts", "any wrong verdict", fmt_pct),
            num("spa", "SPA rejects", fmt_pct),
            num("oracle_family", "oracle (family)", fmt_pct),
            num("oracle_single", "oracle (single test)", fmt_pct),
            num("predicted", "predicted", fmt_pct),
            txt("hardest_comparator", "hardest comparator"),
        ]
        blocks.append(
            TableBlock(
                Table(
                    "calibration-power-table",
                    f"Power against an edge planted on {cal.get('planted')} (the other variants at "
                    "the null's "
                    f"common Sharpe ratio); N = {fmt_int(settings.get('power_reps'))} replications per row.",
                    headers(cols),
                    [Group(None, [record_row(r, cols) for r in power])],
                )
            )
        )
    return Section("calibration", "Calibration: size and power of the primary tests", blocks)
