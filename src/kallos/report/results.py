"""Typed study results a notebook user explores: one :class:`PortfolioResult` per variant and the
:class:`Comparison` of the primary and exploratory families.

``results.json`` is a serialisation of these objects: ``strategies[key]`` is
:meth:`PortfolioResult.to_results` and the verdicts are :attr:`Comparison.primary`. Each object
renders itself in a notebook (``_repr_html_``); :meth:`PortfolioResult.plot_cumulative` draws the
report's wealth chart and :meth:`PortfolioResult.tearsheet` writes a QuantStats page.

Units: returns are daily **simple** returns (fractions, not percent), one row per UTC day; the
metrics are those of :func:`kallos.evaluation.performance_metrics` (annualised with 365 days).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from kallos.evaluation.battery import StudyStatistics
from kallos.evaluation.primary import PRIMARY_VERDICTS, VERDICT_COLUMNS
from kallos.report.charts import cumulative_returns_figure
from kallos.report.tearsheets import write_tearsheet
from kallos.types import Variant

__all__ = ["Comparison", "Fallbacks", "PortfolioResult", "Variant", "Verdict"]

HEADLINE_METRICS: tuple[tuple[str, str, str], ...] = (
    ("sharpe", "Sharpe", "{:.2f}"),
    ("cagr", "CAGR", "{:.1%}"),
    ("annual_volatility", "volatility", "{:.1%}"),
    ("max_drawdown", "max drawdown", "{:.1%}"),
    ("calmar", "Calmar", "{:.2f}"),
    ("turnover_annual", "turnover / year", "{:.2f}"),
)
"""Metrics a notebook summary shows first: (key, label, format)."""


def _fmt(value: Any, spec: str) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if number != number else spec.format(number)


def _html_table(rows: Iterable[tuple[str, str]], caption: str) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table><caption>{html.escape(caption)}</caption>{body}</table>"


@dataclass(frozen=True)
class Fallbacks:
    """How often the optimiser fell back from the requested objective.

    Attributes
    ----------
    count : rebalances whose weights came from a fallback (``min_volatility`` or equal weight).
    rebalances : rebalances of the variant.
    by_reason : ``"fell back to <objective>"`` -> count.
    """

    count: int
    rebalances: int
    by_reason: Mapping[str, int] = field(default_factory=dict)

    @property
    def share(self) -> float:
        """``count / rebalances`` (NaN without rebalances)."""
        return self.count / self.rebalances if self.rebalances else float("nan")

    @classmethod
    def from_decisions(cls, decisions: pd.DataFrame) -> Fallbacks:
        """From a variant's decision rows (columns ``fallback``, ``objective_used``)."""
        if decisions.empty:
            return cls(0, 0, {})
        fell = decisions.loc[decisions["fallback"].astype(bool), "objective_used"].value_counts()
        return cls(
            int(decisions["fallback"].astype(bool).sum()),
            len(decisions),
            {f"fell back to {k}": int(v) for k, v in fell.items()},
        )


