"""Tests of kallos.evaluation.battery: agreement with scipy/statsmodels, the exploratory family
correction and its attainability warning, pair layout, the trial count and the results.json keys
of :func:`evaluate` (the primary family's verdicts are tested in test_primary.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from jsonschema import Draft202012Validator
from scipy import stats
from statsmodels.stats.multitest import multipletests

from kallos.config import EvaluationConfig
from kallos.evaluation.battery import (
    BATTERY,
    FamilyPowerWarning,
    PairSample,
    TrialCount,
    comparison_pairs,
    evaluate,
    run_battery,
    unattainable_tests,
)
from kallos.evaluation.bootstrap import Resampler
from kallos.evaluation.dominance import stochastic_dominance
from kallos.evaluation.sharpe import ledoit_wolf_2008
from kallos.evaluation.significance import TestResult, cohens_d, jobson_korkie_memmel, newey_west_maxlags
from kallos.exceptions import ConfigError, DataValidationError

CONTRACT_TESTS = {
    "paired_t_hac",
    "wilcoxon",
    "mann_whitney",
    "ks",
    "variance_brown_forsythe",
    "jobson_korkie_memmel",
    "ledoit_wolf_2008",
    "sd1",
    "sd2",
}
SCHEMA = Path(__file__).resolve().parents[2] / "src" / "kallos" / "report" / "results.schema.json"


def _frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame(columns, index=pd.date_range("2022-01-01", periods=n, freq="D"))


@pytest.fixture(scope="module")
def returns() -> pd.DataFrame:
    rng = np.random.default_rng(21)
    n = 500
    market = 0.0008 + 0.025 * rng.standard_t(4, n) / math.sqrt(2)
    return _frame(
        {
            "gru/max_sharpe": 0.003 + 0.8 * market + rng.normal(0, 0.01, n),
            "hist/max_sharpe": 0.8 * market + rng.normal(0, 0.01, n),
            "gru/min_variance": 0.6 * market + rng.normal(0, 0.008, n),
            "hist/min_variance": 0.6 * market + rng.normal(0, 0.008, n),
            "market_cap": market,
            "equal_weight": 1.1 * market + rng.normal(0, 0.004, n),
        }
    )


VARIANTS = {
    "gru/max_sharpe": ("gru", "max_sharpe"),
    "hist/max_sharpe": ("hist", "max_sharpe"),
    "gru/min_variance": ("gru", "min_variance"),
    "hist/min_variance": ("hist", "min_variance"),
    "market_cap": ("market_cap", None),
    "equal_weight": ("equal_weight", None),
}


@pytest.fixture(scope="module")
def resampler() -> Resampler:
    return Resampler(block_length=4, reps=300, seed=0)


@pytest.fixture(scope="module")
def battery(returns, resampler):
    pairs = comparison_pairs(VARIANTS)
    return run_battery(returns, pairs, resampler)


def test_registry_names_are_the_contract_names():
    assert set(BATTERY) == CONTRACT_TESTS


def test_comparison_pairs_layout():
    pairs = comparison_pairs(VARIANTS)
    # per objective: 1 forecaster pair + 2 forecasters x 2 benchmarks; then the benchmark pair once
    assert len(pairs) == 2 * (1 + 4) + 1
    assert pairs[0] == ("max_sharpe", "gru/max_sharpe", "hist/max_sharpe")
    assert pairs[-1] == ("none", "market_cap", "equal_weight")
    assert {o for o, *_ in pairs} == {"max_sharpe", "min_variance", "none"}
    # the default study: 3 forecasters x 2 objectives + 2 benchmarks -> 19 pairs
    default = {f"{f}/{o}": (f, o) for o in ("ms", "qu") for f in ("a", "b", "c")}
    default |= {"market_cap": ("market_cap", None), "equal_weight": ("equal_weight", None)}
    assert len(comparison_pairs(default)) == 19


def test_battery_agrees_with_reference_implementations(returns, battery, resampler):
    table, _ = battery
    a, b = "gru/max_sharpe", "hist/max_sharpe"
    x, y = returns[a].to_numpy(), returns[b].to_numpy()
    rows = table[(table["a"] == a) & (table["b"] == b)].set_index("test")
    assert set(rows.index) == CONTRACT_TESTS

    fit = sm.OLS(x - y, np.ones((x.size, 1))).fit(
        cov_type="HAC", cov_kwds={"maxlags": newey_west_maxlags(x.size), "use_correction": True}, use_t=True
    )
    assert rows.loc["paired_t_hac", "statistic"] == pytest.approx(fit.tvalues[0], rel=1e-10)
    assert rows.loc["paired_t_hac", "p_value"] == pytest.approx(fit.pvalues[0], rel=1e-10)
    lo, hi = fit.conf_int(alpha=0.05)[0]
    assert rows.loc["paired_t_hac", "ci_low"] == pytest.approx(lo * 365, rel=1e-10)
    assert rows.loc["paired_t_hac", "ci_high"] == pytest.approx(hi * 365, rel=1e-10)
    assert rows.loc["paired_t_hac", "effect"] == pytest.approx((x - y).mean() * 365, rel=1e-12)

    for name, ref in (
        ("wilcoxon", stats.wilcoxon(x - y)),
        ("mann_whitney", stats.mannwhitneyu(x, y, alternative="two-sided")),
        ("ks", stats.ks_2samp(x, y)),
        ("variance_brown_forsythe", stats.levene(x, y, center="median")),
    ):
        assert rows.loc[name, "statistic"] == pytest.approx(ref.statistic, rel=1e-12), name
        assert rows.loc[name, "p_value"] == pytest.approx(ref.pvalue, rel=1e-10), name

    jkm = jobson_korkie_memmel(returns[a], returns[b])
    assert rows.loc["jobson_korkie_memmel", "statistic"] == pytest.approx(jkm.statistic, rel=1e-12)
    draws = resampler.draws(x.size)
    lw = ledoit_wolf_2008(x, y, draws)
    assert rows.loc["ledoit_wolf_2008", "statistic"] == pytest.approx(lw.statistic, rel=1e-10)
    assert rows.loc["ledoit_wolf_2008", "p_value"] == pytest.approx(lw.p_value, rel=1e-10)
    sharpe_diff = (x.mean() / x.std(ddof=1) - y.mean() / y.std(ddof=1)) * math.sqrt(365)
    assert rows.loc["ledoit_wolf_2008", "effect"] == pytest.approx(sharpe_diff, rel=1e-10)
    assert rows.loc["ledoit_wolf_2008", "ci_low"] < sharpe_diff < rows.loc["ledoit_wolf_2008", "ci_high"]
    # dominance: the panel shares one grid over all strategies, so compare with that grid
    panel_grid = np.unique(np.quantile(returns.to_numpy().ravel(), np.linspace(0, 1, 200)))
    sd2 = stochastic_dominance(x, y, draws, order=2, grid=panel_grid)
    assert rows.loc["sd2", "statistic"] == pytest.approx(sd2.statistic, rel=1e-10)
    assert rows.loc["sd2", "p_value"] == pytest.approx(sd2.p_value)


def test_family_correction_over_all_rows(battery):
    table, _ = battery
    p = table["p_value"].to_numpy()
    finite = ~np.isnan(p)
    np.testing.assert_allclose(
        table["p_holm"][finite], multipletests(p[finite], method="holm")[1], rtol=1e-12
    )
    np.testing.assert_allclose(
        table["p_bh"][finite], multipletests(p[finite], method="fdr_bh")[1], rtol=1e-12
    )
    # the exploratory family is corrected by Benjamini-Hochberg by default, Holm on request
    assert (table["significant"] == (table["p_bh"] < 0.05)).all()
    assert (table["group"] == table["objective"]).all()


def test_holm_correction_on_request(returns, resampler):
    table, _ = run_battery(returns, comparison_pairs(VARIANTS), resampler, correction="holm")
    assert (table["significant"] == (table["p_holm"] < 0.05)).all()
    with pytest.raises(ConfigError, match="correction"):
        run_battery(returns, comparison_pairs(VARIANTS), resampler, correction="bonferroni")


def test_a_family_that_can_never_reject_is_named():
    # bootstrap p-values are >= 1/(B+1): Holm over m tests needs m/(B+1) < alpha
    assert unattainable_tests(["sd1", "ks"], 261, 1000, 0.05, "holm") == ["sd1"]
    assert unattainable_tests(["sd1", "ks"], 261, 1000, 0.05, "fdr_bh") == []
    assert unattainable_tests(["sd1", "sd2"], 10, 1000, 0.05, "holm") == []
    assert unattainable_tests(["sd2"], 1, 10, 0.05, "fdr_bh") == ["sd2"]  # 1/11 >= 0.05


def test_evaluate_warns_when_the_exploratory_family_cannot_reject(returns):
    cfg = EvaluationConfig(bootstrap_reps=100, exploratory_correction="holm", pbo_splits=8)
    with pytest.warns(FamilyPowerWarning, match="sd1, sd2 can never be significant"):
        stats_ = evaluate(returns, VARIANTS, "market_cap", cfg)
    assert stats_.warnings and "bootstrap_reps" in stats_.warnings[0]


def test_effects_table(returns, battery):
    _, effects = battery
    row = effects.iloc[0]
    a, b = returns[row["a"]], returns[row["b"]]
    assert row["cohens_d"] == pytest.approx(cohens_d(a, b), rel=1e-12)
    assert row["d_ci_low"] < row["cohens_d"] < row["d_ci_high"]
    assert row["sharpe_diff_ci_low"] < row["sharpe_diff"] < row["sharpe_diff_ci_high"]


def test_panel_and_single_pair_paths_agree(returns, resampler):
    frame = returns.copy()
    frame.loc[frame.index[:5], "equal_weight"] = np.nan  # this column has fewer days
    pairs = [("max_sharpe", "gru/max_sharpe", "hist/max_sharpe"), ("none", "market_cap", "equal_weight")]
    both, _ = run_battery(frame, pairs, resampler)
    alone, _ = run_battery(frame[["gru/max_sharpe", "hist/max_sharpe"]], pairs[:1], resampler)
    first = both[both["a"] == "gru/max_sharpe"].reset_index(drop=True)
    np.testing.assert_allclose(first["statistic"], alone["statistic"], rtol=1e-10)
    np.testing.assert_allclose(first["p_value"], alone["p_value"], rtol=1e-10)
    assert (both.loc[both["b"] == "equal_weight", "n"] == 495).all()


def test_run_battery_rejects_bad_arguments(returns, resampler):
    pairs = [("o", "gru/max_sharpe", "hist/max_sharpe")]
    with pytest.raises(ConfigError, match="unknown test"):
        run_battery(returns, pairs, resampler, tests=["sharpe_test"])
    with pytest.raises(ConfigError, match="alpha"):
        run_battery(returns, pairs, resampler, alpha=1.0)
    with pytest.raises(DataValidationError, match="missing"):
        run_battery(returns, [("o", "gru/max_sharpe", "missing")], resampler)


def test_degenerate_pair_gives_nan_rows_not_errors(resampler):
    frame = _frame({"flat": np.full(40, 0.001), "noise": np.random.default_rng(0).normal(0, 0.01, 40)})
    table, effects = run_battery(frame, [("o", "flat", "noise")], resampler)
    assert table["p_value"].isna().all() and not table["significant"].any()
    assert math.isnan(effects.iloc[0]["cohens_d"])


def test_empty_and_tiny_samples_are_recorded_not_raised(resampler):
    frame = _frame({"a": [np.nan] * 5, "b": [0.01, 0.02, 0.0, 0.01, 0.03]})
    table, _ = run_battery(frame, [("o", "a", "b")], resampler)
    assert (table["n"] == 0).all() and table["p_value"].isna().all()


def test_every_battery_test_returns_a_test_result_named_by_its_key(returns, resampler):
    """One result type for every pairwise test: the battery's carry their registry key and the pair's n."""
    x, y = returns["gru/max_sharpe"].to_numpy(), returns["hist/max_sharpe"].to_numpy()
    s = PairSample(x, y, resampler.draws(x.size))
    for name, test in BATTERY.items():
        res = test(s)
        assert isinstance(res, TestResult), name
        assert (res.test, res.n) == (name, x.size)
        assert np.isfinite(res.statistic) and 0.0 <= res.p_value <= 1.0, name
        assert (res.effect is None) == (res.effect_name is None), name
        assert (res.ci_low is None) == (res.ci_high is None), name


def test_pair_sample_is_degenerate_when_short():
    s = PairSample(np.arange(5.0), np.arange(5.0) * 2, Resampler(1, 10, 0).draws(5))
    assert s.degenerate


# ---------------------------------------------------------------- evaluate


@pytest.fixture(scope="module")
def statistics(returns):
    cfg = EvaluationConfig(bootstrap_reps=200, regime_lookback=60, pbo_splits=8)
    trials = TrialCount(tuning=30, prior_configurations=2, prior_variants=8)
    return evaluate(returns, VARIANTS, "market_cap", cfg, trials, learned=["gru"], baselines=["hist"])


def test_evaluate_trials_sharpe_and_overfitting(returns, statistics):
    # forecast-driven variants (4, not the 2 benchmarks) + tuning trials + earlier configurations' variants
    trials = statistics.trials
    assert (trials["n_trials"], trials["variants"], trials["from_tuning"]) == (42, 4, 30)
    assert (trials["prior_configurations"], trials["prior_variants"]) == (2, 8)
    assert "benchmarks not counted" in trials["source"] and "2 other study configurations" in trials["source"]
    sharpe = statistics.sharpe
    r = returns["gru/max_sharpe"]
    assert sharpe.loc["gru/max_sharpe", "sharpe"] == pytest.approx(r.mean() / r.std() * math.sqrt(365))
    assert (sharpe["dsr"] <= sharpe["psr"]).all()  # deflating by 42 trials only lowers it
    assert (sharpe["n_trials"] == 42).all()
    assert statistics.overfitting is not None
    assert statistics.overfitting.n_variants == 4 and statistics.overfitting.logits.size == 70


def test_evaluate_breakdowns(returns, statistics):
    days = statistics.regimes.value_counts()
    assert days["warmup"] == 60
    assert set(statistics.regime_tests["regime"]) <= {"bull", "bear", "sideways"}
    for regime, g in statistics.regime_tests.groupby("regime"):
        p = g["p_value"].to_numpy()
        finite = ~np.isnan(p)
        np.testing.assert_allclose(g["p_holm"][finite], multipletests(p[finite], method="holm")[1])
        np.testing.assert_allclose(g["p_bh"][finite], multipletests(p[finite], method="fdr_bh")[1])
        assert (g["n"] == (statistics.regimes == regime).sum()).all()
    assert len(statistics.quarters) == returns.shape[1] * len(returns.index.to_period("Q").unique())


def test_to_results_matches_the_contract_and_schema(statistics):
    from kallos.pipeline.results import jsonable

    doc = jsonable(statistics.to_results())
    json.dumps(doc, allow_nan=False)
    assert set(doc) == {
        "primary",
        "tests",
        "effects",
        "verdicts",
        "sharpe",
        "trials",
        "overfitting",
        "regimes",
        "quarters",
    }
    tests = doc["tests"]
    assert tests["correction"] == "fdr_bh" and tests["family"] == "exploratory"
    assert tests["family_size"] == len(tests["pairwise"])
    record = tests["pairwise"][0]
    for key in (
        "objective",
        "a",
        "b",
        "test",
        "statistic",
        "p_value",
        "p_holm",
        "p_bh",
        "significant",
        "effect",
        "ci_low",
        "ci_high",
        "effect_name",
    ):
        assert key in record
    # verdicts are the primary family's: learned gru vs the baseline hist and the benchmark
    assert [(v["a"], v["b"]) for v in doc["verdicts"]] == [
        ("gru/max_sharpe", "hist/max_sharpe"),
        ("gru/max_sharpe", "market_cap"),
        ("gru/min_variance", "hist/min_variance"),
        ("gru/min_variance", "market_cap"),
    ]
    assert doc["verdicts"] == doc["primary"]["verdicts"]
    assert set(doc["sharpe"]["market_cap"]) == {
        "sharpe",
        "psr",
        "dsr",
        "n_trials",
        "min_track_record_days",
        "skew",
        "kurtosis",
    }
    assert doc["sharpe"]["market_cap"]["n_trials"] == 42 and isinstance(
        doc["sharpe"]["market_cap"]["n_trials"], int
    )
    assert "regime" in doc["regimes"]["tests"][0]
    if SCHEMA.exists():  # the report's schema (another part of the project) validates each key
        schema = json.loads(SCHEMA.read_text())
        for key, value in doc.items():
            sub = {"$defs": schema.get("$defs", {}), **schema["properties"][key]}
            errors = list(Draft202012Validator(sub).iter_errors(value))
            assert not errors, f"{key}: {errors[0].message} at {list(errors[0].absolute_path)}"


def test_evaluate_validates_inputs(returns):
    cfg = EvaluationConfig(bootstrap_reps=100)
    with pytest.raises(DataValidationError, match="variant column"):
        evaluate(returns[["market_cap"]], VARIANTS, "market_cap", cfg)
    with pytest.raises(DataValidationError, match="trial counts"):
        evaluate(returns, VARIANTS, "market_cap", cfg, -1)


def test_evaluation_config_validates_statistics_settings():
    with pytest.raises(ValueError, match="even"):
        EvaluationConfig(pbo_splits=15)
    with pytest.raises(ValueError, match="exceed"):
        EvaluationConfig(regime_bull=-0.2, regime_bear=-0.1)
    with pytest.raises(ValueError, match="sd_orders"):
        EvaluationConfig(sd_orders=(3,))
