"""The forecast sections of the report, and the forecast evaluation as a standalone page.

Three section builders (placed by :data:`kallos.report.html.SECTIONS`):

* :func:`forecast_accuracy_section` ("Forecast accuracy") and :func:`residuals_section`
  ("Forecast residuals") read ``results["forecasts"]`` and the forecasts frame;
* :func:`evaluation_section` ("Forecast evaluation") renders the typed
  :class:`~kallos.evaluation.forecast_metrics.ForecastEvaluation` of the context, and is left out
  without one.

:func:`forecast_section` turns a ``ForecastEvaluation`` into HTML fragments (figures without the
plotly.js bundle, tables as ``<table>`` markup) so a page can embed them;
:func:`write_forecast_report` writes one self-contained HTML file (plotly.js inlined once, no
network access needed to view it).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from markupsafe import Markup
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

import kallos.report.charts as charts
from kallos.evaluation.forecast_metrics import ForecastEvaluation
from kallos.report.blocks import Figure, Html, Section, SectionContext, TableBlock, Text, records
from kallos.report.tables import (
    figure_html,
    fmt_float,
    fmt_int,
    fmt_pct,
    fmt_pp,
    n_text,
    num,
    period_text,
    record_table,
    swatch,
    total,
    txt,
)

__all__ = [
    "evaluation_section",
    "forecast_accuracy_section",
    "forecast_figures",
    "forecast_section",
    "residuals_section",
    "skill_table",
    "write_forecast_report",
]

_LAYOUT: dict[str, Any] = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 60, "b": 40}}
_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _colours(ev: ForecastEvaluation) -> dict[str, str]:
    """One colour per forecaster, the same in every figure (sorted names)."""
    names = sorted(set(ev.accuracy["forecaster"]) | set(ev.residuals["forecaster"]))
    return {str(n): _PALETTE[i % len(_PALETTE)] for i, n in enumerate(names)}


def _rmse_by_quarter(ev: ForecastEvaluation) -> go.Figure:
    """Pooled-over-coins RMSE per quarter and forecaster (mean of the per-coin RMSEs)."""
    fig = go.Figure()
    acc = ev.accuracy
    for name, g in acc.groupby("forecaster", sort=True):
        q = g.groupby("quarter")["rmse"].mean()
        fig.add_trace(
            go.Bar(x=list(q.index), y=q.to_numpy(), name=str(name), marker_color=_colours(ev)[name])
        )
    fig.update_layout(
        title="RMSE per quarter (mean over coins, h-day log return)", barmode="group", height=380, **_LAYOUT
    )
    return fig


def _da_by_quarter(ev: ForecastEvaluation) -> go.Figure:
    fig = go.Figure()
    for name, g in ev.accuracy.groupby("forecaster", sort=True):
        q = g.groupby("quarter")["directional_accuracy"].mean()
        line = {"color": _colours(ev)[name]}
        fig.add_trace(
            go.Scatter(x=list(q.index), y=q.to_numpy(), name=str(name), mode="lines+markers", line=line)
        )
    fig.add_hline(y=0.5, line_dash="dot", line_color="grey")
    fig.update_layout(title="Directional accuracy per quarter (mean over coins)", height=380, **_LAYOUT)
    fig.update_yaxes(tickformat=".0%")
    return fig


def _residual_histograms(ev: ForecastEvaluation) -> go.Figure:
    """Residual (realised - forecast) histograms, one panel per coin, one colour per forecaster."""
    res = ev.residuals
    coins = sorted(res["coin_id"].unique()) or ["-"]
    cols = min(3, len(coins))
    rows = int(np.ceil(len(coins) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=coins, shared_xaxes=True)
    names = sorted(res["forecaster"].unique())
    colours = _colours(ev)
    for i, coin in enumerate(coins):
        sub = res[res["coin_id"] == coin]
        for name in names:
            values = sub.loc[sub["forecaster"] == name, "residual"].to_numpy()
            fig.add_trace(
                go.Histogram(
                    x=values,
                    name=name,
                    legendgroup=name,
                    showlegend=i == 0,
                    opacity=0.6,
                    marker_color=colours[name],
                    nbinsx=40,
                ),
                row=i // cols + 1,
                col=i % cols + 1,
            )
    fig.update_layout(
        title="Residuals by coin (realised - forecast, log return)",
        barmode="overlay",
        height=260 * rows + 80,
        **_LAYOUT,
    )
    return fig


def _decay(ev: ForecastEvaluation) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("RMSE", "Directional accuracy"))
    colours = _colours(ev)
    for name, g in ev.decay.groupby("forecaster", sort=True):
        g = g.sort_values("weeks_since_training")
        x = g["weeks_since_training"].to_numpy()
        style = {"name": str(name), "legendgroup": str(name), "line": {"color": colours.get(name, "#444")}}
        fig.add_trace(go.Scatter(x=x, y=g["rmse"], **style), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=g["directional_accuracy"], showlegend=False, **style), row=1, col=2)
    fig.update_xaxes(title_text="weeks since training cutoff")
    fig.update_layout(title="Accuracy against model age", height=380, **_LAYOUT)
    return fig


def _r2_oos(ev: ForecastEvaluation) -> go.Figure:
    """Out-of-sample R² against the zero forecast: pooled bar per forecaster, one dot per coin."""
    overall = ev.overall[ev.overall["forecaster"] != "zero"]
    colours = _colours(ev)
    fig = go.Figure()
    pooled = overall[overall["coin_id"] == "all"]
    fig.add_trace(
        go.Bar(
            x=pooled["forecaster"],
            y=pooled["r2_oos"],
            marker_color=[colours.get(n, "#444") for n in pooled["forecaster"]],
            name="pooled",
            text=[f"{v:+.1%}" for v in pooled["r2_oos"]],
            textposition="outside",
        )
    )
    coins = overall[overall["coin_id"] != "all"]
    fig.add_trace(
        go.Scatter(
            x=coins["forecaster"],
            y=coins["r2_oos"],
            mode="markers",
            name="per coin",
            text=coins["coin_id"],
            hovertemplate="%{text}: %{y:.1%}<extra></extra>",
            marker={"color": "#333", "size": 7, "symbol": "circle-open"},
        )
    )
    fig.add_hline(y=0.0, line_color="grey")
    fig.update_layout(
        title="Out-of-sample R² against the zero forecast (above 0 = better than predicting 0)",
        height=380,
        **_LAYOUT,
    )
    fig.update_yaxes(tickformat=".0%")
    return fig


def skill_table(evaluation: ForecastEvaluation) -> pd.DataFrame:
    """One row per forecaster: pooled R²_oos, DM against each baseline, direction against chance.

    Columns ``forecaster, n, r2_oos, rmse_ratio`` (to ``evaluation.baseline``), ``dm_<baseline>``
    and ``p_dm_<baseline>`` (pooled Diebold-Mariano; negative = lower loss than the baseline),
    ``directional_accuracy, majority_accuracy, pt_p`` (classic) and ``pt_p_robust``.
    """
    overall = evaluation.overall[evaluation.overall["coin_id"] == "all"]
    out = overall[["forecaster", "n", "r2_oos", "rmse_ratio", "directional_accuracy", "majority_accuracy"]]
    out = out.set_index("forecaster")
    dm = evaluation.dm_tests[evaluation.dm_tests["coin_id"] == "all"]
    for base, g in dm.groupby("baseline", sort=False):
        g = g.set_index("forecaster")
        out[f"dm_{base}"] = g["dm_stat"]
        out[f"p_dm_{base}"] = g["p_value"]
    pt = evaluation.pt_tests
    if len(pt):
        pooled = pt[pt["coin_id"] == "all"].set_index("forecaster")
        out["pt_p"] = pooled["p_value"]
        out["pt_p_robust"] = pooled["hac_p_value"]
    return out.reset_index()


def forecast_figures(evaluation: ForecastEvaluation) -> dict[str, go.Figure]:
    """The section's figures by name: r2_oos, rmse_by_quarter, da_by_quarter, residuals, decay."""
    return {
        "r2_oos": _r2_oos(evaluation),
        "rmse_by_quarter": _rmse_by_quarter(evaluation),
        "da_by_quarter": _da_by_quarter(evaluation),
        "residuals": _residual_histograms(evaluation),
        "decay": _decay(evaluation),
    }