@dataclass(frozen=True)
class PortfolioResult:
    """One variant's backtest over the test period.

    Attributes
    ----------
    variant : the strategy and objective.
    returns : daily simple returns net of costs, shape (n_days,), indexed by UTC date.
    returns_gross : the same before costs.
    turnover : one-way turnover traded at each decision date (fraction of portfolio value).
    weights : target weights, shape (n_decisions, n_coins): index decision date, columns ``coin_id``
        (0 for a coin not held).
    decisions : one row per rebalance: ``date, objective_used, solver, fallback, fallback_chain``.
    metrics : net metrics (:func:`kallos.evaluation.performance_metrics`).
    metrics_gross : the same on gross returns.
    fallbacks : fallback counts (:class:`Fallbacks`).
    missing_returns : held coin-days whose return was unknown and taken as 0.
    metrics_compare : net metrics at ``backtest.compare_cost_bps`` (``{"cost_bps": x, ...}``), or None.
    """

    variant: Variant
    returns: pd.Series = field(repr=False)
    returns_gross: pd.Series = field(repr=False)
    turnover: pd.Series = field(repr=False)
    weights: pd.DataFrame = field(repr=False)
    decisions: pd.DataFrame = field(repr=False)
    metrics: Mapping[str, Any] = field(repr=False)
    metrics_gross: Mapping[str, Any] = field(repr=False)
    fallbacks: Fallbacks
    missing_returns: int = 0
    metrics_compare: Mapping[str, Any] | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        return self.variant.key

    @property
    def sharpe(self) -> float:
        """Annualised net Sharpe ratio (``sqrt(365)``, risk-free rate 0)."""
        return float(self.metrics.get("sharpe", float("nan")))

    def period(self) -> dict[str, Any]:
        """``{"start", "end", "n_days"}`` of the net returns (dates as Timestamps)."""
        index = self.returns.index
        if len(index) == 0:
            return {"start": None, "end": None, "n_days": 0}
        return {"start": index[0], "end": index[-1], "n_days": len(index)}

    def to_results(self) -> dict[str, Any]:
        """``results.json["strategies"][key]`` (values not yet JSON-converted)."""
        doc: dict[str, Any] = {
            "strategy": self.variant.strategy,
            "objective": self.variant.objective,
            "period": self.period(),
            "metrics_net": dict(self.metrics),
            "metrics_gross": dict(self.metrics_gross),
            "fallbacks": {
                "count": self.fallbacks.count,
                "rebalances": self.fallbacks.rebalances,
                "by_reason": dict(self.fallbacks.by_reason),
            },
            "missing_returns": self.missing_returns,
        }
        if self.metrics_compare is not None:
            doc["metrics_net_compare"] = dict(self.metrics_compare)
        return doc

    def cumulative(self) -> pd.Series:
        """Wealth index ``(1 + r).cumprod()`` of the net returns (start = 1)."""
        return (1.0 + self.returns.dropna()).cumprod().rename(self.key)

    def plot_cumulative(self, *others: PortfolioResult, log_y: bool = True) -> go.Figure:
        """The report's wealth chart of this variant (and ``others``, e.g. the benchmark).

        Returns a plotly Figure, one panel per objective among the plotted variants
        (:func:`kallos.report.charts.cumulative_returns_figure`).
        """
        frame = pd.DataFrame({p.key: p.returns for p in (self, *others)})
        return cumulative_returns_figure(frame, log_y=log_y)

    def tearsheet(self, path: Path | str, benchmark: PortfolioResult | pd.Series) -> Path:
        """Write a QuantStats HTML tearsheet of the net returns against ``benchmark``; returns ``path``.

        Raises
        ------
        DataValidationError
            If either series has no finite return.
        """
        bench = (
            benchmark.returns.rename(benchmark.key) if isinstance(benchmark, PortfolioResult) else benchmark
        )
        return write_tearsheet(
            path, self.returns.rename(self.key), bench, title=f"{self.key} vs {bench.name}"
        )

    def summary(self) -> pd.Series:
        """The headline net metrics (:data:`HEADLINE_METRICS`) as a Series, plus the fallback share."""
        values = {label: self.metrics.get(key) for key, label, _ in HEADLINE_METRICS}
        values["fallback share"] = self.fallbacks.share
        return pd.Series(values, name=self.key, dtype=float)

    def as_html(self) -> str:
        """A small HTML table of the headline metrics and fallbacks (what a notebook shows)."""
        period = self.period()
        rows = [(label, _fmt(self.metrics.get(key), spec)) for key, label, spec in HEADLINE_METRICS]
        rows.append(("fallbacks", f"{self.fallbacks.count} of {self.fallbacks.rebalances} rebalances"))
        dates = f"{_fmt_date(period['start'])} to {_fmt_date(period['end'])}, {period['n_days']} days"
        return _html_table(rows, f"{self.key}: net of costs, {dates}")

    def _repr_html_(self) -> str:
        return self.as_html()

    @classmethod
    def from_results(
        cls,
        key: str,
        strategy: Mapping[str, Any],
        returns_net: pd.DataFrame,
        returns_gross: pd.DataFrame,
        turnover: pd.DataFrame,
        weights: pd.DataFrame,
        decisions: pd.DataFrame | None = None,
    ) -> PortfolioResult:
        """Rebuild from ``results.json["strategies"][key]`` and a run's frames.

        The frames are what :func:`kallos.report.outputs.read_run` reads back from a run directory.

        ``weights`` is the long frame (``strategy, objective, date, coin_id, weight``); ``decisions``
        the run's ``decisions.parquet`` (optional; empty without it).
        """
        variant = Variant.parse(key)
        fb = strategy.get("fallbacks") or {}
        d = pd.DataFrame() if decisions is None else decisions[decisions["key"] == key]
        return cls(
            variant=variant,
            returns=_column(returns_net, key),
            returns_gross=_column(returns_gross, key),
            turnover=_column(turnover, key),
            weights=wide_weights(weights, variant),
            decisions=d.reset_index(drop=True),
            metrics=dict(strategy.get("metrics_net") or {}),
            metrics_gross=dict(strategy.get("metrics_gross") or {}),
            fallbacks=Fallbacks(
                int(fb.get("count", 0)), int(fb.get("rebalances", 0)), dict(fb.get("by_reason") or {})
            ),
            missing_returns=int(strategy.get("missing_returns") or 0),
            metrics_compare=strategy.get("metrics_net_compare"),
        )


