"""The primary family: declaration, agreement with arch's StepM/SPA/MCS, verdicts and their power.

The real-data fixture ``data/default_study_net_returns.parquet`` holds the daily net returns of the
default ``kallos run`` (2022-01-01 to 2024-12-31, run 20261202T050213Z-b1ffbff1): 10 forecast-driven
variants and the two benchmarks.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from arch.bootstrap import MCS, SPA, StepM
from jsonschema import Draft202012Validator

from kallos.config import load_config
from kallos.evaluation.bootstrap import Resampler
from kallos.evaluation.calibration import plant_edge
from kallos.evaluation.longrun import stationary_bootstrap_variance
from kallos.evaluation.primary import (
    declare_primary_family,
    fallback_holdings,
    run_primary,
    sharpe_performance,
)
from kallos.evaluation.sharpe import ledoit_wolf_2008
from kallos.exceptions import DataValidationError
from kallos.pipeline.results import jsonable
from kallos.pipeline.study import primary_family

DATA = Path(__file__).with_name("data") / "default_study_net_returns.parquet"
SCHEMA = Path(__file__).resolve().parents[2] / "src" / "kallos" / "report" / "results.schema.json"


@pytest.fixture(scope="module")
def net() -> pd.DataFrame:
    return pd.read_parquet(DATA)


@pytest.fixture(scope="module")
def family():
    return primary_family(load_config())


def test_the_default_family_is_declared_from_the_config_alone(family):
    # 2 learned x (3 baselines + market cap) x 2 objectives, both directions tested
    assert family.learned == ("gru", "lstm")
    assert family.baselines == ("zero", "historical_mean", "naive_persistence")
    assert len(family.comparisons) == 16
    first = family.comparisons[0]
    assert (first.objective, first.a, first.b, first.comparator) == (
        "max_sharpe",
        "gru/max_sharpe",
        "zero/max_sharpe",
        "baseline",
    )
    assert {c.b for c in family.comparisons if c.comparator == "benchmark"} == {"market_cap"}
    assert family.to_results()["n_hypotheses"] == 32
    # no learned model, nothing to declare; baselines only are never compared with each other
    variants = {"zero/ms": ("zero", "ms"), "market_cap": ("market_cap", None)}
    assert declare_primary_family(variants, [], ["zero"]).comparisons == ()


def test_sharpe_performance_series_has_the_sharpe_ratio_as_mean_and_the_delta_method_variance():
    rng = np.random.default_rng(2)
    r = rng.standard_t(5, size=(3000, 2)) * 0.02 + [0.001, 0.0004]
    p = sharpe_performance(r)
    np.testing.assert_allclose(p.mean(axis=0), r.mean(axis=0) / r.std(axis=0), rtol=1e-12)
    # i.i.d. delta-method standard error of SR_a - SR_b = Ledoit-Wolf with 0 lags
    d = p[:, 0] - p[:, 1]
    lw = ledoit_wolf_2008(r[:, 0], r[:, 1], Resampler(1, 100, 0).draws(len(r)), maxlags=0)
    assert d.std() / math.sqrt(len(d)) == pytest.approx(lw.se, rel=1e-6)
    assert (sharpe_performance(np.ones((10, 1))) == 0).all()  # no variance: no signal, no NaN


def _scaled(net: pd.DataFrame, family, block: float) -> pd.DataFrame:
    perf = pd.DataFrame(sharpe_performance(net.to_numpy()), index=net.index, columns=net.columns)
    cols = {}
    for i, c in enumerate(family.comparisons):
        d = (perf[c.a] - perf[c.b]).to_numpy()
        w = math.sqrt(stationary_bootstrap_variance(d, block)[0])
        cols[f"{i}:a"], cols[f"{i}:b"] = d / w, -d / w
    return pd.DataFrame(cols, index=net.index)


def test_primary_results_equal_what_arch_returns_for_the_same_inputs(net, family):
    res = run_primary(net, family, alpha=0.05, block_size=5.0, reps=500, seed=3)
    scaled = _scaled(net, family, 5.0)
    ordered = pd.concat([scaled.filter(like=":a"), scaled.filter(like=":b")], axis=1)
    stepm = StepM(np.zeros(len(net)), -ordered, size=0.05, block_size=5.0, reps=500, seed=3)
    stepm.compute()
    rejected = res.sharpe.hypotheses
    ours = {  # hypothesis rows come in pairs per comparison: a > b, then b > a
        f"{j // 2}:{'a' if r.direction == 'a > b' else 'b'}"
        for j, r in enumerate(rejected.itertuples(index=False))
        if r.rejected
    }
    assert ours == set(stepm.superior_models)
    crit = stepm.spa.critical_values(0.05)
    assert res.sharpe.critical_values["consistent"] == pytest.approx(crit["consistent"] * math.sqrt(len(net)))

    perf = pd.DataFrame(sharpe_performance(net.to_numpy()), index=net.index, columns=net.columns)
    for row in res.spa.itertuples(index=False):
        comparators = family.comparator_keys(row.objective)
        best = max(comparators, key=lambda k: perf[k].mean())
        assert row.benchmark == best
        d = perf[list(row.models)].sub(perf[best], axis=0)
        w = np.sqrt(stationary_bootstrap_variance(d.to_numpy(), 5.0))
        spa = SPA(np.zeros(len(net)), -(d / w), block_size=5.0, reps=500, seed=3)
        spa.compute()
        assert row.p_consistent == pytest.approx(spa.pvalues["consistent"])
        assert row.p_lower == pytest.approx(spa.pvalues["lower"])

    # MCS over every variant; the two zero variants are the same minimum-variance portfolio up to
    # solver tolerance (returns differ by < 1e-7), so they enter once and share the p-value
    losses = -perf.drop(columns=["zero/max_quadratic_utility"])
    mcs = MCS(losses, size=0.05, reps=500, block_size=5.0, method="R", seed=3)
    mcs.compute()
    expected = mcs.pvalues["Pvalue"].to_dict()
    got = res.mcs.set_index("variant")["p_value"]
    for key, p in expected.items():
        assert got[key] == pytest.approx(p), key
    assert got["zero/max_quadratic_utility"] == got["zero/max_sharpe"]


def test_the_real_study_family_verdicts_state_what_the_data_can_detect(net, family):
    res = run_primary(net, family, block_size=5.0, reps=500, seed=0)
    v = res.verdicts
    assert len(v) == 16 and set(v["verdict"]) <= {"a better", "b better", "no detectable difference"}
    undetected = v[v["verdict"] == "no detectable difference"]
    assert undetected["min_detectable_gap"].between(0.3, 2.0).all()
    assert undetected["reason"].str.contains("would likely go unnoticed in 3.0 years").all()
    # the minimum detectable gap is (critical value + z_0.8) standard errors
    c = res.sharpe.critical_values["upper"]
    np.testing.assert_allclose(v["min_detectable_gap"], (c + 0.8416212335729143) * v["se"], rtol=1e-9)
    doc = jsonable(res.to_results())
    json.dumps(doc, allow_nan=False)
    schema = json.loads(SCHEMA.read_text())
    errors = list(
        Draft202012Validator({"$defs": schema["$defs"], **schema["properties"]["primary"]}).iter_errors(doc)
    )
    assert not errors, errors[0].message


def test_a_planted_volatility_reduction_edge_of_two_is_called_better(net, family):
    # gru/max_sharpe keeps its mean but its deviations shrink until its annual Sharpe is 2 above
    # its own: an edge that only lowers risk, inside the study's full primary family
    planted = plant_edge(net, "gru/max_sharpe", 2.0, "vol_reduction")
    res = run_primary(planted, family, block_size=5.0, reps=1000, seed=0)
    v = res.verdicts.set_index(["a", "b"])
    for comparator in (
        "zero/max_sharpe",
        "historical_mean/max_sharpe",
        "naive_persistence/max_sharpe",
        "market_cap",
    ):
        assert v.loc[("gru/max_sharpe", comparator), "verdict"] == "a better", comparator
    # its mean is unchanged, so the mean-return test sees nothing against the benchmark
    assert v.loc[("gru/max_sharpe", "market_cap"), "mean_verdict"] == "no detectable"
    spa = res.spa.set_index("objective")
    assert spa.loc["max_sharpe", "rejected"]


def test_identical_short_and_missing_series_get_honest_labels():
    rng = np.random.default_rng(0)
    idx = pd.date_range("2022-01-01", periods=400)
    base = rng.normal(0.001, 0.02, 400)
    frame = pd.DataFrame(
        {
            "m/o": base,
            "twin/o": base,
            "other/o": rng.normal(0.001, 0.02, 400),
            "market_cap": base * 0.9 + rng.normal(0, 0.005, 400),
        },
        index=idx,
    )
    variants = {
        "m/o": ("m", "o"),
        "twin/o": ("twin", "o"),
        "other/o": ("other", "o"),
        "market_cap": ("mc", None),
    }
    fam = declare_primary_family(variants, ["m"], ["twin", "other"])
    v = run_primary(frame, fam, block_size=3.0, reps=200).verdicts.set_index("b")
    assert v.loc["twin/o", "verdict"] == "no difference" and "identical" in v.loc["twin/o", "reason"]
    scaled = run_primary(frame.assign(**{"twin/o": base * 0.5}), fam, block_size=3.0, reps=200).verdicts
    assert scaled.set_index("b").loc["twin/o", "verdict"] == "no difference"  # a scaled copy: equal Sharpe
    short = run_primary(frame.iloc[:20], fam, block_size=3.0, reps=200).verdicts.set_index("b")
    assert (short.drop(index="twin/o")["verdict"] == "undetermined").all()
    with pytest.raises(DataValidationError, match="lack variant"):
        run_primary(frame.drop(columns=["other/o"]), fam, block_size=3.0)


def test_fallback_holdings_follow_the_backtest_timing():
    decisions = pd.DataFrame(
        {
            "key": ["a", "a", "a"],
            "date": pd.to_datetime(["2022-01-02", "2022-01-09", "2022-01-16"]),
            "fallback": [False, True, False],
        }
    )
    days = pd.date_range("2022-01-01", "2022-01-20")
    held = fallback_holdings(decisions, days)["a"]
    # the decision at the close of the 9th fell back: days 10..16 earn on it, the 17th on the next
    assert not held.loc[:"2022-01-09"].any()
    assert held.loc["2022-01-10":"2022-01-16"].all()
    assert not held.loc["2022-01-17":].any()


def test_fallback_robustness_restricts_to_clean_days(net, family):
    rng = np.random.default_rng(1)
    dates = pd.date_range("2021-12-31", "2024-12-30", freq="7D")
    rows = []
    for key in net.columns:
        always = key.startswith(
            "zero/max_sharpe"
        )  # every max_sharpe decision of the zero forecast falls back
        for d in dates:
            rows.append((key, d, always or bool(rng.random() < 0.2) if "/" in key else False))
    decisions = pd.DataFrame(rows, columns=["key", "date", "fallback"])
    fb = run_primary(net, family, block_size=5.0, reps=200, decisions=decisions).fallback.set_index(
        ["a", "b"]
    )
    zero = fb.loc[("gru/max_sharpe", "zero/max_sharpe")]
    assert zero["fallback_share"] == 1.0 and zero["n_days_clean"] == 0 and math.isnan(zero["p_value_clean"])
    other = fb.loc[("gru/max_sharpe", "market_cap")]
    assert 0.1 < other["fallback_share"] < 0.3 and 700 < other["n_days_clean"] < 1000
    assert math.isfinite(other["p_holm_clean"]) and other["p_holm_clean"] >= other["p_value_clean"]
