"""The published results beside ours (``kallos run --preset original``): kallos.report.published."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from kallos.pipeline.results import jsonable
from kallos.report.html import ReportFrames, render_report
from kallos.report.published import (
    PAPER,
    QUANTITIES,
    SHARPE_TEST,
    WRITEUP,
    design_differences,
    disagreement,
    published_doc,
)
from kallos.report.schema import ResultsSchemaError, validate_results

OURS = {
    # key: (metrics_gross, metrics_net_compare) -> sharpe, max_drawdown, calmar
    "gru/max_return": ((0.9, -0.41, 1.3), (0.8, -0.43, 1.1)),
    "historical_mean/max_return": ((0.7, -0.45, 0.9), (0.65, -0.46, 0.85)),
    "market_cap": ((1.05, -0.38, 1.6), (1.04, -0.38, 1.58)),
}


def _metrics(values: tuple[float, float, float]) -> dict[str, float]:
    return dict(zip(("sharpe", "max_drawdown", "calmar"), values, strict=True))


def _lw(a: str, b: str, p: float, d: float, test: str = SHARPE_TEST) -> dict[str, Any]:
    return {"objective": "max_return", "group": "max_return", "a": a, "b": b, "test": test,
            "statistic": 1.0, "p_value": p, "p_holm": min(1.0, 3 * p), "p_bh": min(1.0, 2 * p),
            "significant": False, "n": 731, "cohens_d": d}  # fmt: skip


def _verdict(a: str, b: str, verdict: str, comparator: str) -> dict[str, Any]:
    return {"objective": "max_return", "a": a, "b": b, "comparator": comparator, "verdict": verdict,
            "min_detectable_gap": 0.4, "reason": "fixture"}  # fmt: skip


def original(study: tuple[dict[str, Any], ReportFrames], **backtest: Any) -> dict[str, Any]:
    """The fixture study turned into a preset-"original" run with the three published variants."""
    results = copy.deepcopy(study[0])
    cfg = results["config"]["study"]
    cfg["preset"] = "original"
    cfg["backtest"].update(
        {"cost_bps": 0, "compare_cost_bps": 10, "slippage_bps": 0, "rebalance_day": "SUN", **backtest}
    )
    cfg["universe"].update({"top_n": 5, "benchmark_max_weight": 0.35, "method": "market_cap_daily"})
    cfg["forecast"].update(
        {
            "horizon": 30,
            "validation_days": 91,
            "train_window_days": 515,
            "tuning": {"enabled": True, "n_trials": 50},
        }
    )
    cfg["portfolio"].update(
        {"objectives": ["max_return", "max_quadratic_utility"], "cov_lookback": 252, "covariance": "sample",
         "max_weight": 0.35, "l2_gamma": 1.0}
    )  # fmt: skip
    cfg["quality"]["exclude_categories"] = ["stablecoin", "wrapped"]
    template = results["strategies"]["gru/max_sharpe"]
    for key, (gross, net) in OURS.items():
        entry = results["strategies"].get(key) or copy.deepcopy(template)
        strategy, _, objective = key.partition("/")
        entry.update(strategy=strategy, objective=objective or None)
        entry["metrics_gross"] = {**entry["metrics_gross"], **_metrics(gross)}
        entry["metrics_net"] = {**entry["metrics_gross"]}  # pre-cost study: net == gross
        entry["metrics_net_compare"] = {**entry["metrics_net"], "cost_bps": 10, **_metrics(net)}
        results["strategies"][key] = entry
    results["tests"]["pairwise"] += [
        # stored B-A: p is symmetric, Cohen's d flips sign
        _lw("historical_mean/max_return", "gru/max_return", 0.31, -0.012),
        _lw("gru/max_return", "historical_mean/max_return", 0.02, 0.012, test="jobson_korkie_memmel"),
        _lw("gru/max_return", "market_cap", 0.04, -0.02),
        _lw("market_cap", "historical_mean/max_return", 0.0004, 0.03),
    ]
    results["verdicts"] = [
        *results["verdicts"],
        _verdict("gru/max_return", "historical_mean/max_return", "no detectable difference", "baseline"),
        _verdict("market_cap", "gru/max_return", "a better", "benchmark"),  # stored B-A: flipped
    ]
    return results


def _rows(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in doc["rows"]}


@pytest.fixture(scope="module")
def doc(study: tuple[dict[str, Any], ReportFrames]) -> dict[str, Any]:
    out = published_doc(original(study))
    assert out is not None
    return out


def test_ours_beside_both_published_sources(doc: dict[str, Any]) -> None:
    rows = _rows(doc)
    assert [r["id"] for r in doc["rows"]] == [q.id for q in QUANTITIES]
    assert rows["sharpe.gru"]["ours"] == {"pre_cost": 0.9, "net": 0.8}
    assert rows["sharpe.gru"]["published"] == {"writeup": 1.12, "paper": -0.29}
    assert rows["sharpe.historical_mean"]["published"] == {"writeup": 1.08, "paper": -0.51}
    assert rows["sharpe.benchmark"]["ours"] == {"pre_cost": 1.05, "net": 1.04}
    assert rows["sharpe.benchmark"]["published"] == {"writeup": 1.21, "paper": -0.25}
    assert rows["max_drawdown.gru"]["ours"] == {"pre_cost": -0.41, "net": -0.43}
    assert rows["max_drawdown.gru"]["published"] == {"writeup": -0.321, "paper": -0.71}
    assert rows["max_drawdown.historical_mean"]["published"] == {"writeup": None, "paper": -0.74}
    assert rows["max_drawdown.benchmark"]["published"] == {"writeup": -0.387, "paper": -0.67}
    assert rows["calmar.gru"]["published"] == {"writeup": 0.88, "paper": None}
    assert rows["calmar.benchmark"]["ours"] == {"pre_cost": 1.6, "net": 1.58}
    assert rows["calmar.benchmark"]["published"] == {"writeup": 0.81, "paper": None}
    assert doc["net_cost_bps"] == 10 and doc["variants"]["gru"] == "gru/max_return"


def test_p_values_come_from_the_sharpe_test_in_the_pre_cost_column(doc: dict[str, Any]) -> None:
    rows = _rows(doc)
    assert doc["test"] == "ledoit_wolf_2008" and "equal Sharpe ratio" in doc["test_label"]
    assert doc["tests_cost_bps"] == 0 and doc["tests_column"] == "pre_cost"
    # Ledoit-Wolf, not the Jobson-Korkie-Memmel row of the same pair; stored in either order
    assert rows["p.gru_vs_historical_mean"]["ours"] == {"pre_cost": 0.31, "net": None}
    assert rows["p.gru_vs_historical_mean"]["published"] == {"writeup": 0.18, "paper": 0.148}
    assert rows["cohens_d.gru_vs_historical_mean"]["ours"]["pre_cost"] == pytest.approx(0.012)
    assert rows["cohens_d.gru_vs_historical_mean"]["published"] == {"writeup": 0.22, "paper": None}
    assert rows["p.benchmark_vs_gru"]["ours"]["pre_cost"] == 0.04
    assert rows["p.benchmark_vs_historical_mean"]["ours"]["pre_cost"] == 0.0004
    assert rows["p.benchmark_vs_gru"]["published"] == {"writeup": 0.007, "paper": None}
    assert rows["p.benchmark_vs_historical_mean"]["published"]["writeup"] == 0.007
    assert rows["verdict.gru_vs_historical_mean"]["ours"]["pre_cost"] == "no detectable difference"
    assert rows["verdict.gru_vs_benchmark"]["ours"]["pre_cost"] == "b better"


def test_the_sources_disagreement_is_stated_not_resolved(doc: dict[str, Any]) -> None:
    rows = _rows(doc)
    for role in ("gru", "historical_mean", "benchmark"):
        assert rows[f"sharpe.{role}"]["sources_agree"] is False
        assert rows[f"sharpe.{role}"]["disagreement"] == "opposite signs"
    assert rows["max_drawdown.gru"]["disagreement"] == "2.2× apart"  # 71% vs 32.1%
    assert rows["max_drawdown.benchmark"]["disagreement"] == "1.7× apart"  # 67% vs 38.7%
    assert rows["p.gru_vs_historical_mean"]["sources_agree"] is True  # 0.18 and 0.148: both > 0.05
    assert rows["max_drawdown.historical_mean"]["sources_agree"] is None  # only the paper gives it
    assert doc["disagreement"].startswith(
        "The two published sources disagree with each other on 5 of 6 figures"
    )
    assert (
        "Sharpe ratio, GRU: 1.12 in the write-up, −0.29 in the paper (opposite signs)" in doc["disagreement"]
    )
    assert "Neither source is picked here." in doc["disagreement"]


def test_disagreement_rule() -> None:
    assert disagreement("sharpe", 1.12, -0.29) == "opposite signs"
    assert disagreement("max_drawdown", -0.321, -0.71) == "2.2× apart"
    assert disagreement("max_drawdown", -0.5, -0.6) is None
    assert disagreement("p_value", 0.18, 0.148) is None
    assert disagreement("p_value", 0.007, 0.148) == "one significant at 0.05, the other not"
    assert disagreement("calmar", 0.88, None) is None


def test_sources_are_data_with_their_conditions() -> None:
    assert WRITEUP.period == "2023-01-01 – 2024-12-31" and "not stated" in WRITEUP.costs
    assert PAPER.costs == "pre-cost" and "35%" in PAPER.setting and "top-5" in PAPER.setting
    assert PAPER.values["p.gru_vs_historical_mean"] == 0.148
    assert WRITEUP.values["cohens_d.gru_vs_historical_mean"] == 0.22


def test_design_differences_read_the_run_configuration(
    study: tuple[dict[str, Any], ReportFrames], doc: dict[str, Any]
) -> None:
    diffs = {d["topic"]: d for d in doc["differences"]}
    assert list(diffs) == [
        "test period", "universe", "benchmark", "forecast model and tuning", "training window",
        "forecast horizon", "covariance", "objective and constraints", "rebalancing", "costs", "data",
        "statistics",
    ]  # fmt: skip
    assert "point-in-time top 5 by market cap" in diffs["universe"]["ours"]
    assert "excluded categories: stablecoin, wrapped" in diffs["universe"]["ours"]
    assert "at most 50 trials per study" in diffs["forecast model and tuning"]["ours"]
    assert diffs["training window"]["ours"].startswith(
        "rolling 515-day window before each quarterly cutoff: 364 days (52 weeks) of training samples"
    )
    assert "91 days (13 weeks) of validation" in diffs["training window"]["ours"]
    assert diffs["forecast horizon"]["ours"] == "30-day forward log return"
    assert "trailing 252 daily returns" in diffs["covariance"]["ours"]
    assert diffs["rebalancing"]["ours"].startswith("weekly, at the Sunday close (UTC)")
    assert diffs["costs"]["ours"] == (
        "0 bps per side on traded notional; the net column trades the same weights at 10 bps per side"
    )
    assert diffs["costs"]["published"] == (
        "write-up: net of costs whose level it does not state; paper Table 2: pre-cost"
    )
    assert "daily closes from binance, coingecko" in diffs["data"]["ours"]
    untuned = original(study)
    untuned["config"]["study"]["forecast"]["tuning"]["enabled"] = False
    model = next(d for d in design_differences(untuned) if d.topic == "forecast model and tuning")
    assert model.ours == "GRU with fixed hyper-parameters: not tuned (forecast.tuning.enabled = false)"


def test_net_study_moves_the_tests_to_the_net_column(study: tuple[dict[str, Any], ReportFrames]) -> None:
    results = original(study, cost_bps=10, compare_cost_bps=None)
    for entry in results["strategies"].values():
        entry.pop("metrics_net_compare", None)
    doc = published_doc(results)
    rows = _rows(doc)
    assert doc["net_cost_bps"] == 10 and doc["tests_column"] == "net"
    assert rows["p.gru_vs_historical_mean"]["ours"] == {"pre_cost": None, "net": 0.31}
    assert rows["sharpe.gru"]["ours"] == {"pre_cost": 0.9, "net": 0.9}  # metrics_net of the fixture


def test_other_runs_get_no_comparison(study: tuple[dict[str, Any], ReportFrames]) -> None:
    assert published_doc(study[0]) is None
    html = render_report(*study)
    assert '<section id="published"' not in html and 'href="#published"' not in html


def test_published_block_validates_and_a_broken_one_is_rejected(
    study: tuple[dict[str, Any], ReportFrames], doc: dict[str, Any]
) -> None:
    results = jsonable({**original(study), "published": doc})
    validate_results(results)
    broken = copy.deepcopy(results)
    broken["published"]["rows"][0]["sources_agree"] = "maybe"
    with pytest.raises(ResultsSchemaError, match=r"\$\.published\.rows\[0\]\.sources_agree"):
        validate_results(broken)
    broken = copy.deepcopy(results)
    broken["published"]["preset"] = "other"
    with pytest.raises(ResultsSchemaError, match=r"\$\.published\.preset"):
        validate_results(broken)


def _table(html: str, table_id: str) -> str:
    match = re.search(
        rf'<table id="{re.escape(table_id)}">.*?</table>\s*(<p class="note">.*?</p>)?', html, re.S
    )
    assert match, f"table {table_id} missing"
    return match.group(0)


def _cells(table: str, attrs: str) -> tuple[str, list[str]]:
    match = re.search(rf"<tr([^>]*{re.escape(attrs)}[^>]*)>(.*?)</tr>", table, flags=re.S)
    assert match, f"row {attrs} missing"
    return match.group(1), [
        re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", match.group(2))
    ]


def test_section_renders_the_table_and_the_differences(
    study: tuple[dict[str, Any], ReportFrames], doc: dict[str, Any]
) -> None:
    results = {**original(study), "published": doc}
    html = render_report(results, study[1])
    assert 'href="#published"' in html and "<h2>Published results beside ours</h2>" in html
    assert html.index('<section id="calibration"') < html.index('<section id="published"')
    table = _table(html, "published-table")
    thead = re.search(r"<thead>.*?</thead>", table, flags=re.S).group(0)
    assert [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", thead)] == [
        "quantity", "ours, pre-cost", "ours, net of 10 bps", "write-up (2023–2024, net)",
        "paper, Table 2 (pre-cost)", "write-up vs paper",
    ]  # fmt: skip
    attrs, cells = _cells(table, 'data-quantity="sharpe.gru"')
    assert 'class="warn"' in attrs
    assert cells == ["Sharpe ratio, GRU", "0.90", "0.80", "1.12", "−0.29", "disagree: opposite signs"]
    _, cells = _cells(table, 'data-quantity="max_drawdown.benchmark"')
    assert cells == ["Max drawdown, capped market-cap benchmark", "−38.0%", "−38.0%", "−38.7%", "−67.0%",
                     "disagree: 1.7× apart"]  # fmt: skip
    attrs, cells = _cells(table, 'data-quantity="p.gru_vs_historical_mean"')
    assert "warn" not in attrs
    assert cells == ["p-value, GRU vs historical mean", "0.310", "–", "0.180", "0.148", "agree"]
    _, cells = _cells(table, 'data-quantity="p.benchmark_vs_historical_mean"')
    assert cells[1] == "0.0004" and cells[3] == "0.007" and cells[5] == "–"
    _, cells = _cells(table, 'data-quantity="verdict.gru_vs_benchmark"')
    assert cells[1] == "b better"
    assert "The two published sources disagree with each other on 5 of 6 figures" in table  # the note
    assert "Ledoit-Wolf 2008" in table  # the caption names the test
    diffs = _table(html, "published-differences-table")
    assert diffs.count("<tr data-topic=") == 12
    _, cells = _cells(diffs, 'data-topic="costs"')
    assert cells[2] == "write-up: net of costs whose level it does not state; paper Table 2: pre-cost"


def test_section_is_built_from_the_config_when_the_block_is_missing(
    study: tuple[dict[str, Any], ReportFrames],
) -> None:
    html = render_report(original(study), study[1])
    _, cells = _cells(_table(html, "published-table"), 'data-quantity="sharpe.gru"')
    assert cells[1:3] == ["0.90", "0.80"]