def _table_html(frame: pd.DataFrame, caption: str) -> str:
    shown = frame.copy()
    for col in shown.columns:
        if pd.api.types.is_datetime64_any_dtype(shown[col]):
            shown[col] = shown[col].dt.strftime("%Y-%m-%d")
    body = shown.to_html(
        index=False, float_format=lambda x: f"{x:.4g}", na_rep="–", border=0, classes="kallos"
    )
    return f"<figure class='table'><figcaption>{html.escape(caption)}</figcaption>{body}</figure>"


def forecast_section(evaluation: ForecastEvaluation) -> dict[str, Any]:
    """HTML fragments of the forecast-evaluation section.

    Returns
    -------
    ``{"title": str, "figures": {name: html}, "tables": {name: html}}``; figure fragments do not
    include plotly.js (the page must load it once); tables are ``<figure><table>`` markup.
    Tables: ``skill`` (:func:`skill_table`), ``overall``, ``dm_tests``, ``pt_tests``,
    ``accuracy`` (per coin and quarter), ``decay``.
    """
    figures = {
        name: fig.to_html(full_html=False, include_plotlyjs=False, config=_PLOTLY_CONFIG, div_id=f"fc-{name}")
        for name, fig in forecast_figures(evaluation).items()
    }
    refs = ", ".join(evaluation.baselines) or evaluation.baseline
    dm_caption = (
        f"Diebold-Mariano tests against {refs} (squared-error loss, HLN small-sample correction, h-1 "
        "lags; negative statistic = lower loss than the baseline; coin 'all' pools the coins' loss "
        "differentials per date)"
    )
    skill_caption = (
        "Forecast skill, pooled over coins: out-of-sample R² against the zero forecast (Campbell and "
        "Thompson 2008), RMSE ratio to it, pooled Diebold-Mariano statistics and p-values against each "
        "baseline, and directional accuracy beside always predicting the more frequent sign, with "
        "Pesaran-Timmermann p-values (classic, and robust to the overlap of daily h-day labels)"
    )
    tables = {
        "skill": _table_html(skill_table(evaluation), skill_caption),
        "overall": _table_html(
            evaluation.overall,
            f"Accuracy over the whole period (all = pooled over coins); ratios to {evaluation.baseline}",
        ),
        "dm_tests": _table_html(evaluation.dm_tests, dm_caption),
        "pt_tests": _table_html(
            evaluation.pt_tests,
            "Pesaran-Timmermann tests of directional accuracy (one-sided; hac = serial-correlation "
            "robust regression form, Driscoll-Kraay when pooled); majority = always the more frequent sign",
        ),
        "accuracy": _table_html(evaluation.accuracy, "Accuracy per coin and quarter"),
        "decay": _table_html(evaluation.decay, "Accuracy by weeks since the training cutoff"),
    }
    return {"title": "Forecast evaluation", "figures": figures, "tables": tables}


