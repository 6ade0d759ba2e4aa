"""The first screen of the report: the one writer of its findings.

:func:`summary_section` is the "Summary" section. Its boxed headline answers the study's question
from the declared primary family (which learned variants beat which comparators after StepM, the
SPA p-values and the model confidence set, the smallest gap the data could show, forecast skill
against the zero forecast), then the highest deflated Sharpe ratio and the probability of
backtest overfitting; the paragraph below it says what was run (period, universe, costs), how the
net Sharpe ratios rank under each objective, and what the exploratory battery found. Each finding
is written once, here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

from kallos.report.blocks import Headline, Section, SectionContext, Text, records
from kallos.report.sections import adjusted_key, is_significant
from kallos.report.tables import (
    DASH,
    as_float,
    fmt_float,
    fmt_int,
    fmt_p,
    fmt_pct,
    fmt_text,
    get,
    period_text,
    split,
)
from kallos.report.verdicts import level_text

__all__ = ["forecaster_labels", "summary_section"]


def _join(items: Sequence[Markup | str], last: str = "and") -> Markup:
    items = [Markup("{}").format(i) if not isinstance(i, Markup) else i for i in items]
    if len(items) <= 1:
        return items[0] if items else Markup("")
    return Markup(", ").join(items[:-1]) + Markup(f" {last} ") + items[-1]


def _code(key: Any) -> Markup:
    return Markup("<code>{}</code>").format(key)


def forecaster_labels(results: Mapping[str, Any]) -> dict[str, str]:
    """Display label of each forecaster named in ``results["forecasts"]["forecasters"]``.

    The list is written from the registered specs (:meth:`kallos.forecast.spec.ForecasterSpec.display`),
    so a plug-in's label reaches the headline without any edit here; a name missing from it is
    shown as itself.
    """
    return {
        str(r["name"]): str(r.get("label") or r["name"])
        for r in records(get(results, "forecasts", "forecasters"))
        if r.get("name")
    }


def _named(name: str, labels: Mapping[str, str]) -> Markup:
    """``GRU (<code>gru</code>)``, or just the code where the label is the name itself."""
    label = labels.get(name, name)
    return _code(name) if label == name else Markup("{} ({})").format(label, _code(name))


# ----------------------------------------------------------------------------- the answer


def _verdict_sentence(primary: Mapping[str, Any], labels: Mapping[str, str]) -> Markup:
    verdicts = records(primary.get("verdicts"))
    declared = get(primary, "declared", default={}) or {}
    learned = [str(x) for x in declared.get("learned") or []]
    comparators = [*map(str, declared.get("baselines") or []), str(declared.get("benchmark") or "")]
    head = Markup(
        "<strong>Do learned forecasts build better portfolios?</strong> The primary family, declared "
        "before any test ran, compares {} with {} under each objective ({} comparisons, net daily returns"
    ).format(
        _join([_named(n, labels) for n in learned]) or DASH,
        _join(
            [
                _code(n) if n != "zero" else Markup("<code>zero</code> (minimum variance)")
                for n in comparators
                if n
            ]
        ),
        len(verdicts),
    )
    period = primary.get("period") or {}
    if period:
        head += Markup(", {}").format(period_text(period.get("start"), period.get("end")))
    head += Markup("). After Romano-Wolf StepM on Sharpe ratios ({}), ").format(level_text(primary))
    wins = [v for v in verdicts if v.get("verdict") == "a better"]
    losses = [v for v in verdicts if v.get("verdict") == "b better"]
    if not wins and not losses:
        return head + Markup("<strong>no learned variant differs detectably from any comparator</strong>.")

    def beats(v: Mapping[str, Any], winner: str, loser: str, sign: float) -> Markup:
        gap = (as_float(v.get("sharpe_diff")) or 0.0) * sign
        return Markup("{} beats {} (ΔSharpe {})").format(
            _code(v[winner]), _code(v[loser]), fmt_float(gap, signed=True)
        )

    parts = [
        Markup("<strong>{}</strong>").format(_join([beats(v, *side) for v in group]))
        for group, side in ((wins, ("a", "b", 1.0)), (losses, ("b", "a", -1.0)))
        if group
    ]
    rest = len(verdicts) - len(wins) - len(losses)
    return (
        head
        + _join(parts, "while")
        + Markup("; the other {} comparisons show no detectable difference.").format(rest)
    )


def _spa_mcs_sentence(primary: Mapping[str, Any]) -> Markup | None:
    spa = records(primary.get("spa"))
    mcs = get(primary, "mcs", default={}) or {}
    bits = []
    if spa:
        bits.append(
            Markup("Hansen's SPA test of whether any learned variant beats the best comparator: {}").format(
                _join(
                    [
                        Markup("{} p = {} (best comparator {})").format(
                            fmt_text(r.get("objective")),
                            fmt_p(r.get("p_consistent")),
                            _code(r.get("benchmark")),
                        )
                        for r in spa
                    ]
                )
            )
        )
    included = mcs.get("included") or []
    if included:
        bits.append(
            Markup(
                "the {} model confidence set (Hansen, Lunde and Nason 2011) holds {} of {} variants: {}"
            ).format(
                fmt_pct(1 - (as_float(primary.get("alpha")) or 0.05), 0),
                len(included),
                len(records(mcs.get("variants"))),
                _join([_code(k) for k in included]),
            )
        )
    return Markup("; ").join(bits) + Markup(".") if bits else None


def _power_sentence(primary: Mapping[str, Any], calibration: Mapping[str, Any] | None) -> Markup | None:
    gaps = [
        g
        for v in records(primary.get("verdicts"))
        if (g := as_float(v.get("min_detectable_gap"))) is not None
    ]
    if not gaps:
        return None
    gaps.sort()
    n = as_float(primary.get("n_days")) or 0
    years = n / 365.0
    median = gaps[len(gaps) // 2]
    text = Markup(
        "What the data can show: a true annual Sharpe gap smaller than <strong>{}</strong> (median over "
        "comparisons; range {}–{}) would likely go unnoticed in {:.1f} years of daily data ({} power "
        "inside this family)"
    ).format(
        fmt_float(median),
        fmt_float(gaps[0]),
        fmt_float(gaps[-1]),
        years,
        fmt_pct(as_float(primary.get("power")) or 0.8, 0),
    )
    if calibration:
        size = [r for r in records(calibration.get("size")) if r.get("applies")]
        rates = [x for r in size if (x := as_float(r.get("rejection_rate"))) is not None]
        power = [r for r in records(calibration.get("power")) if as_float(r.get("gap")) == 2.0]
        if rates:
            text += Markup(
                "; measured on this study's own returns, the tests' false-positive rates are {}–{}"
            ).format(fmt_pct(min(rates)), fmt_pct(max(rates)))
        if power:
            text += Markup(" and a planted Sharpe gap of 2 is called in {} of replications").format(
                _join(
                    [
                        Markup("{} ({})").format(
                            fmt_pct(r.get("verdict_all"), 0), fmt_text(r.get("form")).replace("_", " ")
                        )
                        for r in power
                    ]
                )
            )
    return text + Markup(".")


def _skill_sentence(results: Mapping[str, Any], learned: Sequence[str]) -> Markup | None:
    labels = forecaster_labels(results)
    overall = {
        str(r.get("forecaster")): r
        for r in records(get(results, "forecasts", "overall"))
        if str(r.get("coin_id")) == "all"
    }
    dm = {
        str(r.get("forecaster")): r
        for r in records(get(results, "forecast_evaluation", "dm_tests"))
        if str(r.get("coin_id")) == "all" and r.get("baseline") == "zero"
    }
    pt = {
        str(r.get("forecaster")): r
        for r in records(get(results, "forecast_evaluation", "pt_tests"))
        if str(r.get("coin_id")) == "all"
    }
    parts = []
    for name in learned:
        o = overall.get(name)
        if not o:
            continue
        r2 = as_float(o.get("r2_oos"))
        d = dm.get(name, {})
        stat, p = as_float(d.get("dm_stat")), d.get("p_value")
        verdict = "no better than zero"
        if stat is not None and (as_float(p) or 1.0) < 0.05:
            verdict = "better than zero" if stat < 0 else "worse than zero"
        text = Markup(
            "{} R²<sub>oos</sub> {} ({}: Diebold-Mariano p = {}), directional accuracy {} against {} "
            "for always "
            "predicting the more frequent sign (Pesaran-Timmermann robust p = {})"
        ).format(
            _named(name, labels),
            fmt_pct(r2, 1, signed=True),
            verdict,
            fmt_p(p),
            fmt_pct(o.get("directional_accuracy")),
            fmt_pct(o.get("majority_accuracy")),
            fmt_p(pt.get(name, {}).get("hac_p_value")),
        )
        parts.append(text)
    if not parts:
        return None
    return Markup(
        "<strong>Forecast skill against the zero forecast</strong> (pooled over coins): {}."
    ).format(Markup("; ").join(parts))


def _answer(results: Mapping[str, Any]) -> list[Markup]:
    """The primary family's points, one per item (empty without a primary family)."""
    primary = get(results, "primary")
    if not isinstance(primary, Mapping):
        return []
    learned = [str(x) for x in get(primary, "declared", "learned", default=[]) or []]
    out = [_verdict_sentence(primary, forecaster_labels(results))]
    for extra in (
        _spa_mcs_sentence(primary),
        _power_sentence(primary, get(results, "calibration")),
        _skill_sentence(results, learned),
    ):
        if extra is not None:
            out.append(extra)
    return out