def _fmt_date(value: Any) -> str:
    return "–" if value is None else pd.Timestamp(value).date().isoformat()


def _column(frame: pd.DataFrame, key: str) -> pd.Series:
    return frame[key].rename(key) if key in frame.columns else pd.Series(dtype=float, name=key)


def wide_weights(weights: pd.DataFrame, variant: Variant) -> pd.DataFrame:
    """One variant's target weights, shape (n_decisions, n_coins), from the long weights frame.

    ``weights`` has columns ``strategy, objective, date, coin_id, weight`` (objective ``"none"`` for a
    benchmark); coins not held at a date are 0.
    """
    objective = variant.objective or "none"
    rows = weights[
        (weights["strategy"] == variant.strategy) & (weights["objective"].astype(str) == objective)
    ]
    if rows.empty:
        return pd.DataFrame(index=pd.DatetimeIndex([], name="date"))
    wide = rows.pivot_table(index="date", columns="coin_id", values="weight", aggfunc="sum", fill_value=0.0)
    wide.columns.name = None
    return wide


@dataclass(frozen=True)
class Verdict:
    """The verdict of one declared comparison of the primary family, from ``a``'s side.

    ``label`` is one of :data:`kallos.evaluation.primary.PRIMARY_VERDICTS` (``"a better"``, ``"b
    better"``, ``"no detectable difference"``, ``"no difference"``, ``"undetermined"``), decided by
    the StepM test on Sharpe ratios (Romano & Wolf 2005) with familywise error control. Sharpe
    ratios are annualised (``sqrt(365)``); ``min_detectable_gap`` is the smallest Sharpe difference
    the test would have detected at its power.
    """

    objective: str
    a: Variant
    b: Variant
    comparator: str
    label: str
    reason: str
    n_days: int
    sharpe_a: float
    sharpe_b: float
    sharpe_diff: float
    min_detectable_gap: float

    @property
    def significant(self) -> bool:
        """True when StepM rejected equality (either direction)."""
        return self.label in ("a better", "b better")

    @property
    def winner(self) -> Variant | None:
        """The significantly better variant, or None."""
        return {"a better": self.a, "b better": self.b}.get(self.label)

    def sentence(self) -> str:
        """The verdict in words: ``"gru/max_sharpe vs zero/max_sharpe: no detectable difference (...)"``."""
        detail = f"Sharpe {self.sharpe_a:.2f} vs {self.sharpe_b:.2f} over {self.n_days} days"
        if self.label == "no detectable difference" and self.min_detectable_gap == self.min_detectable_gap:
            detail += f"; the test would detect a Sharpe gap of {self.min_detectable_gap:.2f}"
        return f"{self.a} vs {self.b}: {self.label} ({detail})"

    def __str__(self) -> str:
        return self.sentence()

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(self.sentence())}</p>"


