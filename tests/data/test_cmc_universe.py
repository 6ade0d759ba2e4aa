"""Survivorship-free universe from CoinMarketCap snapshots, on the real data and on small frames."""

from __future__ import annotations

import dataclasses
import typing

import pandas as pd
import pytest

from kallos.config import QualityConfig, UniverseConfig, build_config
from kallos.data import build_panel, schema
from kallos.data.panel import CMC_SUPPLY_SOURCE, FIELD_PRECEDENCE, map_cmc_coins
from kallos.data.universe import (
    UNIVERSE_METHODS,
    build_universe,
    cmc_market_cap_check,
    cmc_snapshot_universe,
    month_starts,
)
from kallos.exceptions import ConfigError, DataValidationError


@pytest.fixture(scope="module")
def snapshots(real_store):
    return real_store.read_table(schema.market_cap_snapshots)


@pytest.fixture(scope="module")
def cmc_panel(real_market, snapshots):
    market, coins = real_market
    return build_panel(market, coins, QualityConfig(), snapshots=snapshots)


@pytest.fixture(scope="module")
def top20(cmc_panel):
    return cmc_snapshot_universe(cmc_panel, month_starts("2020-02-01", "2024-12-31"), 20, 365)


def test_config_literal_matches_the_registry():
    literal = typing.get_args(UniverseConfig.model_fields["method"].annotation)
    assert set(literal) == set(UNIVERSE_METHODS)
    with pytest.raises(ConfigError, match=r"universe\.method"):
        build_config({"universe": {"method": "cmc"}})


def test_matic_atom_etc_enter_in_the_months_they_ranked(top20, snapshots):
    months = top20.groupby("coin_id")["month"].agg(["min", "max", "size"])
    # Coins absent from the CoinGecko file enter through CMC ranks and Binance prices.
    cmc_only = set(top20.loc[~top20["in_coingecko"], "coin_id"])
    assert cmc_only == {"matic", "atom", "etc"}
    assert months.loc["matic", "max"] == pd.Timestamp("2024-09-01")  # Binance MATICUSDT ends 2024-09
    feb22 = top20[top20["month"] == "2022-02-01"].set_index("coin_id")
    assert feb22.loc["matic", "cmc_rank"] == 14 and feb22.loc["atom", "cmc_rank"] == 26
    assert (feb22["snapshot_date"] == pd.Timestamp("2022-01-01")).all()
    # LUNA (rank 9), USDT (4) and USDC (7) have no Kallos prices or are stablecoins: passed over.
    assert "luna" not in set(top20["coin_id"]) and "usdt" not in set(top20["coin_id"])
    assert list(feb22.sort_values("rank")["cmc_rank"].head(6)) == [1, 2, 3, 5, 6, 8]
    # Every month's members are the best-ranked eligible CMC rows: ranks increase with `rank`.
    for month, g in top20.groupby("month"):
        assert g.sort_values("rank")["cmc_rank"].is_monotonic_increasing
        assert len(g) == 20 if month >= pd.Timestamp("2021-06-01") else len(g) <= 20


def test_market_cap_is_binance_close_times_snapshot_supply(cmc_panel, real_market, snapshots):
    market, _ = real_market
    close = market[(market["coin_id"] == "matic") & (market["source"] == "binance")].set_index("date")[
        "close"
    ]
    row = snapshots[(snapshots["snapshot_date"] == "2022-01-01") & (snapshots["symbol"] == "MATIC")].iloc[0]
    expected = close[pd.Timestamp("2022-01-31")] * row["circulating_supply"]
    assert cmc_panel.market_cap.at[pd.Timestamp("2022-01-31"), "matic"] == pytest.approx(expected, rel=1e-12)
    assert cmc_panel.market_cap_source.at[pd.Timestamp("2022-01-31"), "matic"] == CMC_SUPPLY_SOURCE
    assert cmc_panel.market_cap_origin("matic", pd.Timestamp("2022-01-31")) == (
        "binance close × cmc circulating_supply (snapshot 2022-01-01)"
    )
    assert cmc_panel.market_cap_origin("btc", pd.Timestamp("2022-01-31")) == "coingecko market_cap"
    assert FIELD_PRECEDENCE["market_cap"] == ("coingecko", CMC_SUPPLY_SOURCE)


def test_membership_never_uses_a_later_snapshot(cmc_panel, top20, real_market, snapshots):
    for month in ("2021-06-01", "2022-02-01", "2024-03-01"):
        sel = pd.Timestamp(month) - pd.Timedelta(days=1)
        earlier = snapshots[snapshots["snapshot_date"] <= sel]
        cut = dataclasses.replace(
            cmc_panel, snapshots=cmc_panel.snapshots[cmc_panel.snapshots["snapshot_date"] <= sel]
        )
        alone = cmc_snapshot_universe(cut, pd.DatetimeIndex([month]), 20, 365)
        full = top20[top20["month"] == month].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone, full)
    # The derived market caps up to a day do not change when later snapshots are deleted.
    market, coins = real_market
    panel = build_panel(market, coins, QualityConfig(), snapshots=earlier)
    pd.testing.assert_frame_equal(
        panel.market_cap.loc[:sel, ["matic", "atom", "etc"]],
        cmc_panel.market_cap.loc[:sel, ["matic", "atom", "etc"]],
    )