def _dsr_sentence(results: Mapping[str, Any]) -> Markup | None:
    sharpe = get(results, "sharpe", default={}) or {}
    scored = [
        (k, d)
        for k, v in sharpe.items()
        if isinstance(v, Mapping) and (d := as_float(v.get("dsr"))) is not None
    ]
    if not scored:
        return None
    key, dsr = max(scored, key=lambda kd: kd[1])
    return Markup("Highest deflated Sharpe ratio: <code>{}</code> at {} ({} trials){}.").format(
        key,
        fmt_pct(dsr),
        fmt_int(get(results, "trials", "n_trials")),
        Markup(" — above 95%, unlikely to be luck") if dsr > 0.95 else Markup(" — below 95%, not conclusive"),
    )


def _pbo_sentence(results: Mapping[str, Any]) -> Markup | None:
    pbo = as_float(get(results, "overfitting", "pbo"))
    if pbo is None:
        return None
    return Markup("Probability of backtest overfitting: <strong>{}</strong>{}.").format(
        fmt_pct(pbo), " (high)" if pbo > 0.5 else ""
    )


# ----------------------------------------------------------------------------- what was run


def _coverage_sentence(results: Mapping[str, Any]) -> Markup | None:
    strategies = get(results, "strategies", default={})
    study = get(results, "config", "study", default={})
    period = get(results, "tests", "period", default={}) or {}
    if not period and strategies:
        period = get(next(iter(strategies.values())), "period", default={})
    if not period:
        return None
    universe_coins = get(results, "data", "panel", "universe_coins") or []
    top_n = get(study, "universe", "top_n")
    cost = as_float(get(study, "backtest", "cost_bps"))
    text = Markup("The backtest covers <strong>{}</strong> ({} daily observations)").format(
        period_text(period.get("start"), period.get("end")), fmt_int(period.get("n_days"))
    )
    if top_n is not None and universe_coins:
        text += Markup(" on a monthly top-{} universe drawn from {} coins").format(
            fmt_int(top_n), fmt_int(len(universe_coins))
        )
    if cost is not None:
        text += Markup(", with trading costs of {} bps per unit of one-way turnover").format(f"{cost:g}")
    rebalance = get(study, "backtest", "rebalance")
    if rebalance:
        text += Markup(" and {} rebalancing").format(rebalance)
    return text + Markup(".")