@dataclass(frozen=True)
class Comparison:
    """The study's comparisons: the declared primary family and the exploratory battery.

    Attributes
    ----------
    primary : one row per declared comparison (:data:`kallos.evaluation.primary.VERDICT_COLUMNS`);
        the verdicts, under familywise error control (StepM).
    exploratory : every battery test on every pair (``results.json["tests"]["pairwise"]``), corrected
        over the whole family; for exploration, never for verdicts.
    alpha : the familywise level of the primary family.
    statistics : the whole battery behind them (PSR/DSR, PBO, regimes), when built from one.
    """

    primary: pd.DataFrame
    exploratory: pd.DataFrame
    alpha: float = 0.05
    statistics: StudyStatistics | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_statistics(cls, statistics: StudyStatistics) -> Comparison:
        """From the statistics battery (:func:`kallos.evaluation.battery.evaluate`)."""
        primary = statistics.primary
        return cls(primary.verdicts, statistics.tests, float(primary.alpha), statistics)

    @classmethod
    def from_results(cls, results: Mapping[str, Any]) -> Comparison:
        """From a ``results.json`` document (keys ``verdicts``, ``tests.pairwise``, ``tests.alpha``)."""
        tests = results.get("tests") or {}
        primary = pd.DataFrame(results.get("verdicts") or [], columns=list(VERDICT_COLUMNS))
        alpha = (results.get("primary") or {}).get("alpha", tests.get("alpha", 0.05))
        return cls(primary, pd.DataFrame(tests.get("pairwise") or []), float(alpha))

    def verdicts(self) -> list[Verdict]:
        """Every declared comparison's verdict, in declaration order."""
        return [self._verdict(row) for row in self.primary.to_dict(orient="records")]

    def verdict(self, a: str | Variant, b: str | Variant) -> Verdict:
        """The primary-family verdict of ``a`` against ``b`` (either order of declaration).

        Asked in the reverse order of the declaration, the verdict is restated from ``a``'s side
        (``"a better"`` and ``"b better"`` swap, the Sharpe ratios swap, the gap changes sign).

        Raises
        ------
        KeyError
            If the pair is not in the primary family (the message lists the declared pairs).
        """
        ka, kb = Variant.parse(a).key, Variant.parse(b).key
        for row in self.primary.to_dict(orient="records"):
            if (row["a"], row["b"]) == (ka, kb):
                return self._verdict(row)
            if (row["a"], row["b"]) == (kb, ka):
                return self._verdict(row, flip=True)
        declared = ", ".join(f"{r['a']} vs {r['b']}" for r in self.primary.to_dict(orient="records"))
        raise KeyError(
            f"{ka} vs {kb} is not a declared primary comparison; declared: {declared or 'none'}. "
            "The exploratory tests of any pair are in Comparison.table('exploratory')."
        )

    @staticmethod
    def _verdict(row: Mapping[str, Any], flip: bool = False) -> Verdict:
        def num(key: str) -> float:
            value = row.get(key)
            return float("nan") if value is None else float(value)

        a, b, label = row["a"], row["b"], str(row["verdict"])
        sharpe_a, sharpe_b, diff = num("sharpe_a"), num("sharpe_b"), num("sharpe_diff")
        if flip:
            a, b, sharpe_a, sharpe_b, diff = b, a, sharpe_b, sharpe_a, -diff
            label = {"a better": "b better", "b better": "a better"}.get(label, label)
        return Verdict(
            objective=str(row["objective"]),
            a=Variant.parse(a),
            b=Variant.parse(b),
            comparator=str(row["comparator"]),
            label=label,
            reason=str(row.get("reason") or ""),
            n_days=int(row.get("n_days") or 0),
            sharpe_a=sharpe_a,
            sharpe_b=sharpe_b,
            sharpe_diff=diff,
            min_detectable_gap=num("min_detectable_gap"),
        )

    def table(self, family: str = "primary") -> pd.DataFrame:
        """The comparisons as a frame: ``"primary"`` (the verdicts) or ``"exploratory"`` (every test).

        Raises
        ------
        ValueError
            For another ``family``.
        """
        if family == "primary":
            cols = [
                "objective",
                "a",
                "b",
                "comparator",
                "verdict",
                "sharpe_a",
                "sharpe_b",
                "sharpe_diff",
                "min_detectable_gap",
                "n_days",
            ]
            return self.primary.loc[:, [c for c in cols if c in self.primary.columns]].reset_index(drop=True)
        if family == "exploratory":
            return self.exploratory.reset_index(drop=True)
        raise ValueError(f"family={family!r}: choose 'primary' or 'exploratory'")

    def counts(self) -> dict[str, int]:
        """Verdict label -> number of declared comparisons (every label of PRIMARY_VERDICTS present)."""
        found = self.primary["verdict"].value_counts() if len(self.primary) else pd.Series(dtype=int)
        return {label: int(found.get(label, 0)) for label in PRIMARY_VERDICTS}

    def as_html(self) -> str:
        """The primary verdicts as an HTML table with a one-line caption (what a notebook shows)."""
        counts = ", ".join(f"{n} {label}" for label, n in self.counts().items() if n)
        caption = (
            f"Primary family: {len(self.primary)} declared comparisons at familywise α = {self.alpha:g} "
            f"(StepM); {counts or 'none'}"
        )
        table = self.table().to_html(index=False, float_format="%.3f")
        return f"<div><p>{html.escape(caption)}</p>{table}</div>"

    def _repr_html_(self) -> str:
        return self.as_html()


def portfolio_results(
    keys: Sequence[str],
    strategies: Mapping[str, Mapping[str, Any]],
    returns_net: pd.DataFrame,
    returns_gross: pd.DataFrame,
    turnover: pd.DataFrame,
    weights: pd.DataFrame,
    decisions: pd.DataFrame | None = None,
) -> dict[str, PortfolioResult]:
    """:meth:`PortfolioResult.from_results` for each of ``keys``; key -> result, in order."""
    return {
        k: PortfolioResult.from_results(
            k, strategies[k], returns_net, returns_gross, turnover, weights, decisions
        )
        for k in keys
    }