# ----------------------------------------------------------------------------- report sections


def _rank(record: Mapping[str, Any]) -> tuple[tuple[int, str], str]:
    return charts.strategy_rank(str(record.get("forecaster"))), str(record.get("coin_id"))


def _span(fc: Mapping[str, Any]) -> str:
    period = fc.get("period") if isinstance(fc.get("period"), Mapping) else {}
    return period_text(period.get("start"), period.get("end"))


def forecast_accuracy_section(ctx: SectionContext) -> Section:
    """Pooled, per-coin and per-quarter accuracy against the baseline, and DA by quarter."""
    fc = ctx.results.get("forecasts") if isinstance(ctx.results.get("forecasts"), Mapping) else {}
    baseline = str(fc.get("baseline") or "zero")
    horizon = fmt_int(fc.get("horizon"))
    span = _span(fc)
    overall = records(fc.get("overall"))
    cols = [
        txt("forecaster", "forecaster", lambda v: swatch(str(v))),
        txt("coin_id", "coin"),
        num("n", "N", fmt_int, "Forecasts with a realised value"),
        num("rmse", "RMSE", lambda v: fmt_float(v, 4), "Root mean squared error, log-return units"),
        num("mae", "MAE", lambda v: fmt_float(v, 4), "Mean absolute error, log-return units"),
        num("directional_accuracy", "DA", fmt_pct, "Share of forecasts with the right sign"),
        num("r2_oos", "R²oos", fmt_pct, "Out-of-sample R² against the zero forecast (> 0 beats zero)"),
        num("rmse_ratio", "RMSE ratio", lambda v: fmt_float(v, 3), f"RMSE / RMSE of {baseline}"),
        num("da_diff", "DA − base", fmt_pp, f"DA minus DA of {baseline}, percentage points"),
    ]
    pooled = sorted((r for r in overall if str(r.get("coin_id")) == "all"), key=_rank)
    per_coin = sorted((r for r in overall if str(r.get("coin_id")) != "all"), key=_rank)
    what = f"{horizon}-day forward log returns; ratios and differences are relative to {baseline}"
    overall_table = record_table(
        "forecast-overall-table",
        f"Forecast accuracy pooled over coins, {span}; "
        f"{n_text((r.get('n') for r in pooled), 'forecasts')} per forecaster; {what}.",
        pooled,
        cols,
    )
    per_coin_table = record_table(
        "forecast-coin-table",
        f"Forecast accuracy per coin, {span}; "
        f"{n_text((r.get('n') for r in per_coin), 'forecasts')} per forecaster and coin; {what}.",
        per_coin,
        cols,
    )
    bcq = records(fc.get("by_coin_quarter"))
    q_cols = [
        *cols[:2],
        txt("quarter", "quarter"),
        *cols[2:7],
        cols[7],
        num("mae_ratio", "MAE ratio", lambda v: fmt_float(v, 3), f"MAE / MAE of {baseline}"),
        cols[8],
    ]
    quarter_table = record_table(
        "forecast-quarter-table",
        f"Forecast accuracy per coin and quarter, {span}; "
        f"N = {total(bcq, 'n'):,} forecasts in {len(bcq):,} cells; {what}.",
        sorted(bcq, key=lambda r: (*_rank(r), str(r.get("quarter")))),
        q_cols,
    )
    models = fc.get("models") if isinstance(fc.get("models"), Mapping) else {}
    models_text = (
        f"{fmt_int(models.get('trained'))} models trained over "
        f"{fmt_int(models.get('folds'))} walk-forward folds."
    )
    da_fig = figure_html(charts.directional_accuracy_figure(bcq), "da-quarter") if bcq else None
    return Section(
        "forecasts",
        "Forecast accuracy",
        [
            Text(Markup("{}").format(models_text), "meta"),
            TableBlock(overall_table),
            TableBlock(per_coin_table, "Accuracy per coin", 0),
            Figure(
                da_fig,
                f"Directional accuracy by quarter, pooled over coins (n-weighted), {span}; "
                f"N = {total(bcq, 'n'):,} forecasts.",
            ),
            TableBlock(quarter_table, "Accuracy per coin and quarter", 0),
        ],
    )


