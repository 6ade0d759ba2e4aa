"""Walk-forward splitting: an expanding (or rolling) training window, retrained at every quarter end.

For a fold with cutoff ``T`` (the last day of quarter ``Q``) and horizon ``h``:

* the model may see data up to the close of ``T`` only;
* the last labelled sample is ``T - h`` (its label ends at ``T``): the purge gap;
* validation samples are the last ``validation_days`` labelled dates,
  ``[T - h - validation_days + 1, T - h]``;
* training samples run from ``train_start`` to ``validation_start - h - 1``, so no
  training label overlaps the validation block;
* the fold serves every decision taken at the closes ``[T, T_next)``: those decisions
  trade into quarter ``Q+1``.

Timeline for one fold (``h`` = horizon)::

    train_start ........ train_end | h purge | validation ... T-h | h purge | T | test ... T_next-1
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from kallos.config import ForecastConfig

__all__ = ["ExpandingWalkForward", "Fold"]


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold. All dates are closes of UTC days (inclusive)."""

    cutoff: pd.Timestamp
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    validation_start: pd.Timestamp
    validation_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    horizon: int

    @property
    def key(self) -> str:
        return self.cutoff.date().isoformat()


class ExpandingWalkForward:
    """Expanding-window walk-forward splitter, retraining every ``freq`` period end.

    Parameters
    ----------
    train_start : first sample date of every training window.
    train_window_days : if set, a rolling window: a fold with cutoff ``T`` trains on the days
        ``[T - train_window_days + 1, T]`` only (validation and both purge gaps inside them),
        never before ``train_start``.
    horizon : label horizon in days; also the purge gap.
    validation_days : length of the validation block at the end of each window.
    freq : pandas period-end alias of the retraining calendar (``"QE"`` = quarter ends).

    Examples
    --------
    >>> wf = ExpandingWalkForward(dt.date(2018, 6, 1), horizon=7, validation_days=91)
    >>> [f.key for f in wf.split(pd.Timestamp("2022-01-15"), pd.Timestamp("2022-07-02"))]
    ['2021-12-31', '2022-03-31', '2022-06-30']
    """

    def __init__(
        self,
        train_start: dt.date | pd.Timestamp,
        horizon: int = 7,
        validation_days: int = 91,
        freq: str = "QE",
        train_window_days: int | None = None,
    ) -> None:
        self.train_start = pd.Timestamp(train_start)
        self.train_window_days = train_window_days
        self.horizon = horizon
        self.validation_days = validation_days
        self.freq = freq

    @classmethod
    def from_config(cls, config: ForecastConfig) -> ExpandingWalkForward:
        """The splitter of ``config`` (its train start, horizon, validation days and train window)."""
        return cls(
            config.train_start,
            config.horizon,
            config.validation_days,
            train_window_days=config.train_window_days,
        )

    def cutoff_for(self, decision_date: pd.Timestamp) -> pd.Timestamp:
        """The latest retraining cutoff at or before ``decision_date``."""
        d = pd.Timestamp(decision_date)
        ends = pd.date_range(d - pd.Timedelta(days=400), d, freq=self.freq)
        return ends[-1]

    def fold(self, cutoff: pd.Timestamp, test_end: pd.Timestamp | None = None) -> Fold:
        """The fold whose training data ends at the close of ``cutoff``."""
        cutoff = pd.Timestamp(cutoff)
        day = pd.Timedelta(days=1)
        h = pd.Timedelta(days=self.horizon)
        validation_end = cutoff - h
        validation_start = validation_end - pd.Timedelta(days=self.validation_days) + day
        train_end = validation_start - h - day
        next_cutoff = pd.date_range(cutoff + day, periods=1, freq=self.freq)[0]
        end = next_cutoff - day if test_end is None else min(next_cutoff - day, pd.Timestamp(test_end))
        start = self.train_start
        if self.train_window_days is not None:
            start = max(start, cutoff - pd.Timedelta(days=self.train_window_days) + day)
        return Fold(
            cutoff=cutoff,
            train_start=start,
            train_end=train_end,
            validation_start=validation_start,
            validation_end=validation_end,
            test_start=cutoff,
            test_end=end,
            horizon=self.horizon,
        )

    def split(self, first_decision: pd.Timestamp, last_decision: pd.Timestamp) -> list[Fold]:
        """Folds covering every decision date in ``[first_decision, last_decision]``.

        The first fold's ``test_start`` is its cutoff, which may precede ``first_decision``;
        callers select the decision dates inside ``[test_start, test_end]`` they need.

        Raises
        ------
        ValueError
            If a training window would end before ``train_start``, or the range is inverted.
        """
        if pd.Timestamp(first_decision) > pd.Timestamp(last_decision):
            raise ValueError(f"first decision {first_decision} is after the last {last_decision}")
        first = self.cutoff_for(first_decision)
        cutoffs = pd.date_range(first, pd.Timestamp(last_decision), freq=self.freq)
        if len(cutoffs) == 0 or cutoffs[0] != first:
            cutoffs = cutoffs.insert(0, first).unique()
        folds = [self.fold(c, test_end=last_decision) for c in cutoffs]
        for f in folds:
            if f.train_end <= f.train_start:
                raise ValueError(
                    f"fold {f.key}: training window {f.train_start.date()}..{f.train_end.date()} "
                    "is empty; move forecast.train_start earlier, backtest.start later or raise "
                    "forecast.train_window_days"
                )
        return folds
