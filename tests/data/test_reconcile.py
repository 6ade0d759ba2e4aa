"""CoinGecko vs Binance reconciliation: known answers, the one-day shift, flagging."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from kallos.data.reconcile import divergence_from_market, price_divergence
from kallos.data.sources import IMPORTERS
from kallos.data.sources.base import concat_batches


def test_known_answer_per_coin_month():
    days = pd.date_range("2021-01-30", "2021-02-02")
    bn = pd.DataFrame({"x": [100.0, 100.0, 200.0, 50.0]}, index=days)
    cg = pd.DataFrame({"x": [101.0, 98.0, 202.0, np.nan]}, index=days)
    out = price_divergence(cg, bn, threshold=0.02).set_index("month")
    assert out.loc["2021-01", "mean_abs_divergence"] == pytest.approx(0.015)  # (1% + 2%) / 2
    assert out.loc["2021-01", "max_abs_divergence"] == pytest.approx(0.02)
    assert (
        out.loc["2021-01", "n_days"] == 2 and not out.loc["2021-01", "flagged"]
    )  # the max alone does not flag
    assert out.loc["2021-02", "n_days"] == 1 and out.loc["2021-02", "mean_abs_divergence"] == pytest.approx(
        0.01
    )
    assert price_divergence(cg, bn, threshold=0.012).set_index("month")["flagged"].tolist() == [True, False]
    with pytest.raises(ValueError, match="threshold"):
        price_divergence(cg, bn, threshold=-1)


def _write(path, text):
    with gzip.open(path, "wt") as f:
        f.write(text)


def test_one_day_coingecko_shift_through_the_importers(tmp_path):
    # README sanity values: CoinGecko row snapped 2021-01-01 = 29,022 (close of 2020-12-31);
    # Binance close 2020-12-31 = 28,924 and 2021-01-01 = 29,332.
    cg_dir, bn_dir = tmp_path / "cg", tmp_path / "bn"
    cg_dir.mkdir(), bn_dir.mkdir()
    _write(
        cg_dir / "btc-usd-max.csv.gz",
        "snapped_at,price,market_cap,total_volume\n"
        "2021-01-01 00:00:00 UTC,29022,5.4e11,4e10\n2021-01-02 00:00:00 UTC,29352,5.4e11,4e10\n",
    )
    _write(
        bn_dir / "BTCUSDT_1d.csv.gz",
        "timestamp,open,high,low,close,volume\n2020-12-31,28875,29300,28600,28924,1\n"
        "2021-01-01,28923,29600,28600,29332,1\n2021-01-02,29331,33300,28946,32178,1\n",
    )
    batch = concat_batches([IMPORTERS["coingecko"]().read(cg_dir), IMPORTERS["binance"]().read(bn_dir)])
    out = divergence_from_market(batch.market).set_index("month")
    assert out.loc["2020-12", "n_days"] == 1
    assert out.loc["2020-12", "mean_abs_divergence"] == pytest.approx(29022 / 28924 - 1)  # 0.34%
    assert out.loc["2021-01", "max_abs_divergence"] == pytest.approx(abs(29352 / 29332 - 1))


def test_real_data_aligned_is_tight_and_misaligned_is_not(real_market):
    market, _ = real_market
    wide = {
        s: market[market["source"] == s].pivot(index="date", columns="coin_id", values="close")
        for s in ("coingecko", "binance")
    }
    aligned = price_divergence(wide["coingecko"], wide["binance"])
    recent = aligned[aligned["month"] >= "2021-01"]
    assert recent["mean_abs_divergence"].median() < 0.003
    assert not recent["flagged"].any()
    # Without the importer's one-day shift, CoinGecko's close of t-1 meets Binance's close of t.
    unshifted = price_divergence(wide["coingecko"].shift(1, freq="D"), wide["binance"])
    assert unshifted[unshifted["month"] >= "2021-01"]["mean_abs_divergence"].median() > 0.01
    # The flagged coin-months are all in the 2017-2018 era (BNB launch, exchange premia).
    assert set(aligned.loc[aligned["flagged"], "month"].str[:4]) <= {"2017", "2018"}
