"""results.json is checked against the shipped JSON Schema (Draft 2020-12) before it is written."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from kallos.report.html import ReportFrames
from kallos.report.outputs import write_outputs
from kallos.report.schema import ResultsSchemaError, results_schema, validate_results

CONTRACT_KEYS = {"effects", "verdicts", "sharpe", "trials", "overfitting", "regimes", "quarters", "universe"}


def test_schema_is_valid_draft_2020_12_and_covers_every_top_level_key() -> None:
    schema = results_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    from kallos.pipeline.results import RESULT_KEYS

    assert set(schema["required"]) == {"config", "data", "strategies", "tests", "forecasts"}
    assert set(schema["required"]) <= set(RESULT_KEYS)
    assert set(RESULT_KEYS) | CONTRACT_KEYS | {"tearsheets"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_fixture_document_with_every_stage_is_valid(study: tuple[dict[str, Any], ReportFrames]) -> None:
    results, _ = study
    assert CONTRACT_KEYS <= set(results)
    validate_results(results)


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (
            lambda r: r["strategies"]["gru/max_sharpe"].update(metrics_net="oops"),
            "$.strategies.gru/max_sharpe.metrics_net",
        ),
        (lambda r: r["verdicts"][2].update(verdict="maybe"), "$.verdicts[2].verdict"),
        (lambda r: r["tests"]["pairwise"][1].update(p_holm=1.5), "$.tests.pairwise[1].p_holm"),
        (lambda r: r["overfitting"].update(pbo=-0.1), "$.overfitting.pbo"),
        (lambda r: r["quarters"][0].update(quarter="2023-Q1"), "$.quarters[0].quarter"),
        (
            lambda r: r["universe"]["constituents"][3].update(in_coingecko="yes"),
            "$.universe.constituents[3].in_coingecko",
        ),
        (lambda r: r.pop("tests"), "$: 'tests' is a required property"),
        (lambda r: r.update(surprise=1), "$: Additional properties are not allowed ('surprise'"),
    ],
)
def test_broken_document_rejected_naming_the_path(
    study: tuple[dict[str, Any], ReportFrames], mutate: Any, path: str
) -> None:
    results = copy.deepcopy(study[0])
    mutate(results)
    with pytest.raises(ResultsSchemaError) as err:
        validate_results(results)
    first = str(err.value).splitlines()[0]
    assert first.startswith("results.json invalid at ")
    assert path in first


def test_write_outputs_writes_nothing_for_an_invalid_document(
    study: tuple[dict[str, Any], ReportFrames], tmp_path: Path
) -> None:
    results, frames = study
    broken = copy.deepcopy(results)
    broken["sharpe"]["market_cap"]["psr"] = 2.0
    with pytest.raises(ResultsSchemaError, match=r"\$\.sharpe\.market_cap\.psr"):
        write_outputs(tmp_path / "run", broken, frames, {}, tearsheets=False)
    assert not (tmp_path / "run").exists()


def test_write_outputs_round_trips_a_valid_document(
    study: tuple[dict[str, Any], ReportFrames], tmp_path: Path
) -> None:
    from kallos.pipeline.results import jsonable

    results, frames = study
    results = jsonable(results)  # NaN -> null, as build_results does
    paths = write_outputs(tmp_path / "run", results, frames, {}, tearsheets=False)
    written = json.loads(paths["results"].read_text())
    validate_results(written)
    assert written == results
    assert paths["report"].read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


@pytest.mark.slow
def test_real_results_document_is_valid(real_market: Any, results_document: Any) -> None:
    """build_results on a short study of the real data passes the schema (with the keys it has today)."""
    from kallos.config import load_config
    from kallos.data import build_panel
    from kallos.pipeline.study import run_study

    market, coins = real_market
    cfg = load_config(
        None,
        {
            "n_jobs": 1,
            "universe.top_n": 3,
            "backtest.start": "2023-04-01",
            "backtest.end": "2023-04-30",
            "forecast.forecasters": ["historical_mean", "naive_persistence"],
            "portfolio.objectives": ["min_volatility"],
        },
    )
    result = run_study(build_panel(market, coins, cfg.quality), cfg)
    doc = results_document(result)
    assert {"strategies", "tests"} <= set(doc)
    broken = copy.deepcopy(doc)
    key = next(iter(broken["strategies"]))
    broken["strategies"][key]["fallbacks"]["count"] = -1
    with pytest.raises(ResultsSchemaError, match=rf"\$\.strategies\.{key}\.fallbacks\.count"):
        validate_results(broken)
