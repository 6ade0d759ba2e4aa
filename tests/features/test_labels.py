"""Tests for kallos.features.labels: forward (label) and trailing log returns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kallos.exceptions import DataValidationError
from kallos.features import forward_log_return, trailing_log_return

CLOSE = pd.Series(
    [100.0, 110.0, 99.0, 99.0, 198.0],
    index=pd.date_range("2021-03-01", periods=5, freq="D", name="date"),
    name="btc",
)


def test_forward_log_return_by_hand() -> None:
    one = forward_log_return(CLOSE, 1)
    expected = [np.log(1.1), np.log(0.9), 0.0, np.log(2.0), np.nan]
    np.testing.assert_allclose(one.to_numpy(), expected, rtol=1e-14, atol=0)
    assert one.index.equals(CLOSE.index)
    assert one.name == "fwd_logret_1"
    two = forward_log_return(CLOSE, 2)
    np.testing.assert_allclose(two.to_numpy(), [np.log(0.99), np.log(0.9), np.log(2.0), np.nan, np.nan])
    assert forward_log_return(CLOSE, 5).isna().all()
    assert forward_log_return(CLOSE, 9).isna().all()


def test_trailing_log_return_by_hand() -> None:
    three = trailing_log_return(CLOSE, 3)
    np.testing.assert_allclose(three.to_numpy(), [np.nan, np.nan, np.nan, np.log(0.99), np.log(1.8)])
    assert three.name == "logret_3"
    assert three.index.equals(CLOSE.index)


def test_forward_is_trailing_shifted_back() -> None:
    close = pd.Series(np.exp(np.random.default_rng(0).normal(0, 0.05, 60).cumsum()))
    close.index = pd.date_range("2020-01-01", periods=60, freq="D")
    for horizon in (1, 7, 30):
        fwd = forward_log_return(close, horizon)
        pd.testing.assert_series_equal(
            fwd, trailing_log_return(close, horizon).shift(-horizon), check_names=False
        )


def test_missing_close_gives_nan_at_both_ends() -> None:
    close = CLOSE.copy()
    close.iloc[2] = np.nan
    fwd = forward_log_return(close, 1)
    assert fwd.isna().tolist() == [False, True, True, False, True]
    assert trailing_log_return(close, 2).isna().tolist() == [True, True, True, False, True]


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(5, 59), seed=st.integers(0, 2**32 - 1))
def test_forward_label_uses_only_rows_after_t(cut: int, seed: int) -> None:
    """The label at t depends on close_t and close_{t+h} only; trailing returns never look ahead."""
    rng = np.random.default_rng(seed)
    close = pd.Series(np.exp(rng.normal(0, 0.05, 60).cumsum()), index=pd.date_range("2020-01-01", periods=60))
    noisy = close.copy()
    noisy.iloc[cut + 1 :] = np.exp(rng.normal(0, 2, 60 - cut - 1))
    pd.testing.assert_series_equal(
        trailing_log_return(noisy, 5).iloc[: cut + 1], trailing_log_return(close, 5).iloc[: cut + 1]
    )
    h = 3
    unaffected = slice(0, max(cut + 1 - h, 0))
    pd.testing.assert_series_equal(
        forward_log_return(noisy, h).iloc[unaffected], forward_log_return(close, h).iloc[unaffected]
    )


@pytest.mark.parametrize("func", [forward_log_return, trailing_log_return])
def test_gapped_index_raises_naming_the_date(func) -> None:
    gapped = CLOSE.drop(index=pd.Timestamp("2021-03-03"))
    with pytest.raises(DataValidationError, match="2021-03-04") as info:
        func(gapped, 1)
    message = str(info.value)
    assert "2021-03-02" in message
    assert "btc" in message


@pytest.mark.parametrize("func", [forward_log_return, trailing_log_return])
def test_duplicated_or_unsorted_index_raises(func) -> None:
    with pytest.raises(DataValidationError, match=r"2021-03-02.*duplicate date"):
        func(pd.concat([CLOSE.iloc[:2], CLOSE.iloc[1:]]), 1)
    with pytest.raises(DataValidationError, match=r"2021-03-04.*out of order"):
        func(CLOSE.iloc[::-1], 1)


@pytest.mark.parametrize("func", [forward_log_return, trailing_log_return])
def test_bad_inputs_raise(func) -> None:
    for horizon in (0, -1, 1.5, True):
        with pytest.raises(DataValidationError, match="horizon"):
            func(CLOSE, horizon)
    with pytest.raises(DataValidationError, match="DatetimeIndex"):
        func(CLOSE.reset_index(drop=True), 1)
    bad = CLOSE.copy()
    bad.iloc[3] = 0.0
    with pytest.raises(DataValidationError, match="2021-03-04"):
        func(bad, 1)
    with pytest.raises(DataValidationError, match="Series"):
        func(CLOSE.to_frame(), 1)


def test_empty_and_single_row() -> None:
    empty = CLOSE.iloc[:0]
    assert forward_log_return(empty, 1).empty
    single = forward_log_return(CLOSE.iloc[:1], 1)
    assert single.isna().all() and len(single) == 1