def residuals_section(ctx: SectionContext) -> Section:
    """Residual histograms, one panel per coin ("No data for this chart." without forecasts)."""
    fc = ctx.results.get("forecasts") if isinstance(ctx.results.get("forecasts"), Mapping) else {}
    forecasts = ctx.frames.forecasts
    res = charts.residuals(forecasts) if not forecasts.empty else None
    if res is None or not len(res):
        return Section("residuals", "Forecast residuals", [Figure(None, "")])
    counts = res.groupby("forecaster").size()
    caption = (
        f"Residual = realised − forecast ({fmt_int(fc.get('horizon'))}-day log returns), one panel per "
        f"coin, forecasters overlaid; {_span(fc)}; N = "
        + ", ".join(
            f"{n:,} ({f})" for f, n in sorted(counts.items(), key=lambda fn: charts.strategy_rank(fn[0]))
        )
        + " forecasts."
    )
    fig = figure_html(charts.residual_histograms_figure(forecasts), "residuals")
    return Section("residuals", "Forecast residuals", [Figure(fig, caption)])


def evaluation_section(ctx: SectionContext) -> Section | None:
    """The evaluation's tables, then its figures; None when the context has no forecast evaluation.

    ``ctx.forecast_evaluation`` is a :class:`ForecastEvaluation`, or the fragments
    :func:`forecast_section` made of one (trusted HTML built by this module; plotly.js is not
    repeated).
    """
    evaluation = ctx.forecast_evaluation
    if evaluation is None:
        return None
    fragments = evaluation if isinstance(evaluation, Mapping) else forecast_section(evaluation)
    blocks = [Html(Markup(table)) for table in (fragments.get("tables") or {}).values()]
    blocks += [
        Html(Markup("<figure>{}</figure>").format(Markup(fig)))
        for fig in (fragments.get("figures") or {}).values()
    ]
    return Section("forecast-evaluation", "Forecast evaluation", blocks) if blocks else None


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#222}
table.kallos{border-collapse:collapse;font-size:.85rem;margin:.5rem 0 1.5rem}
table.kallos th,table.kallos td{padding:.2rem .6rem;border-bottom:1px solid #ddd;text-align:right}
table.kallos td{white-space:nowrap}
figcaption{font-weight:600;margin-top:1rem}
"""


def write_forecast_report(path: str | Path, evaluation: ForecastEvaluation, title: str | None = None) -> Path:
    """Write a standalone HTML page of :func:`forecast_section` (plotly.js inlined); return its path.

    The page is written to a temporary sibling and renamed, so a failure leaves no partial file.
    """
    section = forecast_section(evaluation)
    title = title or section["title"]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        section["tables"]["skill"],
        section["tables"]["overall"],
        section["tables"]["dm_tests"],
        section["tables"]["pt_tests"],
        *section["figures"].values(),
        section["tables"]["decay"],
        section["tables"]["accuracy"],
        "</body></html>",
    ]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(out)
    return out
