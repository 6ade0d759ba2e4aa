"""The "Hyper-parameter tuning" section, from the ``tuning`` block of results.json (kallos run --tune)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from kallos.report.html import ReportFrames, render_report
from kallos.report.schema import validate_results
from kallos.report.tuning import chosen_params, pareto_figure, tuning_table


def _trial(number: int, rmse: float, da: float, hidden: int, lr: float) -> dict[str, Any]:
    return {
        "number": number,
        "rmse": rmse,
        "directional_accuracy": da,
        "learning_rate": lr,
        "lookback": 10,
        "hidden_size": hidden,
        "dropout": 0.2,
    }


def _study(coin: str, fold: str, states: dict[str, int], chosen: dict, pareto: list[dict]) -> dict[str, Any]:
    return {
        "forecaster": "gru",
        "coin_id": coin,
        "fold": fold,
        "study": f"tune-gru-{coin}-{fold}",
        "n_trials": sum(states.values()),
        "states": states,
        "chosen": chosen,
        "pareto": pareto,
        "training": {"learning_rate": chosen.get("learning_rate"), "lookback": chosen.get("lookback")},
        "network": {"hidden_size": chosen.get("hidden_size"), "dropout": chosen.get("dropout")},
    }


BTC_CHOSEN = _trial(2, 0.071, 0.56, 16, 5e-4)
TUNING: dict[str, Any] = {
    "n_trials": 5,
    "space": {"hidden_size": [8, 32]},
    "rule": "Pareto front of (validation RMSE, directional accuracy); among trials with directional "
    "accuracy >= 50% the lowest RMSE, else the lowest RMSE",
    "pruning": "median rule after 34% of max_epochs, from 3 completed trials",
    "states": {"COMPLETE": 12, "PRUNED": 2, "FAIL": 1},
    "studies": [
        # listed out of order: the section sorts by forecaster, coin, fold
        _study(
            "ethereum",
            "2022-12-31",
            {"COMPLETE": 4, "PRUNED": 1},
            _trial(0, 0.094, 0.51, 8, 2e-3),
            [_trial(0, 0.094, 0.51, 8, 2e-3)],
        ),
        _study(
            "bitcoin",
            "2022-12-31",
            {"COMPLETE": 3, "PRUNED": 1, "FAIL": 1},
            BTC_CHOSEN,
            [_trial(4, 0.069, 0.48, 32, 1e-3), BTC_CHOSEN],
        ),
        _study(
            "bitcoin",
            "2023-03-31",
            {"COMPLETE": 5},
            _trial(1, 0.065, 0.53, 24, 3.25e-6),
            [_trial(1, 0.065, 0.53, 24, 3.25e-6)],
        ),
    ],
}


def _table(html: str, table_id: str) -> str:
    match = re.search(rf'<table id="{re.escape(table_id)}">.*?</table>', html, flags=re.S)
    assert match, f"table {table_id} missing"
    return match.group(0)


def _cells(table: str, attrs: str) -> tuple[str, list[str]]:
    match = re.search(rf"<tr([^>]*{re.escape(attrs)}[^>]*)>(.*?)</tr>", table, flags=re.S)
    assert match, f"row {attrs} missing"
    return match.group(1), [
        re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", match.group(2))
    ]


@pytest.fixture(scope="module")
def tuned(study: tuple[dict[str, Any], ReportFrames]) -> tuple[dict[str, Any], str]:
    results = {**copy.deepcopy(study[0]), "tuning": copy.deepcopy(TUNING)}
    return results, render_report(results, study[1])


def test_tuned_document_is_valid(tuned: tuple[dict[str, Any], str]) -> None:
    validate_results(tuned[0])


def test_section_states_budget_and_trial_counts(tuned: tuple[dict[str, Any], str]) -> None:
    html = tuned[1]
    section = re.search(r'<section id="tuning">.*?</section>', html, flags=re.S).group(0)
    assert "<h2>Hyper-parameter tuning</h2>" in section
    assert "at most <strong>5</strong> trials per study" in section
    assert "narrowed to hidden_size 8, 32" in section
    assert "Over 3 studies, 15 trials: 12 complete, 2 pruned, 1 failed." in section
    assert 'href="#tuning"' in html
    assert html.index('<section id="tuning"') < html.index('<section id="forecasts"')


def test_table_shows_chosen_parameters_and_counts_per_coin_and_fold(
    tuned: tuple[dict[str, Any], str],
) -> None:
    table = _table(tuned[1], "tuning-table")
    thead = re.search(r"<thead>.*?</thead>", table, flags=re.S).group(0)
    headers = [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", thead)]
    # trainer's parameters first, then the network's
    assert headers == [
        "coin", "fold", "trials", "complete", "pruned", "failed", "Pareto", "chosen #", "RMSE", "DA",
        "learning_rate", "lookback", "hidden_size", "dropout",
    ]  # fmt: skip
    attrs, cells = _cells(table, 'data-coin="bitcoin" data-fold="2022-12-31"')
    assert cells == [
        "bitcoin", "2022-12-31", "5", "3", "1", "1", "2", "2", "0.0710", "56.0%", "0.0005", "10", "16", "0.2",
    ]  # fmt: skip
    assert "warn" not in attrs
    _, cells = _cells(table, 'data-coin="bitcoin" data-fold="2023-03-31"')
    assert cells[2:6] == ["5", "5", "0", "0"] and cells[10] == "3.25e−06" and cells[12] == "24"
    # sorted by coin, then fold
    order = re.findall(r'data-coin="([^"]+)" data-fold="([^"]+)"', table)
    assert order == [("bitcoin", "2022-12-31"), ("bitcoin", "2023-03-31"), ("ethereum", "2022-12-31")]
    assert "N = 3 studies (2 coins × 2 folds)" in table
    assert re.search(r'<tr class="group"><th colspan="14">.*gru.* models</th></tr>', table)


def test_study_without_a_completed_trial_is_flagged() -> None:
    failed = _study("solana", "2022-12-31", {"FAIL": 5}, {}, [])
    table = tuning_table([failed])
    (row,) = table.groups[0].rows
    assert row.cls == "warn"
    assert [c.text for c in row.cells[2:9]] == ["5", "0", "0", "5", "0", "–", "–"]


def test_pareto_chart_draws_each_front_and_stars_the_chosen_trials() -> None:
    fig = pareto_figure(TUNING["studies"])
    fronts = [t for t in fig.data if t.name != "chosen trial"]
    assert len(fronts) == 3
    btc = next(t for t in fronts if "bitcoin · fold 2022-12-31" in t.hovertemplate)
    assert list(btc.x) == [0.069, 0.071] and list(btc.y) == [0.48, 0.56]  # in order of RMSE
    assert list(btc.customdata) == [4, 2]
    assert [t.showlegend for t in fronts] == [True, True, False]  # one legend entry per coin
    (chosen,) = [t for t in fig.data if t.name == "chosen trial"]
    assert list(chosen.x) == [0.094, 0.071, 0.065] and list(chosen.y) == [0.51, 0.56, 0.53]
    assert chosen.marker.symbol == "star"
    assert fig.layout.xaxis.title.text.startswith("validation RMSE")
    assert fig.layout.yaxis.title.text.startswith("validation directional accuracy")


def test_chart_is_in_the_report(tuned: tuple[dict[str, Any], str]) -> None:
    assert 'id="fig-tuning-pareto"' in tuned[1]
    assert "N = 3 studies, 4 Pareto trials" in tuned[1]


def test_chosen_params_ignores_objective_keys() -> None:
    assert chosen_params(TUNING["studies"]) == ["learning_rate", "lookback", "hidden_size", "dropout"]


def test_untuned_run_has_no_section(study: tuple[dict[str, Any], ReportFrames]) -> None:
    html = render_report(*study)
    assert '<section id="tuning"' not in html and 'href="#tuning"' not in html