def _ranking_sentences(
    results: Mapping[str, Any], objectives: Sequence[str], variants: Sequence[str], *, judge: bool
) -> list[Markup]:
    """Net Sharpe ranks per objective, benchmarks beside; with ``judge``, whether the best beats them.

    The judgement compares point estimates only; where the primary family answered (the
    headline), it is the tested verdict that says who beats whom, so ``judge`` is False there.
    """
    strategies = get(results, "strategies", default={})

    def sharpe(key: str) -> float | None:
        return as_float(get(strategies, key, "metrics_net", "sharpe"))

    def listing(pairs: Sequence[tuple[str, float]], name: Any) -> Markup:
        item = Markup("<code>{}</code> ({})")
        return Markup(", ").join(item.format(name(k), fmt_float(s)) for k, s in pairs)

    sentences = []
    benchmarks = [k for k in variants if split(k)[1] is None]
    bench = [(k, s) for k in benchmarks if (s := sharpe(k)) is not None]
    for objective in objectives:
        ranked = [(k, s) for k in variants if split(k)[1] == objective and (s := sharpe(k)) is not None]
        if not ranked:
            continue
        ranked.sort(key=lambda ks: -ks[1])
        text = Markup("Under <strong>{}</strong>, the net Sharpe ratios rank {}").format(
            objective, listing(ranked, lambda k: split(k)[0])
        )
        if bench:
            text += Markup("; benchmarks: {}").format(listing(bench, str))
            beaten = [k for k, s in bench if ranked[0][1] > s]
            if judge and len(beaten) == len(bench):
                text += Markup(". The best forecast-driven variant beats both benchmarks")
            elif judge and not beaten:
                text += Markup(". No forecast-driven variant beats the benchmarks")
        sentences.append(text + Markup("."))
    return sentences


