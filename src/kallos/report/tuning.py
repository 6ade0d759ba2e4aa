"""The report's "Hyper-parameter tuning" section, from ``results["tuning"]`` (``kallos run --tune``).

Every neural (forecaster, coin, fold) job of the walk-forward is tuned by its own Optuna study
inside its training window (:mod:`kallos.forecast.tuned`). The section shows, per study, the
trial counts by state (complete, pruned, failed), the chosen trial's validation RMSE and
directional accuracy and its hyper-parameters, and a chart of every study's Pareto front of
(validation RMSE, directional accuracy) with the chosen trials marked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from markupsafe import Markup
from plotly.colors import qualitative

import kallos.report.charts as charts
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
    fmt_pct,
    fmt_text,
    get,
    swatch,
)

__all__ = ["STATE_COLUMNS", "chosen_params", "pareto_figure", "tuning_section", "tuning_table"]

STATE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("COMPLETE", "complete"),
    ("PRUNED", "pruned"),
    ("FAIL", "failed"),
)
"""Optuna trial states shown as columns (state, label); other states count in the total only."""

_OBJECTIVE_KEYS = ("number", "rmse", "directional_accuracy")
_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x")


def _studies(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    order = lambda s: (  # noqa: E731
        charts.strategy_rank(str(s.get("forecaster"))),
        str(s.get("coin_id")),
        str(s.get("fold")),
    )
    return sorted(records(get(results, "tuning", "studies")), key=order)


def chosen_params(studies: Sequence[Mapping[str, Any]]) -> list[str]:
    """Hyper-parameter names of the chosen trials, trainer's first, then the network's, then the rest.

    Parameters
    ----------
    studies : sequence of mapping
        ``results["tuning"]["studies"]``: each with ``chosen`` (trial number, ``rmse``,
        ``directional_accuracy`` and its parameters) and ``training`` / ``network`` (the same
        parameters split between the trainer and the network).
    """
    names: dict[str, None] = {}
    for part in ("training", "network", "chosen"):
        for s in studies:
            for k in get(s, part, default={}) or {}:
                if k not in _OBJECTIVE_KEYS:
                    names.setdefault(str(k), None)
    return list(names)


def _fmt_param(value: Any) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return fmt_text(value)
    if isinstance(value, int):
        return f"{value:,}"
    x = as_float(value)
    return DASH if x is None else f"{x:.3g}".replace("-", "−")


def _state(study: Mapping[str, Any], state: str) -> int:
    return int(as_float(get(study, "states", state)) or 0)


def tuning_table(studies: Sequence[Mapping[str, Any]]) -> Table:
    """One row per tuned study, grouped by forecaster: trial counts, the chosen trial and its parameters.

    Rows whose study has no completed trial get class ``warn``.
    """
    params = chosen_params(studies)
    table_headers = [
        Header("coin"),
        Header("fold", "", "Training cutoff of the walk-forward fold (the model serves the next quarter)"),
        Header("trials", "num", "Trials stored for the study, every state"),
        *(Header(label, "num", f"Trials in state {state}") for state, label in STATE_COLUMNS),
        Header("Pareto", "num", "Trials on the Pareto front of (validation RMSE, directional accuracy)"),
        Header("chosen #", "num", "Number of the chosen trial"),
        Header("RMSE", "num", "Validation RMSE of the chosen trial (log-return units)"),
        Header("DA", "num", "Validation directional accuracy of the chosen trial"),
        *(Header(p, "num") for p in params),
    ]
    groups: dict[str, list[Row]] = {}
    for s in studies:
        chosen = get(s, "chosen", default={}) or {}
        cells = [
            Cell(fmt_text(s.get("coin_id")), "mono"),
            Cell(fmt_text(s.get("fold")), "mono"),
            Cell(fmt_int(s.get("n_trials")), "num"),
            *(Cell(str(_state(s, state)), "num") for state, _ in STATE_COLUMNS),
            Cell(str(len(records(s.get("pareto")))), "num"),
            Cell(fmt_int(chosen.get("number")), "num"),
            Cell(fmt_float(chosen.get("rmse"), 4), "num"),
            Cell(fmt_pct(chosen.get("directional_accuracy")), "num"),
            *(Cell(_fmt_param(chosen.get(p)), "num") for p in params),
        ]
        attrs = {
            "data-forecaster": str(s.get("forecaster")),
            "data-coin": str(s.get("coin_id")),
            "data-fold": str(s.get("fold")),
        }
        cls = "warn" if _state(s, "COMPLETE") == 0 else ""
        groups.setdefault(str(s.get("forecaster")), []).append(Row(cells, cls, attrs))
    coins = {str(s.get("coin_id")) for s in studies}
    folds = {str(s.get("fold")) for s in studies}
    caption = (
        f"Chosen hyper-parameters per forecaster, coin and fold; N = {len(studies)} studies "
        f"({len(coins)} coins × {len(folds)} folds). RMSE and directional accuracy (DA) are the chosen "
        "trial's on the fold's validation block. Highlighted: no completed trial."
    )
    return Table(
        "tuning-table",
        caption,
        table_headers,
        [Group(Markup("{} models").format(swatch(f)), rows) for f, rows in groups.items()],
    )


def pareto_figure(studies: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Every study's Pareto front of (validation RMSE, directional accuracy), chosen trials starred.

    One line per study through its Pareto trials in order of RMSE, coloured by coin, marker
    symbol by forecaster; a dotted line marks 50% directional accuracy (the selection rule's
    threshold).

    Parameters
    ----------
    studies : sequence of mapping
        ``results["tuning"]["studies"]`` (``pareto`` and ``chosen`` trial records with ``rmse``
        and ``directional_accuracy``).
    """
    fig = go.Figure()
    coins = sorted({str(s.get("coin_id")) for s in studies})
    forecasters = sorted({str(s.get("forecaster")) for s in studies}, key=charts.strategy_rank)
    palette = qualitative.D3
    colour = {c: palette[i % len(palette)] for i, c in enumerate(coins)}
    symbol = {f: _SYMBOLS[i % len(_SYMBOLS)] for i, f in enumerate(forecasters)}
    shown: set[str] = set()
    for s in studies:
        coin, forecaster, fold = str(s.get("coin_id")), str(s.get("forecaster")), str(s.get("fold"))
        front = sorted(
            (
                (x, y, t.get("number"))
                for t in records(s.get("pareto"))
                if (x := as_float(t.get("rmse"))) is not None
                and (y := as_float(t.get("directional_accuracy"))) is not None
            ),
            key=lambda p: p[0],
        )
        if not front:
            continue
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in front],
                y=[p[1] for p in front],
                customdata=[p[2] for p in front],
                mode="lines+markers",
                name=coin,
                legendgroup=coin,
                showlegend=coin not in shown,
                line={"color": colour[coin], "width": 1},
                marker={"color": colour[coin], "symbol": symbol[forecaster], "size": 7},
                hovertemplate=f"{forecaster} · {coin} · fold {fold}<br>trial %{{customdata}}<br>"
                "RMSE %{x:.4f}<br>DA %{y:.1%}<extra></extra>",
            )
        )
        shown.add(coin)
    chosen = [
        (s, x, y)
        for s in studies
        if (x := as_float(get(s, "chosen", "rmse"))) is not None
        and (y := as_float(get(s, "chosen", "directional_accuracy"))) is not None
    ]
    if chosen:
        fig.add_trace(
            go.Scatter(
                x=[c[1] for c in chosen],
                y=[c[2] for c in chosen],
                customdata=[
                    [
                        str(s.get("forecaster")),
                        str(s.get("coin_id")),
                        str(s.get("fold")),
                        get(s, "chosen", "number"),
                    ]
                    for s, _, _ in chosen
                ],
                mode="markers",
                name="chosen trial",
                marker={
                    "symbol": "star",
                    "size": 14,
                    "color": [colour[str(s.get("coin_id"))] for s, _, _ in chosen],
                    "line": {"color": "#1f2328", "width": 1.5},
                },
                hovertemplate="chosen: %{customdata[0]} · %{customdata[1]} · fold %{customdata[2]}<br>"
                "trial %{customdata[3]}<br>RMSE %{x:.4f}<br>DA %{y:.1%}<extra></extra>",
            )
        )
    fig.add_hline(y=0.5, line={"color": "#9aa1a9", "dash": "dot", "width": 1})
    fig.update_layout(
        template="plotly_white",
        height=460,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.04, "xanchor": "left", "x": 0},
        font={"size": 12},
        xaxis_title="validation RMSE (log-return units; lower is better)",
        yaxis_title="validation directional accuracy (higher is better)",
        yaxis_tickformat=".0%",
    )
    return fig


