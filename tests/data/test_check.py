"""`run_checks` finds planted problems, naming coin, source and dates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kallos.config import QualityConfig
from kallos.data.check import CHECKS, CheckSettings, parse_max_findings, run_checks
from kallos.exceptions import DataValidationError


def _rows(coin, source, close, start="2021-01-01", market_cap=None):
    dates = pd.date_range(start, periods=len(close))
    return pd.DataFrame(
        {
            "coin_id": coin,
            "date": dates,
            "source": source,
            "close": close,
            "market_cap": market_cap if market_cap is not None else np.nan,
        }
    )


@pytest.fixture()
def planted():
    rng = np.random.default_rng(0)
    base = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 120)))
    cg = _rows("aaa", "coingecko", base, market_cap=base * 1e6)
    cg.loc[40:44, "market_cap"] = np.nan  # 5 days without a market cap
    cg = cg.drop(index=[10, 11])  # a two-day gap: 2021-01-11..12
    bn = _rows("aaa", "binance", base * 1.05)  # 5% away from CoinGecko every day
    stale = base.copy()
    stale[60:67] = stale[60]  # 7 identical closes from 2021-03-02
    stale[90] = stale[89] * 8  # +700% on 2021-04-01, then back
    bb = _rows("bbb", "coingecko", stale, market_cap=stale * 1e6)
    return pd.concat([cg, bn, bb], ignore_index=True)


def test_planted_findings_name_coin_and_dates(planted):
    rep = run_checks(planted)
    f = rep.findings
    gap = f[f["rule"] == "gap"].iloc[0]
    assert (gap.coin_id, gap.source, gap.start, gap.end, gap.n_days) == (
        "aaa",
        "coingecko",
        pd.Timestamp("2021-01-11"),
        pd.Timestamp("2021-01-12"),
        2,
    )
    stale = f[f["rule"] == "stale_run"].iloc[0]
    assert (stale.coin_id, stale.start, stale.n_days) == ("bbb", pd.Timestamp("2021-03-02"), 7)
    cap = f[f["rule"] == "return_cap"]
    # +700% then -87.5% (below the symmetric -83.3% cap): both days.
    assert list(cap["coin_id"]) == ["bbb", "bbb"]
    assert list(cap["start"]) == [pd.Timestamp("2021-04-01"), pd.Timestamp("2021-04-02")]
    z = f[f["rule"] == "robust_zscore"]
    assert {(r.coin_id, r.start) for r in z.itertuples()} >= {
        ("bbb", pd.Timestamp("2021-04-01")),
        ("bbb", pd.Timestamp("2021-04-02")),
    }
    mc = f[f["rule"] == "missing_market_cap"].iloc[0]
    assert (mc.coin_id, mc.n_days) == ("aaa", 5)
    div = f[f["rule"] == "source_divergence"]
    assert set(div["coin_id"]) == {"aaa"} and len(div) == 4  # Jan..Apr 2021
    assert "4.76%" in div.iloc[0]["detail"]  # |1/1.05 - 1|
    assert rep.counts["gap"] == 1 and rep.counts["stale_run"] == 1 and set(rep.counts) == set(CHECKS)


def test_non_finite_and_absurd_values_are_flagged(planted):
    """Issue 10.2: an infinite market cap got no finding; a price of 1e300 none either."""
    bad = planted.copy()
    aaa = bad.index[(bad["coin_id"] == "aaa") & (bad["source"] == "coingecko")]
    bad.loc[aaa[20], "market_cap"] = np.inf
    bad.loc[aaa[30:32], "close"] = 1e300
    rep = run_checks(bad)
    f = rep.findings[rep.findings["rule"] == "implausible_value"]
    assert [(r.coin_id, r.start, r.n_days) for r in f.itertuples()] == [
        ("aaa", bad.loc[aaa[20], "date"], 1),
        ("aaa", bad.loc[aaa[30], "date"], 2),
    ]
    assert "market_cap inf" in f.iloc[0]["detail"] and "is not finite" in f.iloc[0]["detail"]
    assert "close 1e+300" in f.iloc[1]["detail"] and "exceeds 1e+07 USD" in f.iloc[1]["detail"]
    assert rep.exceeded["implausible_value"] == (2, 0) and not rep.ok  # none is tolerated
    assert run_checks(planted).counts["implausible_value"] == 0


def test_limits_decide_the_verdict(planted):
    loose = run_checks(planted)
    assert loose.ok and loose.exceeded == {}
    strict = run_checks(planted, CheckSettings(max_findings=parse_max_findings(["gap=0", "stale_run=-1"])))
    assert not strict.ok and strict.exceeded == {"gap": (1, 0)}
    doc = strict.to_dict()
    assert doc["ok"] is False and doc["exceeded"]["gap"] == {"findings": 1, "allowed": 0}
    assert doc["findings"][0]["start"] == "2021-01-11"


def test_thresholds_come_from_the_settings(planted):
    assert (
        run_checks(planted, CheckSettings(quality=QualityConfig(stale_run_days=8))).counts["stale_run"] == 0
    )
    assert run_checks(planted, CheckSettings(divergence_threshold=0.05)).counts["source_divergence"] == 0


def test_bad_input_is_an_error():
    with pytest.raises(DataValidationError, match="expected RULE=N"):
        parse_max_findings(["nonsense=1"])
    with pytest.raises(DataValidationError, match="integer"):
        parse_max_findings(["gap=x"])
    with pytest.raises(DataValidationError, match="no market data"):
        run_checks(pd.DataFrame(columns=["coin_id", "date", "source", "close", "market_cap"]))
