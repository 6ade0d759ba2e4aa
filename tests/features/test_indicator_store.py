"""The daily_technical_indicators table: causal rows, incremental update == full recompute, both backends."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kallos.features import FEATURE_NAMES, compute_indicators
from kallos.features.store import (
    INCREMENTAL_CONTEXT_DAYS,
    daily_technical_indicators,
    last_indicator_dates,
    read_indicators,
    update_indicators,
)

COINS = ["btc", "eth", "doge"]
CUT = pd.Timestamp("2024-06-30")


def _assert_same_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    got = got.reset_index(drop=True)
    want = want.reset_index(drop=True)
    assert got[["coin_id", "date"]].equals(want[["coin_id", "date"]])
    a = got[list(FEATURE_NAMES)].to_numpy()
    b = want[list(FEATURE_NAMES)].to_numpy()
    assert (np.isnan(a) == np.isnan(b)).all()
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True)


def test_table_has_a_float_column_per_indicator():
    cols = [c.name for c in daily_technical_indicators.columns]
    assert cols[:2] == ["coin_id", "date"] and cols[2:] == list(FEATURE_NAMES)
    assert len(FEATURE_NAMES) >= 30
    assert [c.name for c in daily_technical_indicators.primary_key.columns] == ["coin_id", "date"]


def test_full_update_stores_compute_indicators_output(any_store, real_panel):
    written = update_indicators(any_store, real_panel, coins=COINS)
    stored = read_indicators(any_store)
    assert written == len(stored) == sum(len(real_panel.bars(c)) for c in COINS)
    btc = stored[stored["coin_id"] == "btc"].set_index("date")[list(FEATURE_NAMES)]
    want = compute_indicators(real_panel.bars("btc"), coin_id="btc")
    pd.testing.assert_frame_equal(btc, want, check_names=False, check_freq=False, rtol=1e-12)
    assert btc.loc["2021-01-01"].notna().sum() >= 30  # well past the warm-up
    assert update_indicators(any_store, real_panel, coins=COINS) == 0  # nothing new: nothing written


def test_incremental_equals_full_and_rows_are_causal(any_store, real_panel, tmp_path):
    """Rows up to CUT computed from a panel that ends at CUT equal those from the full panel
    (causality); then extending the table one day and then to the end equals a full recompute."""
    assert (CUT - real_panel.bars("btc").index[0]).days > 2 * INCREMENTAL_CONTEXT_DAYS  # context is cut
    from kallos.data import Store

    full_store = Store(f"sqlite:///{tmp_path / 'full.db'}")
    update_indicators(full_store, real_panel, coins=COINS)
    full = read_indicators(full_store)

    update_indicators(any_store, real_panel.truncate(CUT), coins=COINS)
    assert set(last_indicator_dates(any_store).values()) == {CUT}
    _assert_same_rows(read_indicators(any_store), full[full["date"] <= CUT])

    assert update_indicators(any_store, real_panel.truncate(CUT + pd.Timedelta(days=1)), coins=COINS) == 3
    update_indicators(any_store, real_panel, coins=COINS)
    _assert_same_rows(read_indicators(any_store), full)


def test_new_coin_gets_its_whole_history(any_store, real_panel):
    update_indicators(any_store, real_panel, coins=["btc"])
    update_indicators(any_store, real_panel, coins=["btc", "eth"])
    last = last_indicator_dates(any_store)
    assert set(last) == {"btc", "eth"}
    assert len(read_indicators(any_store, "eth")) == len(real_panel.bars("eth"))


@pytest.mark.parametrize("coin", ["btc"])
def test_value_at_t_ignores_later_rows(real_panel, coin):
    """Causality of the stored quantity itself: truncating bars after t leaves row t unchanged."""
    from kallos.features.store import indicator_rows

    bars = real_panel.bars(coin)
    full = indicator_rows(coin, bars).set_index("date")
    for t in (pd.Timestamp("2018-03-01"), pd.Timestamp("2022-11-09")):
        short = indicator_rows(coin, bars.loc[:t]).set_index("date")
        pd.testing.assert_series_equal(short.loc[t], full.loc[t])
