"""Plotly figure builders for the HTML study report.

Every function here is pure: it takes data frames (or plain records from ``results.json``) and
returns a :class:`plotly.graph_objects.Figure`. Nothing is written to disk and nothing is shown.

Variant keys
------------
A forecast-driven variant is keyed ``"<strategy>/<objective>"`` (``"gru/max_sharpe"``); a
benchmark that does not depend on the objective is keyed by its strategy alone
(``"market_cap"``, ``"equal_weight"``). Benchmarks are drawn in every objective panel.

Colours
-------
Each strategy (and forecaster) keeps one colour in every figure, so ``gru`` is always the same
vermilion whether it appears in the cumulative-return, drawdown, accuracy or residual chart.
Forecasters' colours and display order come from their registered specs
(:data:`kallos.forecast.registry.FORECASTERS`), so a plug-in needs no edit here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kallos.evaluation import cumulative_returns, drawdown
from kallos.forecast.registry import FORECASTERS
from kallos.types import Variant

__all__ = [
    "BENCHMARK_COLOURS",
    "BENCHMARK_STRATEGIES",
    "cumulative_returns_figure",
    "directional_accuracy_figure",
    "drawdown_figure",
    "objectives_of",
    "pbo_logits_figure",
    "quarters_heatmap_figure",
    "regime_sharpe_figure",
    "residual_histograms_figure",
    "residuals",
    "rolling_sharpe",
    "rolling_sharpe_figure",
    "strategy_colour",
    "strategy_rank",
    "turnover_figure",
    "universe_heatmap_figure",
    "variant_parts",
    "weights_figure",
]

BENCHMARK_STRATEGIES: tuple[str, ...] = ("market_cap", "equal_weight")
"""Objective-independent benchmarks in display order, after every forecaster."""

BENCHMARK_COLOURS: Mapping[str, str] = {"market_cap": "#2b2d42", "equal_weight": "#8d99ae"}
"""Fixed colour per benchmark; forecasters take theirs from their registered spec."""

_FALLBACK_COLOURS: tuple[str, ...] = ("#3bb273", "#e1bc29", "#c33c54", "#4d9de0", "#7768ae", "#a0522d")
_COIN_PALETTE: tuple[str, ...] = (
    "#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6",
    "#9d755d", "#bab0ac", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173",
)  # fmt: skip
_BENCHMARK_DASH: Mapping[str, str] = {"market_cap": "dash", "equal_weight": "dot"}
_FONT = dict(family="system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif", size=12)
_PANEL_HEIGHT = 420


# ----------------------------------------------------------------------------- helpers


def strategy_colour(name: str) -> str:
    """Return the fixed colour of a strategy or forecaster.

    Parameters
    ----------
    name : str
        Strategy name (``"gru"``) or variant key (``"gru/max_sharpe"``); only the part before
        ``/`` is used.

    Returns
    -------
    str
        A hex colour: a benchmark's fixed one, a registered forecaster's spec colour
        (:attr:`kallos.forecast.spec.ForecasterSpec.colour`). Unknown names get a colour from a
        fallback palette chosen by a stable hash
        of the name, so the same name is always drawn in the same colour.
    """
    strategy = name.split("/", 1)[0]
    if strategy in BENCHMARK_COLOURS:
        return BENCHMARK_COLOURS[strategy]
    if strategy in FORECASTERS:
        return FORECASTERS[strategy].colour
    return _FALLBACK_COLOURS[sum(map(ord, strategy)) % len(_FALLBACK_COLOURS)]


def variant_parts(key: str) -> tuple[str, str | None]:
    """``(strategy, objective or None)`` of a variant key (:meth:`kallos.types.Variant.parse`)."""
    variant = Variant.parse(key)
    return variant.strategy, variant.objective


def strategy_rank(strategy: str) -> tuple[int, str]:
    """Sort key putting known strategies in display order and unknown ones after, by name.

    Parameters
    ----------
    strategy : str
        Strategy or forecaster name (not a variant key).

    Returns
    -------
    tuple of (int, str)
        Position among the registered forecasters (registration order: learned models, the
        ensemble, then the baselines) followed by :data:`BENCHMARK_STRATEGIES`, then the name.
    """
    order = (*FORECASTERS, *BENCHMARK_STRATEGIES)
    return (order.index(strategy), "") if strategy in order else (len(order), strategy)


def objectives_of(variant_keys: Iterable[str]) -> list[str]:
    """List the objectives present in variant keys, in order of first appearance.

    Parameters
    ----------
    variant_keys : iterable of str
        Keys such as ``"gru/max_sharpe"`` or ``"market_cap"``.

    Returns
    -------
    list of str
        Distinct objectives; benchmark keys (no ``/``) contribute none.
    """
    seen: dict[str, None] = {}
    for key in variant_keys:
        _, objective = variant_parts(str(key))
        if objective is not None:
            seen.setdefault(objective, None)
    return list(seen)


def _panel_columns(columns: Iterable[str], objective: str) -> list[str]:
    """Variant keys drawn in one objective panel: its forecast-driven variants, then benchmarks."""
    cols = [str(c) for c in columns]
    driven = [c for c in cols if variant_parts(c)[1] == objective]
    benchmarks = [c for c in cols if variant_parts(c)[1] is None]
    driven.sort(key=lambda c: strategy_rank(variant_parts(c)[0]))
    benchmarks.sort(key=lambda c: strategy_rank(c))
    return driven + benchmarks


def _date_labels(index: pd.Index) -> np.ndarray:
    """ISO dates (``YYYY-MM-DD``) for an index of dates; plotly.js cannot parse tz offsets."""
    return np.asarray(pd.DatetimeIndex(pd.to_datetime(index)).strftime("%Y-%m-%d"), dtype=object)


def _base_layout(fig: go.Figure, *, height: int, **kwargs: Any) -> go.Figure:
    fig.update_layout(
        template="plotly_white",
        height=height,
        font=_FONT,
        margin=dict(l=60, r=20, t=70, b=40),
        legend=dict(orientation="h", yanchor="bottom", y=1.06, xanchor="left", x=0),
        hoverlabel=dict(namelength=-1),
        **kwargs,
    )
    return fig


def _resolve_objectives(returns: pd.DataFrame, objectives: Sequence[str] | None) -> list[str]:
    objs = list(objectives) if objectives is not None else objectives_of(returns.columns)
    return objs or ["all"]


def _panelled_lines(
    series_by_key: Mapping[str, pd.Series],
    objectives: Sequence[str],
    *,
    hover_value: str,
    height: int,
) -> go.Figure:
    """One subplot per objective with the variants of that objective plus the benchmarks."""
    fig = make_subplots(
        rows=1,
        cols=len(objectives),
        shared_yaxes=True,
        subplot_titles=[o.replace("_", " ") for o in objectives],
        horizontal_spacing=0.03,
    )
    legend_shown: set[str] = set()
    for col, objective in enumerate(objectives, start=1):
        keys = _panel_columns(series_by_key, objective) if objective != "all" else list(series_by_key)
        for key in keys:
            series = series_by_key[key]
            strategy, _ = variant_parts(key)
            fig.add_trace(
                go.Scatter(
                    x=_date_labels(series.index),
                    y=series.to_numpy(dtype=float),
                    mode="lines",
                    name=strategy,
                    legendgroup=strategy,
                    showlegend=strategy not in legend_shown,
                    line=dict(color=strategy_colour(strategy), width=1.6, dash=_BENCHMARK_DASH.get(strategy)),
                    meta=key,
                    hovertemplate=f"%{{meta}}<br>%{{x|%Y-%m-%d}}<br>{hover_value}<extra></extra>",
                ),
                row=1,
                col=col,
            )
            legend_shown.add(strategy)
    return _base_layout(fig, height=height, hovermode="closest")


# ----------------------------------------------------------------------------- performance


def _wealth(returns: pd.Series) -> pd.Series:
    """Wealth index ``(1 + r).cumprod()`` over the days on which the variant has a return."""
    return cumulative_returns(returns.dropna().astype(float)) + 1.0


def cumulative_returns_figure(
    returns: pd.DataFrame,
    objectives: Sequence[str] | None = None,
    *,
    log_y: bool = True,
) -> go.Figure:
    """Wealth index of every variant, one subplot panel per objective.

    Parameters
    ----------
    returns : pd.DataFrame of shape (n_days, n_variants)
        Daily simple returns (not percent), net of costs; index dates, columns variant keys.
    objectives : sequence of str, optional
        Panel order; by default the objectives found in the column keys, in order.
    log_y : bool, default True
        Draw the wealth index on a log axis so equal percentage moves look equal.

    Returns
    -------
    go.Figure
        ``len(objectives)`` panels sharing the y axis. Panel *k* holds the forecast-driven
        variants of objective *k* (in registration order) and then
        the benchmarks; trace ``y`` is ``(1 + r).cumprod()`` and ``meta`` the variant key.

    Notes
    -----
    Missing returns (NaN) are dropped per variant before compounding, so a variant that starts
    later simply starts later; no return is filled in.
    """
    objs = _resolve_objectives(returns, objectives)
    wealth = {str(c): _wealth(returns[c]) for c in returns.columns}
    fig = _panelled_lines(wealth, objs, hover_value="wealth %{y:.3f}", height=_PANEL_HEIGHT)
    if log_y:
        values = np.concatenate([np.asarray(w, dtype=float) for w in wealth.values()] or [np.ones(1)])
        ticks = _log_ticks(np.nanmin(values), np.nanmax(values))
        fig.update_yaxes(type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    fig.update_yaxes(title_text="wealth (start = 1)", row=1, col=1)
    return fig


_NICE = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)


def _log_ticks(low: float, high: float) -> list[float]:
    """Readable tick values (…, 0.5, 0.7, 1, 1.5, 2, 3, 5, …) spanning ``[low, high]``."""
    if not (np.isfinite(low) and np.isfinite(high)) or low <= 0:
        return [1.0]
    ticks = [
        m * 10.0**e
        for e in range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
        for m in _NICE
    ]
    return [round(t, 10) for t in ticks if low / 1.05 <= t <= high * 1.05]


def drawdown_figure(returns: pd.DataFrame, objectives: Sequence[str] | None = None) -> go.Figure:
    """Drawdown from the running peak of every variant, one subplot panel per objective.

    Parameters
    ----------
    returns : pd.DataFrame of shape (n_days, n_variants)
        Daily simple returns (not percent), net of costs; index dates, columns variant keys.
    objectives : sequence of str, optional
        Panel order; by default the objectives found in the column keys.

    Returns
    -------
    go.Figure
        Same panel layout as :func:`cumulative_returns_figure`; ``y`` is ``W / max(W) - 1``
        (a fraction, zero or negative) where ``W`` is the wealth index, starting at 1 before the
        first return (:func:`kallos.evaluation.drawdown`, the same as the metrics table).
    """
    objs = _resolve_objectives(returns, objectives)
    drawdowns = {str(c): drawdown(returns[c].dropna().astype(float)) for c in returns.columns}
    fig = _panelled_lines(drawdowns, objs, hover_value="drawdown %{y:.1%}", height=360)
    fig.update_yaxes(tickformat=".0%")
    fig.update_yaxes(title_text="drawdown", row=1, col=1)
    return fig


def weights_figure(
    weights: pd.DataFrame,
    objectives: Sequence[str] | None = None,
    strategies: Sequence[str] | None = None,
) -> go.Figure:
    """Stacked-area weights over time, a grid of strategy rows by objective columns.

    Parameters
    ----------
    weights : pd.DataFrame
        Long frame with columns ``strategy, objective, date, coin_id, weight`` (target weights
        at each decision date, fractions of capital). Benchmarks (objective ``"none"``) are
        skipped.
    objectives : sequence of str, optional
        Column order; by default the objectives found in ``weights``.
    strategies : sequence of str, optional
        Row order; by default the forecast-driven strategies found in ``weights``.

    Returns
    -------
    go.Figure
        One stacked area per coin and panel; each coin keeps one colour and one legend entry
        across panels. Weights are drawn as steps held until the next decision date.
    """
    w = weights.loc[weights["objective"].notna() & (weights["objective"].astype(str) != "none")]
    objs = list(objectives) if objectives is not None else list(dict.fromkeys(w["objective"].astype(str)))
    strats = (
        list(strategies)
        if strategies is not None
        else sorted(dict.fromkeys(w["strategy"].astype(str)), key=strategy_rank)
    )
    if not objs or not strats:
        return _base_layout(go.Figure(), height=200)
    coins = (
        w.groupby("coin_id")["weight"].mean().sort_values(ascending=False).index.astype(str).tolist()
        if len(w)
        else []
    )
    colours = {c: _COIN_PALETTE[i % len(_COIN_PALETTE)] for i, c in enumerate(coins)}
    fig = make_subplots(
        rows=len(strats),
        cols=len(objs),
        shared_xaxes=True,
        shared_yaxes=True,
        subplot_titles=[f"{s}/{o}" for s in strats for o in objs],
        vertical_spacing=min(0.08, 0.3 / max(len(strats), 1)),
        horizontal_spacing=0.03,
    )
    shown: set[str] = set()
    for i, strategy in enumerate(strats, start=1):
        for j, objective in enumerate(objs, start=1):
            sub = w.loc[(w["strategy"].astype(str) == strategy) & (w["objective"].astype(str) == objective)]
            if sub.empty:
                continue
            wide = sub.pivot_table(index="date", columns="coin_id", values="weight", aggfunc="sum").fillna(
                0.0
            )
            wide = wide.sort_index()
            x = _date_labels(wide.index)
            for coin in [c for c in coins if c in wide.columns]:
                fig.add_trace(
                    go.Scatter(
                        x=x,
                        y=wide[coin].to_numpy(dtype=float),
                        mode="lines",
                        name=coin,
                        legendgroup=coin,
                        showlegend=coin not in shown,
                        stackgroup=f"{strategy}/{objective}",
                        line=dict(width=0.4, color=colours[coin], shape="hv"),
                        hovertemplate=f"{coin}<br>%{{x|%Y-%m-%d}}<br>%{{y:.1%}}<extra></extra>",
                    ),
                    row=i,
                    col=j,
                )
                shown.add(coin)
    fig.update_yaxes(tickformat=".0%", range=[0, 1])
    fig = _base_layout(fig, height=120 + 230 * len(strats), hovermode="closest")
    fig.update_layout(legend=dict(orientation="v", y=1, yanchor="top", x=1.01, xanchor="left"))
    fig.update_layout(margin=dict(r=120))
    return fig


# ----------------------------------------------------------------------------- data


def universe_heatmap_figure(universe: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Heatmap of benchmark weights of the monthly universe (coins by months).

    Parameters
    ----------
    universe : sequence of mapping
        ``results["data"]["universe"]``: records with ``month`` and ``constituents`` (each with
        ``coin_id`` and ``benchmark_weight``, a fraction).

    Returns
    -------
    go.Figure
        A heatmap; a blank cell means the coin was not in that month's universe. Coins are
        ordered by total weight over the months, largest on top.
    """
    records = [
        {"month": str(m.get("month")), "coin_id": str(c.get("coin_id")), "weight": c.get("benchmark_weight")}
        for m in universe
        for c in m.get("constituents") or []
    ]
    if not records:
        return _base_layout(go.Figure(), height=200)
    frame = pd.DataFrame.from_records(records)
    frame["weight"] = pd.to_numeric(frame["weight"], errors="coerce")
    wide = frame.pivot_table(index="coin_id", columns="month", values="weight", aggfunc="sum", dropna=False)
    wide = wide.loc[wide.fillna(0.0).sum(axis=1).sort_values(ascending=True).index]
    fig = go.Figure(
        go.Heatmap(
            z=wide.to_numpy(dtype=float),
            x=[str(c) for c in wide.columns],
            y=[str(i) for i in wide.index],
            colorscale="Blues",
            zmin=0,
            colorbar=dict(title=dict(text="weight"), tickformat=".0%"),
            hovertemplate="%{y} %{x}<br>benchmark weight %{z:.1%}<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category", dtick=1, automargin=True)
    return _base_layout(fig, height=max(260, 170 + 26 * len(wide)))


# ----------------------------------------------------------------------------- forecasts


def directional_accuracy_figure(by_coin_quarter: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Directional accuracy by quarter for each forecaster, pooled over coins.

    Parameters
    ----------
    by_coin_quarter : sequence of mapping
        ``results["forecasts"]["by_coin_quarter"]``: records with ``forecaster``, ``quarter``,
        ``n`` and ``directional_accuracy`` (a fraction).

    Returns
    -------
    go.Figure
        One line per forecaster; each point is the ``n``-weighted mean of the per-coin
        accuracies of that quarter. A dotted line marks the coin-flip level of 50 %.
    """
    frame = pd.DataFrame.from_records(list(by_coin_quarter))
    fig = go.Figure()
    needed = {"forecaster", "quarter", "n", "directional_accuracy"}
    if frame.empty or not needed <= set(frame.columns):
        return _base_layout(fig, height=200)
    frame["n"] = pd.to_numeric(frame["n"], errors="coerce")
    frame["da"] = pd.to_numeric(frame["directional_accuracy"], errors="coerce")
    frame = frame.dropna(subset=["n", "da"])
    frame["hits"] = frame["da"] * frame["n"]
    pooled = frame.groupby(["forecaster", "quarter"], sort=True)[["hits", "n"]].sum()
    pooled["da"] = pooled["hits"] / pooled["n"]
    for forecaster in sorted(pooled.index.get_level_values(0).unique(), key=strategy_rank):
        sub = pooled.loc[forecaster]
        fig.add_trace(
            go.Scatter(
                x=[str(q) for q in sub.index],
                y=sub["da"].to_numpy(dtype=float),
                customdata=sub["n"].to_numpy(dtype=float),
                mode="lines+markers",
                name=str(forecaster),
                line=dict(color=strategy_colour(str(forecaster)), width=2),
                hovertemplate=f"{forecaster} %{{x}}<br>DA %{{y:.1%}}<br>n = %{{customdata:,.0f}}"
                "<extra></extra>",
            )
        )
    fig.add_hline(y=0.5, line=dict(color="#999", dash="dot", width=1))
    fig.update_xaxes(type="category", title_text="quarter")
    fig.update_yaxes(tickformat=".0%", title_text="directional accuracy")
    return _base_layout(fig, height=340)


def residuals(forecasts: pd.DataFrame) -> pd.DataFrame:
    """Forecast residuals ``realised - forecast`` with unrealised rows dropped.

    Parameters
    ----------
    forecasts : pd.DataFrame
        Long frame with ``forecaster, coin_id, as_of, horizon, forecast, realised`` (h-day
        forward log returns).

    Returns
    -------
    pd.DataFrame
        ``forecaster, coin_id, residual`` for rows where both values are finite.
    """
    f = forecasts.loc[:, ["forecaster", "coin_id", "forecast", "realised"]].copy()
    f["forecast"] = pd.to_numeric(f["forecast"], errors="coerce")
    f["realised"] = pd.to_numeric(f["realised"], errors="coerce")
    f = f.loc[np.isfinite(f["forecast"]) & np.isfinite(f["realised"])]
    f["residual"] = f["realised"] - f["forecast"]
    return f.loc[:, ["forecaster", "coin_id", "residual"]].reset_index(drop=True)


def residual_histograms_figure(forecasts: pd.DataFrame, *, n_cols: int = 4, n_bins: int = 40) -> go.Figure:
    """Histogram of forecast residuals per coin, forecasters overlaid.

    Parameters
    ----------
    forecasts : pd.DataFrame
        Long frame with ``forecaster, coin_id, as_of, horizon, forecast, realised``; h-day
        forward log returns. Rows whose ``realised`` (or ``forecast``) is NaN are dropped.
    n_cols : int, default 4
        Panels per row of the small-multiples grid.
    n_bins : int, default 40
        Number of bins per panel; all forecasters of a coin share the same bins.

    Returns
    -------
    go.Figure
        One subplot per coin (sorted by ``coin_id``), one semi-transparent histogram per
        forecaster in each; trace ``x`` is ``realised - forecast`` (log return units) and
        ``meta`` is ``"<forecaster>|<coin_id>"``.
    """
    res = residuals(forecasts)
    coins = sorted(res["coin_id"].astype(str).unique())
    forecasters = sorted(res["forecaster"].astype(str).unique(), key=strategy_rank)
    if not coins:
        return _base_layout(go.Figure(), height=200)
    cols = max(1, min(n_cols, len(coins)))
    rows = math.ceil(len(coins) / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=coins,
        vertical_spacing=min(0.12, 0.4 / rows),
        horizontal_spacing=0.04,
    )
    for k, coin in enumerate(coins):
        r, c = divmod(k, cols)
        sub = res.loc[res["coin_id"].astype(str) == coin]
        lo, hi = float(sub["residual"].min()), float(sub["residual"].max())
        width = (hi - lo) / n_bins if hi > lo else 1e-3
        bins = dict(start=lo, end=hi + width / 2, size=width)  # shared bins so overlays compare
        for forecaster in forecasters:
            x = sub.loc[sub["forecaster"].astype(str) == forecaster, "residual"].to_numpy(dtype=float)
            if x.size == 0:
                continue
            fig.add_trace(
                go.Histogram(
                    x=x,
                    name=forecaster,
                    legendgroup=forecaster,
                    showlegend=k == 0,
                    xbins=bins,
                    opacity=0.5,
                    marker=dict(color=strategy_colour(forecaster)),
                    meta=f"{forecaster}|{coin}",
                    hovertemplate=f"{forecaster} {coin}<br>residual %{{x}}<br>count %{{y}}<extra></extra>",
                ),
                row=r + 1,
                col=c + 1,
            )
    fig.update_layout(barmode="overlay", bargap=0.02)
    return _base_layout(fig, height=110 + 210 * rows)


# ----------------------------------------------------------------------------- statistics


def rolling_sharpe(returns: pd.Series, window: int, periods_per_year: int = 365) -> pd.Series:
    """Rolling annualised Sharpe ratio ``mean / std * sqrt(periods_per_year)`` (risk-free 0).

    Parameters
    ----------
    returns : pd.Series
        Daily simple returns; NaN days are dropped first.
    window : int
        Trailing window in days; the first ``window - 1`` days have no value and are dropped.
    periods_per_year : int, default 365
        Annualisation factor (crypto trades every day).

    Returns
    -------
    pd.Series
        Same formula as the annualised Sharpe ratio of the metrics table, over each window
        (sample standard deviation, ``ddof=1``); windows with zero variance give NaN and are dropped.
    """
    r = returns.dropna().astype(float)
    roll = r.rolling(window, min_periods=window)
    std = roll.std(ddof=1)
    out = roll.mean() / std.where(std > 0) * math.sqrt(periods_per_year)
    return out.dropna()


def rolling_sharpe_figure(
    returns: pd.DataFrame, objectives: Sequence[str] | None = None, *, window: int = 90
) -> go.Figure:
    """Rolling ``window``-day annualised Sharpe ratio of every variant, one panel per objective.

    Parameters
    ----------
    returns : pd.DataFrame of shape (n_days, n_variants)
        Daily simple net returns; columns variant keys.
    objectives : sequence of str, optional
        Panel order (as :func:`cumulative_returns_figure`).
    window : int, default 90
        Trailing window in days (see :func:`rolling_sharpe`).
    """
    objs = _resolve_objectives(returns, objectives)
    series = {str(c): rolling_sharpe(returns[c], window) for c in returns.columns}
    fig = _panelled_lines(series, objs, hover_value="Sharpe %{y:.2f}", height=360)
    fig.add_hline(y=0, line=dict(color="#999", width=1, dash="dot"))
    fig.update_yaxes(title_text=f"{window}-day Sharpe (ann.)", row=1, col=1)
    return fig


def turnover_figure(turnover: pd.DataFrame, objectives: Sequence[str] | None = None) -> go.Figure:
    """One-way turnover at each rebalance of every variant, one panel per objective.

    Parameters
    ----------
    turnover : pd.DataFrame of shape (n_days, n_variants)
        One-way turnover (fraction of capital traded) per decision date, 0 between rebalances;
        only the days with trading (> 0) are drawn.
    objectives : sequence of str, optional
        Panel order.
    """
    objs = _resolve_objectives(turnover, objectives)
    series = {str(c): turnover[c].loc[turnover[c].fillna(0.0) > 0].astype(float) for c in turnover.columns}
    fig = _panelled_lines(series, objs, hover_value="turnover %{y:.1%}", height=340)
    fig.update_traces(mode="lines+markers", marker=dict(size=3))
    fig.update_yaxes(tickformat=".0%")
    fig.update_yaxes(title_text="one-way turnover", row=1, col=1)
    return fig


def quarters_heatmap_figure(quarters: Sequence[Mapping[str, Any]], value: str = "return") -> go.Figure:
    """Heatmap of a per-quarter statistic, variants (rows) by quarters (columns).

    Parameters
    ----------
    quarters : sequence of mapping
        ``results["quarters"]``: records with ``quarter``, ``key`` and ``value`` (a fraction for
        ``"return"``).
    value : str, default "return"
        The field to colour by; the scale is centred on 0 (red negative, blue positive).
    """
    frame = pd.DataFrame.from_records(list(quarters))
    if frame.empty or not {"quarter", "key", value} <= set(frame.columns):
        return _base_layout(go.Figure(), height=200)
    frame[value] = pd.to_numeric(frame[value], errors="coerce")
    wide = frame.pivot_table(index="key", columns="quarter", values=value, aggfunc="first", dropna=False)
    order = sorted(
        wide.index.astype(str), key=lambda k: (variant_parts(k)[1] or "~", strategy_rank(variant_parts(k)[0]))
    )
    wide = wide.loc[order[::-1]]
    z = wide.to_numpy(dtype=float)
    bound = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[str(c) for c in wide.columns],
            y=[str(i) for i in wide.index],
            colorscale="RdBu",
            zmin=-bound,
            zmax=bound,
            zmid=0,
            text=[
                [("" if not np.isfinite(v) else f"{v:.0%}" if value == "return" else f"{v:.2f}") for v in row]
                for row in z
            ],
            texttemplate="%{text}",
            colorbar=dict(title=dict(text=value), tickformat=".0%" if value == "return" else ".2f"),
            hovertemplate="%{y} %{x}<br>" + value + " %{z:.2%}<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category", automargin=True)
    return _base_layout(fig, height=max(260, 140 + 28 * len(wide)))


def regime_sharpe_figure(metrics: Sequence[Mapping[str, Any]], value: str = "sharpe") -> go.Figure:
    """Grouped bars of a per-regime statistic (default the annualised Sharpe ratio) per variant.

    Parameters
    ----------
    metrics : sequence of mapping
        ``results["regimes"]["metrics"]``: records with ``regime``, ``key`` and ``value``.
    """
    frame = pd.DataFrame.from_records(list(metrics))
    fig = go.Figure()
    if frame.empty or not {"regime", "key", value} <= set(frame.columns):
        return _base_layout(fig, height=200)
    frame[value] = pd.to_numeric(frame[value], errors="coerce")
    regimes = list(dict.fromkeys(frame["regime"].astype(str)))
    keys = sorted(
        dict.fromkeys(frame["key"].astype(str)),
        key=lambda k: (variant_parts(k)[1] or "~", strategy_rank(variant_parts(k)[0])),
    )
    objs = objectives_of(keys)
    for key in keys:
        sub = frame.loc[frame["key"].astype(str) == key].groupby("regime")[value].first()
        strategy, objective = variant_parts(key)
        fig.add_trace(
            go.Bar(
                x=regimes,
                y=[float(sub.get(r, np.nan)) for r in regimes],
                name=key,
                marker=dict(
                    color=strategy_colour(strategy), pattern=dict(shape="/" if objective in objs[1:] else "")
                ),
                hovertemplate=f"{key}<br>%{{x}}<br>{value} %{{y:.2f}}<extra></extra>",
            )
        )
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text=value)
    return _base_layout(fig, height=380)


def pbo_logits_figure(logits: Sequence[Any]) -> go.Figure:
    """Histogram of the CSCV logits ``log(w / (1 - w))`` of the in-sample best variant's out-of-sample rank.

    The probability of backtest overfitting (Bailey, Borwein, López de Prado and Zhu 2017) is the
    share of logits at or below 0; a dotted line marks 0.
    """
    x = pd.to_numeric(pd.Series(list(logits), dtype=object), errors="coerce").dropna().to_numpy(dtype=float)
    fig = go.Figure()
    if x.size == 0:
        return _base_layout(fig, height=200)
    fig.add_trace(
        go.Histogram(
            x=x,
            nbinsx=30,
            marker=dict(color="#2e86ab"),
            name="logit",
            hovertemplate="logit %{x}<br>count %{y}<extra></extra>",
        )
    )
    fig.add_vline(x=0, line=dict(color="#c33c54", dash="dot", width=1.5))
    fig.update_xaxes(title_text="logit of out-of-sample relative rank")
    fig.update_yaxes(title_text="splits")
    return _base_layout(fig, height=300, showlegend=False)