def _battery_sentence(results: Mapping[str, Any]) -> Markup | None:
    tests = get(results, "tests", default={})
    pairwise = records(get(tests, "pairwise"))
    if not pairwise:
        return None
    alpha = as_float(tests.get("alpha")) or 0.05
    adj_key = adjusted_key(tests)
    sig = [r for r in pairwise if is_significant(r, adj_key, alpha)]
    return Markup(
        "The exploratory battery ran {} tests on every pair of variants; {} {} significant at α = {} "
        "after {} correction over that family. They describe how the return distributions differ "
        "and do not enter the verdicts."
    ).format(
        fmt_int(len(pairwise)),
        len(sig),
        "is" if len(sig) == 1 else "are",
        f"{alpha:g}",
        "Benjamini-Hochberg" if adj_key == "p_bh" else "Holm",
    )


# ----------------------------------------------------------------------------- the first screen


def summary_section(ctx: SectionContext) -> Section:
    """The first screen: the headline (the answer, DSR, PBO) and what was run, each said once.

    The headline box is left out when the run has none of the primary family, the Sharpe
    inference and the overfitting stage; the section itself is always there.
    """
    results = ctx.results
    headline = [
        s for s in (*_answer(results), _dsr_sentence(results), _pbo_sentence(results)) if s is not None
    ]
    paragraph = [
        s
        for s in (
            _coverage_sentence(results),
            *_ranking_sentences(results, ctx.objectives, ctx.variants, judge=not headline),
            _battery_sentence(results),
        )
        if s is not None
    ]
    blocks: list[Headline | Text] = [Headline(headline)] if headline else []
    blocks.append(Text(Markup(" ").join(paragraph)))
    return Section("summary", "Summary", blocks, cls="summary")
