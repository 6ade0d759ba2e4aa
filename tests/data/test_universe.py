"""Point-in-time monthly universe on the real data."""

from __future__ import annotations

import pandas as pd
import pytest

from kallos.data import month_starts, monthly_universe, universe_on
from kallos.data.universe import universe_summary
from kallos.exceptions import DataValidationError


def test_top5_january_2022_is_selected_on_new_years_eve(real_panel):
    u = monthly_universe(real_panel, month_starts("2022-01-01", "2022-02-28"), top_n=5, min_history_days=457)
    jan = u[u["month"] == "2022-01-01"].sort_values("rank")
    # README: largest non-stable caps on CoinGecko's 2022-01-01 row (= close of 2021-12-31).
    assert list(jan["coin_id"]) == ["btc", "eth", "bnb", "sol", "ada"]
    assert (jan["selection_date"] == pd.Timestamp("2021-12-31")).all()
    assert jan["market_cap"].iloc[0] == pytest.approx(876e9, rel=0.01)
    assert jan["market_cap"].is_monotonic_decreasing


def test_eligibility_needs_history(real_panel):
    # SOL's first CoinGecko close is 2020-04-10: about 630 days by 2021-12-31.
    u = monthly_universe(real_panel, month_starts("2022-01-01", "2022-01-31"), 5, min_history_days=700)
    assert "sol" not in set(u["coin_id"]) and len(u) == 5
    first = real_panel.close["sol"].first_valid_index()
    days = int(real_panel.close["sol"].loc[first:"2021-12-31"].notna().sum())
    edge = monthly_universe(real_panel, month_starts("2022-01-01", "2022-01-31"), 5, min_history_days=days)
    assert "sol" in set(edge["coin_id"])


def test_stablecoins_never_enter(real_panel):
    u = monthly_universe(real_panel, month_starts("2020-06-01", "2024-12-31"), top_n=10, min_history_days=365)
    assert not {"usdt", "usdc", "dai", "paxg"} & set(u["coin_id"])
    assert (u.groupby("month").size() == 10).all()


def test_decision_uses_the_universe_of_the_next_day():
    u = pd.DataFrame(
        {
            "month": pd.to_datetime(["2022-01-01", "2022-02-01"]),
            "selection_date": pd.to_datetime(["2021-12-31", "2022-01-31"]),
            "coin_id": ["a", "b"],
            "rank": [1, 1],
            "market_cap": [1.0, 1.0],
        }
    )
    assert universe_on(u, pd.Timestamp("2022-01-30")) == ["a"]
    assert universe_on(u, pd.Timestamp("2022-01-31")) == ["b"]  # trades into Feb 1


def test_selection_outside_the_panel_is_an_error(real_panel):
    with pytest.raises(DataValidationError, match="outside the panel"):
        monthly_universe(real_panel, month_starts("2030-01-01", "2030-01-31"), 5, 365)


def test_market_cap_daily_records_sources(real_panel):
    u = monthly_universe(real_panel, month_starts("2022-01-01", "2022-01-31"), 5, 457)
    assert (u["mcap_source"] == "coingecko market_cap").all() and u["in_coingecko"].all()
    assert u["cmc_rank"].isna().all() and u["snapshot_date"].isna().all()


def test_universe_summary_is_the_results_contract():
    u = pd.DataFrame(
        {
            "month": pd.to_datetime(["2022-02-01", "2022-02-01", "2022-03-01"]),
            "selection_date": pd.to_datetime(["2022-01-31", "2022-01-31", "2022-02-28"]),
            "coin_id": ["btc", "matic", "matic"],
            "rank": [1, 2, 1],
            "market_cap": [7e11, 1.2e10, 1.1e10],
            "mcap_source": [
                "coingecko market_cap",
                "binance close × cmc circulating_supply (snapshot 2022-01-01)",
                "binance close × cmc circulating_supply (snapshot 2022-02-01)",
            ],
            "in_coingecko": [True, False, False],
            "cmc_rank": [1, 14, 15],
            "snapshot_date": pd.to_datetime(["2022-01-01", "2022-01-01", "2022-02-01"]),
            "benchmark_weight": [0.6, 0.4, 1.0],
        }
    )
    recon = pd.DataFrame(
        {
            "coin_id": ["bnb", "btc"],
            "month": ["2017-12", "2022-01"],
            "mean_abs_divergence": [0.125, 0.001],
            "max_abs_divergence": [0.47, 0.004],
            "n_days": [31, 31],
            "flagged": [True, False],
        }
    )
    doc = universe_summary(u, "cmc_snapshots", 2, recon, 0.02)
    assert doc["method"] == "cmc_snapshots" and doc["top_n"] == 2
    assert doc["mcap_sources"] == {
        "btc": "coingecko market_cap",
        "matic": "binance close × cmc circulating_supply",
    }
    first = doc["constituents"][0]
    assert set(first) >= {
        "month",
        "selection_date",
        "coin_id",
        "rank",
        "market_cap",
        "mcap_source",
        "in_coingecko",
        "benchmark_weight",
    }
    assert first["month"] == "2022-02" and first["in_coingecko"] is True
    assert doc["reconciliation"] == {
        "threshold": 0.02,
        "flagged": [
            {
                "coin_id": "bnb",
                "month": "2017-12",
                "mean_abs_divergence": 0.125,
                "max_abs_divergence": 0.47,
                "n_days": 31,
            }
        ],
    }