def test_build_universe_dispatches_and_needs_snapshots(cmc_panel, real_panel):
    months = month_starts("2022-01-01", "2022-01-31")
    cfg = UniverseConfig(method="cmc_snapshots", top_n=5)
    u = build_universe(cmc_panel, months, cfg)
    assert list(u["coin_id"]) == ["btc", "eth", "bnb", "sol", "ada"]
    assert (u["mcap_source"] == "coingecko market_cap").all() and u["in_coingecko"].all()
    with pytest.raises(DataValidationError, match="needs CoinMarketCap snapshots"):
        build_universe(real_panel, months, cfg)
    with pytest.raises(DataValidationError, match="no CoinMarketCap snapshot"):
        build_universe(cmc_panel, month_starts("2019-06-01", "2019-06-30"), cfg)


def _snaps(rows):
    return pd.DataFrame(
        rows, columns=["snapshot_date", "rank", "name", "symbol", "circulating_supply"]
    ).assign(snapshot_date=lambda f: pd.to_datetime(f["snapshot_date"]))


def test_mapping_rule_aliases_and_ambiguity():
    coins = pd.DataFrame({"coin_id": ["bnb", "atom", "uni"], "name": ["BNB", None, "Uniswap"]})
    snaps = _snaps(
        [
            ("2021-01-01", 1, "Binance Coin", "BNB", 1.0),  # alias table
            ("2021-01-01", 2, "Cosmos", "ATOM", 1.0),  # no stored name, one CMC name
            ("2021-01-01", 3, "Terra", "LUNA", 1.0),  # no Kallos coin
            ("2021-01-01", 4, "UNISWAP", "UNI", 1.0),  # same name up to case
        ]
    )
    mapped = map_cmc_coins(snaps, coins)
    assert list(mapped["coin_id"]) == ["bnb", "atom", None, "uni"]
    other = _snaps([("2021-01-01", 1, "Universe Token", "UNI", 1.0)])
    with pytest.raises(DataValidationError, match=r"Name='Universe Token', Symbol='UNI'.*CMC_ALIASES"):
        map_cmc_coins(other, coins)
    assert map_cmc_coins(other, coins, aliases={("Universe Token", "UNI"): None})["coin_id"].isna().all()
    twice = _snaps([("2021-01-01", 1, "Cosmos", "ATOM", 1.0), ("2021-01-01", 2, "Cosmos Hub", "ATOM", 1.0)])
    with pytest.raises(DataValidationError, match=r"Symbol='ATOM'.*no stored name and 2 CMC names"):
        map_cmc_coins(twice, coins)
    with pytest.raises(DataValidationError, match=r"2021-01-01.*both map to coin 'atom'"):
        map_cmc_coins(twice, coins, aliases={("Cosmos", "ATOM"): "atom", ("Cosmos Hub", "ATOM"): "atom"})


# ---------------------------------------------------------------- market caps cross-checked against CMC


def test_okb_market_cap_is_corrected_by_the_cmc_cross_check(cmc_panel):
    months = month_starts("2023-01-01", "2023-06-30")
    cfg = UniverseConfig()  # cmc_check = "replace", 50% tolerance
    checks = cmc_market_cap_check(cmc_panel, months, cfg)
    okb = checks[(checks["coin_id"] == "okb") & (checks["month"] == "2023-03-01")].iloc[0]
    # CoinGecko's OKB cap is ~4x CoinMarketCap's (9.3B vs 2.3B on the 2023-02-01 snapshot)
    assert okb["disagreement"] == pytest.approx(okb["market_cap"] / okb["cmc_market_cap"] - 1)
    assert 2.5 < okb["disagreement"] < 4.0 and okb["snapshot_date"] == pd.Timestamp("2023-02-01")
    sel = pd.Timestamp("2023-02-28")
    snaps = cmc_panel.snapshots
    row = snaps[(snaps["coin_id"] == "okb") & (snaps["snapshot_date"] == pd.Timestamp("2023-02-01"))]
    supply = float(row["circulating_supply"].iloc[0])
    assert okb["market_cap_used"] == pytest.approx(cmc_panel.close.at[sel, "okb"] * supply)
    # CoinGecko agrees with CMC for OKB from April 2023 on: no case then
    assert not ((checks["coin_id"] == "okb") & (checks["month"] >= "2023-05-01")).any()

    fixed = build_universe(cmc_panel, months, cfg, checks)
    march = fixed[fixed["month"] == "2023-03-01"]
    assert "okb" not in set(march["coin_id"]) and "ada" in set(march["coin_id"])
    unchecked = build_universe(cmc_panel, months, cfg.model_copy(update={"cmc_check": "off"}))
    assert "okb" in set(unchecked.loc[unchecked["month"] == "2023-03-01", "coin_id"])
    flagged = cmc_market_cap_check(cmc_panel, months, cfg.model_copy(update={"cmc_check": "flag"}))
    assert flagged["action"].str.startswith("flagged").all() and len(flagged) == len(checks)
    assert "okb" in set(
        build_universe(cmc_panel, months, cfg.model_copy(update={"cmc_check": "flag"}))["coin_id"]
    )


def test_the_cross_check_is_point_in_time(cmc_panel):
    # the check for a month reads no snapshot after its selection date
    months = month_starts("2023-03-01", "2023-03-31")
    full = cmc_market_cap_check(cmc_panel, months, UniverseConfig())
    cut = cmc_market_cap_check(cmc_panel.truncate(pd.Timestamp("2023-02-28")), months, UniverseConfig())
    pd.testing.assert_frame_equal(full.reset_index(drop=True), cut.reset_index(drop=True))
