"""Data-quality rules and the cleaned panel: known answers on the real data, invariants, causality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kallos.config import BadWindow, QualityConfig
from kallos.data import build_panel
from kallos.data.quality import cap_returns, clean_close, detect_stale_runs, fill_gaps
from kallos.exceptions import DataValidationError


def series(values, start="2020-01-01"):
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq="D"), dtype=float)


def test_bnb_launch_artefact_is_dropped_and_reported(real_panel):
    bnb = real_panel.close["bnb"].dropna()
    # CoinGecko BNB trades at 0.04-0.24 USD before a +2,531% jump to 1.30 (row 2017-10-30 = close of 10-29).
    assert bnb.index[0] == pd.Timestamp("2017-10-29")
    assert bnb.iloc[0] == pytest.approx(1.299019, rel=1e-6)
    ev = real_panel.events
    launch = ev[(ev["rule"] == "launch_artefact") & (ev["coin_id"] == "bnb")]
    assert len(launch) == 1 and launch["n_rows"].iloc[0] == 42 and launch["action"].iloc[0] == "dropped"


def test_non_crypto_categories_are_excluded_and_reported(real_panel):
    for coin in ("usdt", "usdc", "dai", "paxg", "xaut", "buidl", "figr_heloc"):
        assert coin not in real_panel.coins
    excluded = real_panel.events.query("rule == 'category'")["coin_id"]
    assert {"usdt", "paxg", "buidl"} <= set(excluded)
    assert {"btc", "bnb", "okb"} <= set(real_panel.coins)  # exchange tokens stay


def test_gaps_are_filled_up_to_the_limit_and_reported(real_panel):
    # BTC has no CoinGecko row for 2015-01-28 (close of 01-27): filled forward, a zero return.
    btc = real_panel.close["btc"]
    assert btc["2015-01-27"] == btc["2015-01-26"]
    assert real_panel.returns["btc"]["2015-01-27"] == 0.0
    gaps = real_panel.events.query("rule == 'gap' and coin_id == 'btc'")
    assert set(gaps["action"]) == {"filled"} and gaps["n_rows"].sum() == 2
    # bgb has no rows 2020-06-27..2022-01-20: only the first 3 days are filled.
    bgb = real_panel.events.query("rule == 'gap' and coin_id == 'bgb' and n_rows > 100")
    assert (bgb["action"] == "partly_filled").all()


def test_panel_uses_binance_bars_and_coingecko_close(real_panel):
    bars = real_panel.bars("btc").loc["2021-01-01"]
    assert bars["open"] == pytest.approx(28_923.63)  # Binance close 2020-12-31
    assert real_panel.close["btc"]["2020-12-31"] == pytest.approx(29_022.418, rel=1e-6)  # CoinGecko
    assert real_panel.bar_source["btc"]["2021-01-01"] == "binance"
    assert real_panel.bar_source["btc"]["2016-01-01"] == "synthetic"
    synth = real_panel.bars("btc").loc["2016-01-02"]
    assert synth["high"] >= max(synth["open"], synth["close"]) and synth["low"] <= min(
        synth["open"], synth["close"]
    )


def test_return_cap_rescales_prices_consistently():
    close, r, adj, events = cap_returns(series([1.0, 1.0, 50.0, 55.0]), "x", 5.0)
    assert r.iloc[2] == pytest.approx(5.0) and r.iloc[3] == pytest.approx(0.1)
    assert close.iloc[2] == pytest.approx(6.0) and close.iloc[3] == pytest.approx(6.6)
    assert adj.iloc[1] == 1.0 and adj.iloc[3] == pytest.approx(6.0 / 50.0)
    assert len(events) == 1 and "+4900.0%" in events[0].detail
    _, r_down, _, _ = cap_returns(series([10.0, 0.1]), "x", 5.0)
    assert r_down.iloc[1] == pytest.approx(1 / 6 - 1)  # symmetric in log space: -83.3%


def test_stale_runs_are_flagged_not_changed():
    s = series([1, 2, 2, 2, 2, 2, 3])
    (event,) = detect_stale_runs(s, "x", 5)
    assert (event.start, event.end, event.n_rows) == (s.index[1], s.index[5], 5)
    assert detect_stale_runs(s, "x", 6) == []


def test_gap_fill_limit():
    s = series([1.0, 2.0]).reindex(pd.date_range("2020-01-01", periods=2, freq="D"))
    s = pd.concat([s, series([5.0], start="2020-01-08")])  # 5 missing days
    filled, mask, (event,) = fill_gaps(s, "x", 3)
    assert filled["2020-01-03":"2020-01-05"].tolist() == [2.0, 2.0, 2.0]
    assert filled["2020-01-06":"2020-01-07"].isna().all()
    assert int(mask.sum()) == 3 and event.action == "partly_filled" and event.n_rows == 5


def test_known_bad_window_drops_rows(real_market):
    market, coins = real_market
    cfg = QualityConfig(known_bad_windows=(BadWindow(coin_id="eth", end="2019-12-31", reason="test"),))
    panel = build_panel(market[market["coin_id"].isin(["eth", "btc"])], coins, cfg)
    assert panel.close["eth"].first_valid_index() == pd.Timestamp("2020-01-01")
    assert panel.events.query("rule == 'known_bad_window'")["detail"].iloc[0] == "test"


@settings(max_examples=25, deadline=None)
@given(
    cut=st.integers(min_value=20, max_value=150),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_cleaning_is_causal(cut, seed):
    """Changing or deleting data after t changes no cleaned value at or before t."""
    rng = np.random.default_rng(seed)
    prices = 100 * np.exp(np.cumsum(rng.normal(0, 0.05, 160)))
    prices[rng.integers(0, 160, 3)] *= 20  # jumps that the cap rule must catch
    observed = series(prices).drop(series(prices).index[rng.integers(5, 160, 6)])  # gaps
    cfg = QualityConfig(launch_artefact_days=0)
    end = observed.index[-1]
    full = clean_close(observed, "x", cfg, end=end)
    t = observed.index[0] + pd.Timedelta(days=cut)
    noisy = observed.copy()
    noisy[noisy.index > t] = rng.uniform(0.01, 1e4, int((noisy.index > t).sum()))
    for other, other_end in ((observed[observed.index <= t], t), (noisy, end)):
        part = clean_close(other, "x", cfg, end=other_end)
        pd.testing.assert_series_equal(part.close[:t], full.close[:t])
        pd.testing.assert_series_equal(part.returns[:t], full.returns[:t])


def test_bad_rows_in_the_store_are_named():
    market = pd.DataFrame(
        {
            "coin_id": ["btc", "btc"],
            "date": pd.to_datetime(["2020-01-01", "2020-01-02"]),
            "source": "coingecko",
            "close": [1.0, -2.0],
            "market_cap": 1.0,
            "volume": 1.0,
            "open": np.nan,
            "high": np.nan,
            "low": np.nan,
        }
    )
    with pytest.raises(DataValidationError, match="btc on 2020-01-02 from coingecko"):
        build_panel(market, pd.DataFrame(columns=["coin_id", "category"]), QualityConfig())


def test_rule_for_an_unknown_coin_is_named(real_market):
    market, coins = real_market
    cfg = QualityConfig(known_bad_windows=(BadWindow(coin_id="lunc", end="2022-05-31", reason="x"),))
    with pytest.raises(DataValidationError, match=r"known_bad_windows\[0\]\.coin_id: unknown coin 'lunc'"):
        build_panel(market, coins, cfg)


def _two_coin_market(days: int = 30) -> pd.DataFrame:
    dates = pd.date_range("2021-01-01", periods=days)
    rows = []
    for coin, price in (("btc", 30_000.0), ("wbtc", 30_010.0), ("steth", 2_000.0), ("eth", 2_001.0)):
        rows.append(
            pd.DataFrame(
                {
                    "coin_id": coin,
                    "date": dates,
                    "source": "coingecko",
                    "close": price * (1 + 0.01 * np.sin(np.arange(days))),
                    "market_cap": price * 1e6,
                    "volume": 1e6,
                    "open": np.nan,
                    "high": np.nan,
                    "low": np.nan,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_wrapped_and_liquid_staking_tokens_are_excluded_by_default():
    # a source (or an older store) that calls them plain "crypto" must not let them double-count
    # their underlying coin: the known list overrides "crypto"
    coins = pd.DataFrame({"coin_id": ["btc", "wbtc", "steth", "eth"], "category": ["crypto"] * 4})
    panel = build_panel(_two_coin_market(), coins, QualityConfig())
    assert panel.coins == ["btc", "eth"]
    reasons = panel.events.query("rule == 'category'").set_index("coin_id")["detail"]
    assert "'wrapped'" in reasons["wbtc"] and "'liquid_staking'" in reasons["steth"]
    kept = build_panel(_two_coin_market(), coins, QualityConfig(exclude_categories=("stablecoin",)))
    assert kept.coins == ["btc", "eth", "steth", "wbtc"]  # configurable


@pytest.mark.parametrize(
    ("coin", "text", "expected"),
    [
        ("wbtc", "crypto", "wrapped"),
        ("cbbtc", None, "wrapped"),
        ("wsteth", "crypto", "liquid_staking"),
        ("foo", "Liquid Staking Token", "liquid_staking"),
        ("foo", "Bridged stablecoin", "stablecoin"),
        ("bar", "Bridged token", "wrapped"),
        ("wbt", "exchange token", "crypto"),  # WhiteBIT Coin is not a wrapped token
        ("okb", "exchange token", "crypto"),
        ("paxg", "crypto", "gold"),
    ],
)
def test_categories_resolve_source_text_and_the_known_list(coin, text, expected):
    from kallos.data.categories import resolve_category

    assert resolve_category(coin, text) == expected