def _states_text(states: Mapping[str, Any]) -> str:
    parts = [f"{fmt_int(states.get(state, 0))} {label}" for state, label in STATE_COLUMNS]
    known = {state for state, _ in STATE_COLUMNS}
    parts += [f"{fmt_int(n)} {str(state).lower()}" for state, n in states.items() if state not in known]
    return ", ".join(parts)


def tuning_section(ctx: SectionContext) -> Section | None:
    """The "Hyper-parameter tuning" section; None when the run was not tuned (no ``tuning`` key)."""
    tuning = get(ctx.results, "tuning")
    if not isinstance(tuning, Mapping):
        return None
    studies = _studies(ctx.results)
    states = get(tuning, "states", default={}) or {}
    space = get(tuning, "space", default={}) or {}
    space_text = "; ".join(f"{k} {fmt_text(list(v) if isinstance(v, list) else v)}" for k, v in space.items())
    total = sum(int(as_float(n) or 0) for n in states.values())
    intro = Markup(
        "Every neural (forecaster, coin, fold) model was tuned with Optuna inside its own training "
        "window before it was trained: at most <strong>{}</strong> trials per study; search space "
        "{}. Selection: {}. Pruning: {}. Over {} studies, {} trials: {}."
    ).format(
        fmt_int(tuning.get("n_trials")),
        Markup("narrowed to {}").format(space_text) if space_text else "as registered by each forecaster",
        fmt_text(tuning.get("rule")),
        fmt_text(tuning.get("pruning")),
        fmt_int(len(studies)),
        fmt_int(total),
        _states_text(states),
    )
    blocks: list[Figure | Text | TableBlock] = [Text(intro)]
    if not studies:
        return Section("tuning", "Hyper-parameter tuning", blocks)
    n_front = sum(len(records(s.get("pareto"))) for s in studies)
    blocks.append(
        Figure(
            figure_html(pareto_figure(studies), "tuning-pareto"),
            f"Pareto fronts of (validation RMSE, directional accuracy), one line per study; "
            f"N = {len(studies)} studies, {n_front} Pareto trials. Colour: coin; marker: forecaster; "
            "star: the chosen trial; dotted: 50% directional accuracy.",
        )
    )
    blocks.append(TableBlock(tuning_table(studies), "Chosen hyper-parameters per coin and fold", 12))
    return Section("tuning", "Hyper-parameter tuning", blocks)
