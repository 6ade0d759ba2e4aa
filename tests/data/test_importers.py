"""Importers: the close-of-day convention, value policies and bad-input errors (file + row)."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from kallos.data import Store, ingest
from kallos.data import schema as s
from kallos.data.sources.binance import BinanceKlinesImporter, coin_id_from_pair
from kallos.data.sources.cmc import CmcSnapshotsImporter
from kallos.data.sources.coingecko import CoinGeckoCsvImporter, coin_id_from_filename
from kallos.exceptions import ImportFormatError

CG_HEADER = "snapped_at,price,market_cap,total_volume\n"


def write(path, text: str, gz: bool = False):
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


# ---------------------------------------------------------------- CoinGecko


def test_coingecko_row_dated_d_is_the_close_of_d_minus_1(data_dir):
    batch = CoinGeckoCsvImporter().read(data_dir / "coingecko_daily_top50/original/btc-usd-max.csv.gz")
    btc = batch.market.set_index("date")
    # README sanity value: CoinGecko row 2021-01-01 (00:00 UTC snapshot) = 2020-12-31 close = 29,022 USD.
    assert btc.loc["2020-12-31", "close"] == pytest.approx(29_022, abs=1)
    assert btc.loc["2021-06-30", "market_cap"] == pytest.approx(0.660e12, rel=0.01)
    assert btc.index.min() == pd.Timestamp("2013-04-27")
    assert btc.index.is_unique and (btc["source"] == "coingecko").all()


def test_coingecko_late_snapshot_fills_its_own_calendar_day(tmp_path):
    f = write(
        tmp_path / "abc-usd-max.csv",
        CG_HEADER
        + "2017-06-05 00:00:00 UTC,10,1000,5\n"
        + "2017-06-06 23:29:55 UTC,11,1100,5\n"  # replaces the missing 06-06 00:00 snapshot
        + "2017-06-07 00:00:00 UTC,12,1200,5\n",
    )
    m = CoinGeckoCsvImporter().read(f).market
    assert list(m["date"].dt.strftime("%Y-%m-%d")) == ["2017-06-04", "2017-06-05", "2017-06-06"]
    assert list(m["close"]) == [10, 11, 12]


def test_coingecko_zero_market_cap_is_unknown_and_noted(tmp_path):
    f = write(tmp_path / "abc-usd-max.csv", CG_HEADER + "2020-01-01 00:00:00 UTC,1.5,0,0\n")
    batch = CoinGeckoCsvImporter().read(f)
    assert batch.market["market_cap"].isna().all() and batch.market["volume"].isna().all()
    assert any("market_cap=0" in n for n in batch.notes)


def test_coingecko_metadata_sets_categories(data_dir):
    batch = CoinGeckoCsvImporter().read(data_dir / "coingecko_daily_top50/original")
    cats = batch.coins.set_index("coin_id")["category"]
    assert cats["usdt"] == "stablecoin" and cats["paxg"] == "gold" and cats["buidl"] == "tokenized_fund"
    assert cats["bnb"] == "crypto" and cats["okb"] == "crypto"
    assert coin_id_from_filename(data_dir / "coingecko_daily_top50/original/Uni-usd-max.csv.gz") == "uni"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("2020-01-01 00:00:00 UTC,-1,5,5\n", "row 2: non-positive price"),
        ("2020-01-01 00:00:00 UTC,1,5,5\n2020-01-01 00:00:00 UTC,2,5,5\n", "row 3: duplicated date"),
        ("2020-01-01 00:00:00 UTC,abc,5,5\n", "row 2: column 'price' is not a number"),
        ("yesterday,1,5,5\n", "row 2: snapped_at 'yesterday' is not a date in the expected layout"),
        ("2020-01-01 00:00:00 UTC,1,-5,5\n", "row 2: negative market_cap"),
    ],
)
def test_coingecko_bad_rows_name_file_and_row(tmp_path, body, message):
    f = write(tmp_path / "abc-usd-max.csv", CG_HEADER + body)
    with pytest.raises(ImportFormatError, match=message) as err:
        CoinGeckoCsvImporter().read(f)
    assert str(f) in str(err.value)


@pytest.mark.parametrize("stamp", ["11/04/2020", "13/04/2020", "04/11/2020", "11.04.2020", "April 11 2020"])
def test_coingecko_day_or_month_first_dates_are_refused_not_guessed(tmp_path, stamp):
    """Issue 10.1: ``format="mixed"`` turned 11/04/2020 into 2020-11-03 and 13/04/2020 into 2020-04-12."""
    body = f"2020-04-10 00:00:00 UTC,1,5,5\n{stamp},2,5,5\n"
    f = write(tmp_path / "abc-usd-max.csv", CG_HEADER + body)
    with pytest.raises(
        ImportFormatError, match=r"row 3: snapped_at .* is not a date in the expected layout"
    ) as err:
        CoinGeckoCsvImporter().read(f)
    assert "'YYYY-MM-DD HH:MM:SS UTC'" in str(err.value) and "ISO 8601" in str(err.value)


def test_coingecko_iso_8601_dates_are_accepted(tmp_path):
    body = "2020-04-11,1,5,5\n2020-04-12T00:00:00Z,2,5,5\n2020-04-13 00:00:00 UTC,3,5,5\n"
    batch = CoinGeckoCsvImporter().read(write(tmp_path / "abc-usd-max.csv", CG_HEADER + body))
    assert batch.market["date"].dt.strftime("%Y-%m-%d").tolist() == ["2020-04-10", "2020-04-11", "2020-04-12"]
    assert batch.market["close"].tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("2020-01-01 00:00:00 UTC,inf,5,5", "price"),
        ("2020-01-01 00:00:00 UTC,1e400,5,5", "price"),
        ("2020-01-01 00:00:00 UTC,1,inf,5", "market_cap"),
        ("2020-01-01 00:00:00 UTC,1,1e400,5", "market_cap"),
        ("2020-01-01 00:00:00 UTC,1,5,-inf", "total_volume"),
    ],
)
def test_coingecko_non_finite_numbers_are_refused(tmp_path, row, column):
    """Issue 10.2: ``inf`` and ``1e400`` were stored; an infinite market cap ranks its coin first."""
    f = write(tmp_path / "abc-usd-max.csv", CG_HEADER + "2019-12-31 00:00:00 UTC,1,5,5\n" + row + "\n")
    with pytest.raises(ImportFormatError, match=rf"row 3: column '{column}' is not a finite number"):
        CoinGeckoCsvImporter().read(f)


def test_future_dates_are_refused_by_every_importer(tmp_path):
    """Issue 10.4: a row dated 2099-01-01 was stored and moved the data end to 2098-12-31."""
    cg = write(
        tmp_path / "abc-usd-max.csv",
        CG_HEADER + "2020-01-01 00:00:00 UTC,1,5,5\n2099-01-01 00:00:00 UTC,1,5,5\n",
    )
    with pytest.raises(
        ImportFormatError, match=r"row 3: snapped_at '2099-01-01 00:00:00 UTC' is after today"
    ):
        CoinGeckoCsvImporter().read(cg)
    bn = write(tmp_path / "XRPUSDT_1d.csv", KL_HEADER + "2020-01-01,10,11,8,10,1\n2099-01-01,10,11,8,10,1\n")
    with pytest.raises(ImportFormatError, match=r"row 3: timestamp '2099-01-01' is after today"):
        BinanceKlinesImporter().read(bn)
    header = "Rank,Name,Symbol,Market Cap,Price,Circulating Supply,Volume (24h),snapshot_date\n"
    cmc = write(tmp_path / "snapshots.csv", header + "1,Bitcoin,BTC,1,1,1,1,20990101\n")
    with pytest.raises(ImportFormatError, match=r"row 2: snapshot_date '20990101' is after today"):
        CmcSnapshotsImporter().read(cmc)
    # Today itself is allowed: CoinGecko's export ends with today's snapshot (yesterday's close).
    today = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d 00:00:00 UTC")
    ok = write(tmp_path / "ok/abc-usd-max.csv", CG_HEADER + f"{today},1,5,5\n")
    assert len(CoinGeckoCsvImporter().read(ok).market) == 1
    # The clock is injectable: the same file dated "tomorrow" relative to an earlier today is refused.
    import datetime as dt

    with pytest.raises(ImportFormatError, match="is after today"):
        CoinGeckoCsvImporter(today=dt.date(2019, 12, 31)).read(cg)


def test_non_utf8_csv_names_the_row_and_says_save_as_utf8(tmp_path):
    """Issue 10.12: a Latin-1 file was reported by byte offset, with no hint."""
    f = tmp_path / "abc-usd-max.csv"
    f.write_bytes(
        (CG_HEADER + "2020-01-01 00:00:00 UTC,1,5,5\n2020-01-02 00:00:00 UTC,1,5,5\n").encode()
        + "2020-01-03 00:00:00 UTC,1,5,5 caf\xe9\n".encode("latin-1")
    )
    with pytest.raises(
        ImportFormatError, match=r"row 4: not UTF-8 text \(byte 0xe9 at column 34\); save the file as UTF-8"
    ):
        CoinGeckoCsvImporter().read(f)


def test_coingecko_missing_column_is_named(tmp_path):
    f = write(tmp_path / "abc-usd-max.csv", "snapped_at,price,total_volume\n2020-01-01 00:00:00 UTC,1,2\n")
    with pytest.raises(ImportFormatError, match=r"missing column\(s\) \['market_cap'\]"):
        CoinGeckoCsvImporter().read(f)


def test_malformed_gzip_is_a_clear_error(tmp_path):
    f = tmp_path / "abc-usd-max.csv.gz"
    f.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(ImportFormatError, match="cannot be read as CSV"):
        CoinGeckoCsvImporter().read(f)


# ---------------------------------------------------------------- Binance

KL_HEADER = "timestamp,open,high,low,close,volume\n"


def test_binance_kline_dated_d_is_the_close_of_d_and_last_row_is_dropped(data_dir):
    batch = BinanceKlinesImporter().read(data_dir / "binance_spot_daily/original/BTCUSDT_1d.csv.gz")
    m = batch.market.set_index("date")
    assert m.loc["2020-12-31", "close"] == pytest.approx(28_923.63)  # README: 28,924
    assert m.index.max() == pd.Timestamp("2026-01-05")  # 2026-01-06 is a partial day
    assert m.loc["2020-12-31", "volume"] == pytest.approx(
        m.loc["2020-12-31", "close"] * 75_508.505152, rel=1e-6
    )  # quote value = base volume x close
    assert any("dropped as a possibly partial day" in n for n in batch.notes)


def test_binance_official_headerless_format_uses_quote_volume(tmp_path):
    ms = int(pd.Timestamp("2024-01-01", tz="UTC").timestamp() * 1000)
    rows = [
        f"{ms + i * 86_400_000},{10 + i},{12 + i},{9 + i},{11 + i},100,{ms + (i + 1) * 86_400_000 - 1},"
        f"{1234.5 + i},10,50,500,0\n"
        for i in range(3)
    ]
    f = write(tmp_path / "ETHUSDT-1d-2024-01.csv", "".join(rows))
    m = BinanceKlinesImporter(drop_last=False).read(f).market
    assert list(m["coin_id"].unique()) == ["eth"]
    assert list(m["date"].dt.strftime("%Y-%m-%d")) == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert list(m["volume"]) == [1234.5, 1235.5, 1236.5]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("2020-01-01,10,9,8,9.5,1\n", "row 2: high below open/close"),
        ("2020-01-01,10,11,10.5,10.2,1\n", "row 2: low above open/close"),
        ("2020-01-01,0,11,8,10,1\n", "row 2: non-positive open"),
        ("2020-01-01,10,11,8,10,1\n2020-01-01,10,11,8,10,1\n", "row 3: duplicated date"),
        ("2020-01-01 13:00,10,11,8,10,1\n", "row 2: timestamp is not 00:00 UTC"),
        ("11/04/2020,10,11,8,10,1\n", "row 2: timestamp '11/04/2020' is not a date in the expected layout"),
        ("2020-01-01,10,inf,8,10,1\n", "row 2: column 'high' is not a finite number"),
        ("2020-01-01,10,11,8,1e400,1\n", "row 2: column 'close' is not a finite number"),
    ],
)
def test_binance_bad_rows_name_file_and_row(tmp_path, body, message):
    f = write(tmp_path / "XRPUSDT_1d.csv", KL_HEADER + body)
    with pytest.raises(ImportFormatError, match=message):
        BinanceKlinesImporter(drop_last=False).read(f)


def test_binance_rejects_non_usd_quote():
    assert coin_id_from_pair("SOLUSDT") == "sol"
    with pytest.raises(ImportFormatError, match="not quoted in USD"):
        coin_id_from_pair("ETHBTC")


# ---------------------------------------------------------------- CoinMarketCap


def test_cmc_snapshots_keep_true_membership(data_dir):
    snaps = CmcSnapshotsImporter().read(data_dir / "cmc_monthly_top200").snapshots
    assert len(snaps) == 14_000
    jan22 = snaps[snaps["snapshot_date"] == "2022-01-01"].set_index("rank")
    assert jan22.loc[1, "symbol"] == "BTC"
    assert "MATIC" in set(snaps["symbol"])  # absent from the CoinGecko file: survivorship-free


def test_cmc_non_finite_market_cap_is_refused(tmp_path):
    header = "Rank,Name,Symbol,Market Cap,Price,Circulating Supply,Volume (24h),snapshot_date\n"
    f = write(tmp_path / "snapshots.csv", header + "1,Bitcoin,BTC,inf,1,1,1,20200101\n")
    with pytest.raises(ImportFormatError, match="row 2: column 'Market Cap' is not a finite number"):
        CmcSnapshotsImporter().read(f)


def test_cmc_bad_date_is_named(tmp_path):
    header = "Rank,Name,Symbol,Market Cap,Price,Circulating Supply,Volume (24h),snapshot_date\n"
    f = write(tmp_path / "snapshots.csv", header + "1,Bitcoin,BTC,1,1,1,1,2020-01-01\n")
    with pytest.raises(ImportFormatError, match="row 2: snapshot_date is not YYYYMMDD"):
        CmcSnapshotsImporter().read(f)


# ---------------------------------------------------------------- store writes


def test_import_is_idempotent_and_a_bad_file_writes_nothing(tmp_path, data_dir):
    store = Store(f"sqlite:///{tmp_path / 'k.db'}")
    src = data_dir / "coingecko_daily_top50/original/eth-usd-max.csv.gz"
    first = ingest(store, "coingecko", src)
    before = store.read_market_data()
    second = ingest(store, "coingecko", src)
    after = store.read_market_data()
    assert first.rows == second.rows and len(before) == 3_848
    pd.testing.assert_frame_equal(before, after)

    good = write(tmp_path / "bad/aaa-usd-max.csv", CG_HEADER + "2020-01-01 00:00:00 UTC,1,5,5\n")
    write(tmp_path / "bad/zzz-usd-max.csv", CG_HEADER + "2020-01-01 00:00:00 UTC,0,5,5\n")
    with pytest.raises(ImportFormatError, match=r"zzz-usd-max\.csv, row 2: non-positive price"):
        ingest(store, "coingecko", good.parent)
    pd.testing.assert_frame_equal(store.read_market_data(), after)  # aaa was not half-written
    assert store.count(s.coins) == 1
