"""Tests for kallos.forecast.walk_forward: the expanding quarterly splitter and its folds."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kallos.features import forward_log_return
from kallos.forecast import ExpandingWalkForward, Fold

DAY = pd.Timedelta(days=1)
QUARTER_ENDS = pd.date_range("2019-03-31", "2030-12-31", freq="QE")


def test_known_fold() -> None:
    wf = ExpandingWalkForward(pd.Timestamp("2018-06-01"), horizon=7, validation_days=91)
    fold = wf.fold(pd.Timestamp("2021-12-31"))
    assert fold == Fold(
        cutoff=pd.Timestamp("2021-12-31"),
        train_start=pd.Timestamp("2018-06-01"),
        train_end=pd.Timestamp("2021-09-17"),
        validation_start=pd.Timestamp("2021-09-25"),
        validation_end=pd.Timestamp("2021-12-24"),
        test_start=pd.Timestamp("2021-12-31"),
        test_end=pd.Timestamp("2022-03-30"),
        horizon=7,
    )
    assert fold.key == "2021-12-31"


def test_split_docstring_example() -> None:
    wf = ExpandingWalkForward(pd.Timestamp("2018-06-01"), horizon=7, validation_days=91)
    folds = wf.split(pd.Timestamp("2022-01-15"), pd.Timestamp("2022-07-02"))
    assert [f.key for f in folds] == ["2021-12-31", "2022-03-31", "2022-06-30"]
    assert folds[-1].test_end == pd.Timestamp("2022-07-02")  # clipped by the last decision
    assert folds[0].test_end == pd.Timestamp("2022-03-30")


@settings(max_examples=60, deadline=None)
@given(
    q=st.integers(0, len(QUARTER_ENDS) - 2),
    horizon=st.integers(1, 60),
    validation_days=st.integers(7, 200),
)
def test_fold_invariants_at_quarter_ends(q: int, horizon: int, validation_days: int) -> None:
    cutoff, next_cutoff = QUARTER_ENDS[q], QUARTER_ENDS[q + 1]
    wf = ExpandingWalkForward(pd.Timestamp("2010-01-01"), horizon=horizon, validation_days=validation_days)
    f = wf.fold(cutoff)
    h = pd.Timedelta(days=horizon)
    # Purge: the last training label (ends train_end + h) ends before the first validation sample.
    assert f.train_end + h < f.validation_start
    assert f.validation_start - f.train_end == h + DAY
    # The last validation label ends exactly at the cutoff.
    assert f.validation_end == cutoff - h
    assert (f.validation_end - f.validation_start).days + 1 == validation_days
    assert f.test_start == cutoff
    assert f.test_end == next_cutoff - DAY
    assert f.horizon == horizon
    assert f.train_start == pd.Timestamp("2010-01-01")
    # Clipping by the last decision.
    assert wf.fold(cutoff, test_end=cutoff + 3 * DAY).test_end == cutoff + 3 * DAY
    assert wf.fold(cutoff, test_end=next_cutoff + 10 * DAY).test_end == next_cutoff - DAY


def test_last_validation_label_is_computable_at_the_cutoff_and_the_next_is_not() -> None:
    """Labels computed on data up to the cutoff exist exactly up to validation_end."""
    wf = ExpandingWalkForward(pd.Timestamp("2020-01-01"), horizon=7, validation_days=30)
    f = wf.fold(pd.Timestamp("2020-09-30"))
    index = pd.date_range("2020-01-01", f.cutoff, freq="D")
    close = pd.Series(np.linspace(100.0, 200.0, len(index)), index=index)
    label = forward_log_return(close, f.horizon)
    assert label.last_valid_index() == f.validation_end
    assert label.loc[f.train_start : f.validation_end].notna().all()


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("2021-12-31", "2021-12-31"),
        ("2022-01-01", "2021-12-31"),
        ("2021-12-30", "2021-09-30"),
        ("2020-03-31", "2020-03-31"),
        ("2020-02-29", "2019-12-31"),
        ("2020-06-29", "2020-03-31"),
    ],
)
def test_cutoff_for_known(date: str, expected: str) -> None:
    wf = ExpandingWalkForward(pd.Timestamp("2018-06-01"))
    assert wf.cutoff_for(pd.Timestamp(date)) == pd.Timestamp(expected)


@settings(max_examples=80, deadline=None)
@given(offset=st.integers(0, 4000))
def test_cutoff_for_is_latest_quarter_end_not_after(offset: int) -> None:
    d = pd.Timestamp("2019-01-01") + offset * DAY
    c = ExpandingWalkForward(pd.Timestamp("2018-06-01")).cutoff_for(d)
    assert c.is_quarter_end
    assert c <= d
    assert not pd.date_range(c + DAY, d, freq="D").is_quarter_end.any()


def test_cutoff_for_other_calendar() -> None:
    wf = ExpandingWalkForward(pd.Timestamp("2018-06-01"), freq="ME")
    assert wf.cutoff_for(pd.Timestamp("2021-02-15")) == pd.Timestamp("2021-01-31")
    f = wf.fold(pd.Timestamp("2021-01-31"))
    assert f.test_end == pd.Timestamp("2021-02-27")


@settings(max_examples=60, deadline=None)
@given(first=st.integers(0, 1500), span=st.integers(0, 900), horizon=st.integers(1, 30))
def test_split_covers_every_decision_exactly_once(first: int, span: int, horizon: int) -> None:
    wf = ExpandingWalkForward(pd.Timestamp("2017-01-01"), horizon=horizon, validation_days=91)
    first_decision = pd.Timestamp("2019-01-01") + first * DAY
    last_decision = first_decision + span * DAY
    folds = wf.split(first_decision, last_decision)
    decisions = pd.date_range(first_decision, last_decision, freq="D")
    hits = np.zeros(len(decisions), dtype=int)
    for f in folds:
        inside = (decisions >= f.test_start) & (decisions <= f.test_end)
        hits += inside
        # The decisions a fold serves have that fold's cutoff as their latest quarter end.
        served = decisions[inside]
        if len(served):
            assert wf.cutoff_for(served[0]) == wf.cutoff_for(served[-1]) == f.cutoff
        assert f.horizon == horizon
    assert (hits == 1).all()
    cutoffs = [f.cutoff for f in folds]
    assert cutoffs == sorted(set(cutoffs))
    assert folds[0].cutoff == wf.cutoff_for(first_decision) <= first_decision
    assert folds[-1].test_end == last_decision
    for prev, nxt in itertools.pairwise(folds):
        assert nxt.test_start == prev.test_end + DAY


def test_split_raises_when_training_window_is_empty() -> None:
    wf = ExpandingWalkForward(pd.Timestamp("2021-01-01"), horizon=7, validation_days=91)
    with pytest.raises(ValueError, match=r"fold 2020-12-31: training window 2021-01-01\.\.2020-09-"):
        wf.split(pd.Timestamp("2021-02-01"), pd.Timestamp("2021-05-01"))
    # Later folds of the same splitter have data: no error once the window is long enough.
    folds = wf.split(pd.Timestamp("2021-10-01"), pd.Timestamp("2021-12-01"))
    assert folds[0].train_end > folds[0].train_start
